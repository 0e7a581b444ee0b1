"""The dataset card, ``OUT/README.md``: a Hugging Face card (YAML header) written with every
build, rewritten by `tld precompute` and `tld takedown`.

The header's ``configs:`` gives each shard family its own configuration (clips, frames, flow,
masks), so ``datasets.load_dataset(OUT)`` never merges field tars with clip tars; only the
families present on disk are listed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from timelapse_d.acquire.provenance import attribution_lines, load_records
from timelapse_d.manifest import REJECT_REASONS, read_rows
from timelapse_d.publish.scores import saved_config, thresholds_in
from timelapse_d.report import summarize
from timelapse_d.runs import RunDir, write_atomic
from timelapse_d.version import __version__

CARD_NAME = "README.md"
# (configuration, shard prefix, what a row holds)
CONFIGS = (
    ("clips", "clips", "one row per kept clip: `mp4` (H.264) and `json` (its manifest row)"),
    (
        "frames",
        "frames",
        "`frames.npz`: the sampled frames (every 4th, 256x256) as JPEGs end to end; `json`",
    ),
    ("flow", "flow", "`flow.npz`: backward optical flow per sampled pair, int16 at 1/32 px"),
    ("masks", "mask", "`mask.npz`: six region groups per sampled frame"),
)
# Loaders give each rank's DataLoader workers whole shards: fewer shards than ranks x workers
# leaves streams idle.
LOADER_STREAMS = 64  # 8 ranks x 8 workers
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"))


def write_card(out: Path) -> Path:
    """Write OUT/README.md from the build's manifests, saved config and shards."""
    target = out / CARD_NAME
    text = card_text(out)
    write_atomic(target, lambda fh: fh.write(text.encode()))
    return target


def card_text(out: Path) -> str:
    summary = summarize(out, finished=True)
    clips = read_rows(out / "manifest.parquet")
    videos = read_rows(out / "videos.parquet")
    config = saved_config(out)
    kept = [c for c in clips if c["status"] == "kept"]
    used = {c["video_id"] for c in kept}
    credited = [v for v in videos if v["video_id"] in used]
    present = [
        (name, prefix, text)
        for name, prefix, text in CONFIGS
        if any((out / "shards").glob(f"{prefix}-*.tar"))
    ]
    header = {
        "pretty_name": f"timelapse-d: {out.resolve().name}",
        "license": "other",
        "license_name": "per-video (see Licences)",
        "task_categories": ["image-to-video"],
        "tags": ["timelapse", "video", "landscape", "webdataset"],
        "size_categories": [_size_category(len(kept))],
        "dataset_info": [{"config_name": "clips", "features": clip_features(out)}]
        if present and present[0][0] == "clips"
        else [],
        "configs": [
            {
                "config_name": name,
                "data_files": [{"split": "train", "path": f"shards/{prefix}-*.tar"}],
                **({"default": True} if name == "clips" else {}),
            }
            for name, prefix, _ in present
        ],
    }
    shards = summary.shards
    parts = [
        "---",
        yaml.safe_dump(header, sort_keys=False).strip(),
        "---",
        "",
        f"# {header['pretty_name']}",
        "",
        f"Time-lapse landscape video clips curated by timelapse-d {__version__}: every "
        "candidate clip was measured (cuts, camera and scene motion, sharpness, exposure, held "
        "stills) and kept or rejected by the thresholds below. Kept clips are WebDataset "
        "shards; rejected clips stay in `manifest.parquet` with their reasons.",
        "",
        "## Contents",
        "",
        "| | |",
        "|---|---|",
        f"| source videos | {summary.videos_ok} used, {summary.videos_failed} failed |",
        f"| kept clips | {summary.clips_kept} ({summary.hours_kept:.2f} h) |",
        f"| rejected clips | {summary.clips_rejected} (of {summary.hours_total:.2f} h analysed) |",
        f"| clip shards | {shards} ({summary.shard_bytes / 1e6:,.1f} MB) |",
        "",
        "| configuration | files | rows |",
        "|---|---|---|",
        *(f"| `{name}` | `shards/{prefix}-*.tar` | {text} |" for name, prefix, text in present),
        "",
        "`manifest.parquet` has one row per candidate clip, kept and rejected, with every score; "
        "`videos.parquet` one row per source video with its provenance. Field shards "
        "(`frames`, `flow`, `mask`) hold the clips of the clip shard with the same number, in "
        "the same order.",
        "",
        "## How it was built",
        "",
        f"`tld build --source {config.get('source', '?')}` (timelapse-d {__version__}), then "
        "`tld precompute` for the field shards. The resolved configuration "
        "(`run/config.yaml`):",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=True).strip(),
        "```",
        "",
        "## Licences and attribution",
        "",
        *_licences(credited, out),
        "",
        "## Reject reasons and thresholds",
        "",
        "| reason | clips | rule |",
        "|---|---|---|",
        *(
            f"| `{reason}` | {count} | {REJECT_REASONS.get(reason, '')} |"
            for reason, count in sorted(summary.reject_reasons.items(), key=lambda kv: -kv[1])
        ),
        "",
        "| score | threshold | rejects when |",
        "|---|---|---|",
        *(
            f"| `{t.score}` | `filter.{t.key}` = {v:.4g} | {t.side} (`{t.reason}`) |"
            for t, v in thresholds_in(config)
        ),
        "",
        "## Split",
        "",
        *_split(kept),
        "",
        "## How to load",
        "",
        "```python",
        "from datasets import load_dataset, load_dataset_builder",
        "",
        'clips = load_dataset("PATH/TO/THIS/FOLDER", "clips", split="train")  # or "frames", ...',
        "# the webdataset loader infers types from the first rows: give it the card's",
        'features = load_dataset_builder("PATH/TO/THIS/FOLDER", "clips").info.features',
        'clips = load_dataset("webdataset", data_files={"train": "shards/clips-*.tar"}, '
        'features=features, split="train")',
        "```",
        "",
        "Each row has `__key__` (the clip id), `mp4` and `json` (decoding `mp4` into frames "
        'needs `torchcodec`; `.cast_column("mp4", datasets.Video(decode=False))` gives the '
        "bytes); join any configuration with "
        "`manifest.parquet` on `clip_id` (and the configurations with each other on `__key__`). "
        "For training, `timelapse_d.fgla.data.FGLAStream` streams the clip shards joined with "
        "their field shards and checks every member's digest.",
        "",
        "## Known limits",
        "",
        *_limits(shards, credited),
        "",
    ]
    return "\n".join(parts)


def clip_features(out: Path) -> list[dict[str, Any]]:
    """The `clips` configuration's features in the card's YAML form: `json` typed column by
    column from manifest.parquet (inferring them from the first rows, as loaders do, fails on
    a column that is null there and set further on), `mp4` a video."""
    columns = []
    for column in pq.read_schema(out / "manifest.parquet"):
        if pa.types.is_list(column.type):
            columns.append({"name": column.name, "list": _dtype(column.type.value_type)})
        else:
            columns.append({"name": column.name, "dtype": _dtype(column.type)})
    return [
        {"name": "json", "struct": columns},
        {"name": "mp4", "dtype": "video"},
        {"name": "__key__", "dtype": "string"},
        {"name": "__url__", "dtype": "string"},
    ]


def _dtype(kind: pa.DataType) -> str:
    return {pa.bool_(): "bool", pa.int64(): "int64", pa.float64(): "float64"}.get(kind, "string")


def _size_category(count: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if count < limit), "100K<n<1M")


def _licences(credited: list[dict[str, Any]], out: Path) -> list[str]:
    counts = Counter(v.get("license_name") or "not recorded" for v in credited)
    lines = ["| licence | source videos |", "|---|---|"]
    lines += [f"| {name} | {count} |" for name, count in counts.most_common()]
    lines.append("")
    used = {v["video_id"] for v in credited}
    records = [r for r in load_records(RunDir(out).stage_dir("acquire")) if r.video_id in used]
    if records:
        lines.append("Source videos, their authors and licences:")
        lines.append("")
        lines += [f"- {line}" for line in attribution_lines(records)]
    else:
        lines.append(
            "The sources carry no licence record (local or generated files): whoever publishes "
            "this folder states their licence here."
        )
    lines.append("")
    lines.append(
        "Owners can ask for a video to be taken out; `tld takedown` removes it from every shard "
        "and manifest and records the request in `takedowns.parquet`."
    )
    return lines


def _split(kept: list[dict[str, Any]]) -> list[str]:
    sides = Counter(c.get("split") or "unassigned" for c in kept)
    lines = ["| split | kept clips |", "|---|---|"]
    lines += [f"| {side} | {count} |" for side, count in sorted(sides.items())]
    lines.append("")
    lines.append(
        "Train and test clips share the shards (clip-id order); the `split` column of "
        "`manifest.parquet` says which side a clip is on (whole source videos on one side)."
    )
    return lines


def _limits(shards: int, credited: list[dict[str, Any]]) -> list[str]:
    lines = [
        "- Scores are automatic measures calibrated on a few real clips and synthetic footage: "
        "borderline clips can be wrong either way (`tld report` shows the nearest ones).",
        "- A clip's `json` member is its manifest row when it was sharded; later columns "
        "(`split`, annotation results) are in `manifest.parquet`.",
        f"- Loaders give each of ranks x workers streams whole shards: use at most {shards} "
        "streams (for example 8 ranks x 8 workers needs 64 shards; lower `shard.max_bytes` "
        "when building to get more).",
    ]
    if shards < LOADER_STREAMS:
        lines.append(
            f"- This build has {shards} clip shards, fewer than {LOADER_STREAMS} (8 ranks x 8 "
            "workers)."
        )
    if not credited:
        lines.append("- No clip was kept.")
    return lines
