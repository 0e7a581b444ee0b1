"""`tld annotate push`: one Label Studio task per selected clip, with a preview and the
automatic decision as a pre-annotation.

Tasks are keyed by `clip_id` (in the task data): a push lists the project's tasks first and
only creates the clips it lacks, in batches, and updates tasks whose data or pre-annotation
changed, so pushing again never duplicates a task and never touches annotations. A push
stopped part way (server down, killed command) is completed by running it again.

What annotators see comes from the stored scores only, never from earlier answers: the
automatic decision (`automatic`) as the pre-annotation and in `auto_status`/`auto_reasons`,
and the scores near their thresholds as hints. Gold membership stays in
``OUT/annotations/gold.parquet``: a gold task looks like any other. The project's overlap and
other settings persist until given again; its instructions are
`timelapse_d/annotation_config/guidelines.md`.

Previews (`annotation/previews.py`) are served by Label Studio from
``OUT/annotations/previews/`` through its local-files storage; the view plays them muted and
looped, scaled to the available width.
"""

from __future__ import annotations

import dataclasses
import html
import math
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from timelapse_d.annotation.previews import (
    ANNOTATIONS,
    PREVIEWS,
    make_previews,
    preview_path,
    source_paths,
)
from timelapse_d.annotation.server import AnnotationServerError
from timelapse_d.annotation.studio import Studio
from timelapse_d.annotation.taxonomy import (
    DECISION,
    HINTS_FIELD,
    KEEP,
    PLAYER_FIELD,
    REASONS,
    REJECT,
    VIDEO_FIELD,
    GoldTask,
    Taxonomy,
    guidelines_html,
    label_config_xml,
    load_taxonomy,
    read_gold,
)
from timelapse_d.config import FilterConfig, saved_build_config
from timelapse_d.errors import ConfigError
from timelapse_d.executors import LocalExecutor
from timelapse_d.manifest import REJECT_REASONS, read_rows, write_table
from timelapse_d.records import CLIP_KEPT, Clip
from timelapse_d.runs import read_json, write_json
from timelapse_d.stages.filter import CAMERA_LIMITS, HUMAN_REJECT, NEVER_OVERRIDDEN, decide

GOLD_FILE = "gold.parquet"
PUSH_FILE = "push.json"
SELECTIONS = ("all", "kept", "borderline", "reason=<reject reason>")
REASON_SELECTION = "reason="
# The reasons `--select reason=` takes: those of the automatic decision of a clip with footage
# (not the annotators', nor those of clips that failed to encode or download).
NOT_SENT_REASONS = {HUMAN_REJECT, "encode_failed", "source_<class>", "download_failed"}
SELECTABLE_REASONS = tuple(r for r in REJECT_REASONS if r not in NOT_SENT_REASONS)
MODEL_VERSION = "timelapse-d-filter"
GOLD_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("decision", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("categories", pa.list_(pa.string())),
    ]
)
# Scores whose threshold turns into a soft reject reason: (column, FilterConfig limit, kind);
# a "max" score rejects above its limit, a "min" score below it.
BORDERLINE_SCORES = (
    *((column, limit, "max") for column, limit in CAMERA_LIMITS),
    ("scene_motion", "min_scene_motion", "min"),
    ("frame_change", "min_frame_change", "min"),
    ("sharpness", "min_sharpness", "min"),
    ("highlight_luma", "min_highlight_luma", "min"),
    ("clipped_white", "max_clipped_white", "max"),
)
# Automatic reasons as the taxonomy's reject reasons (the pre-annotation annotators confirm).
PRE_ANNOTATED_REASONS = {
    "camera_motion": "camera_motion",
    "static": "not_timelapse",
    "slideshow": "not_timelapse",
    "blurry": "low_quality",
    "too_dark": "low_quality",
    "blown_out": "low_quality",
    "low_resolution": "low_quality",
}


@dataclass(frozen=True)
class PushSummary:
    project_id: int
    selected: int
    created: int
    updated: int
    unchanged: int
    previews_made: int
    preview_seconds: float
    task_seconds: float

    def text(self) -> str:
        return (
            f"project {self.project_id}: {self.selected} clips selected; {self.created} tasks "
            f"created, {self.updated} updated, {self.unchanged} unchanged; {self.previews_made} "
            f"previews made in {self.preview_seconds:.1f} s; tasks sent in "
            f"{self.task_seconds:.1f} s"
        )


def _measured(
    clip: dict[str, Any], config: FilterConfig
) -> Iterator[tuple[str, float, float, str]]:
    """(column, value, limit, kind) of each `BORDERLINE_SCORES` score the clip has."""
    for column, limit_name, kind in BORDERLINE_SCORES:
        value, limit = clip.get(column), getattr(config, limit_name)
        if value is not None and limit is not None and value >= 0 and limit > 0:
            yield column, value, limit, kind


def _near(value: float, limit: float, factor: float) -> bool:
    return value > 0 and abs(math.log(value / limit)) < math.log(factor)


def is_borderline(clip: dict[str, Any], config: FilterConfig, factor: float) -> bool:
    """Whether a soft score lies within `factor` of its threshold (either side), so the
    automatic decision about it is uncertain."""
    return any(_near(v, limit, factor) for _, v, limit, _ in _measured(clip, config))


def automatic(clip: dict[str, Any], config: FilterConfig) -> dict[str, Any]:
    """The clip as the automatic filter decided it from its stored scores (thresholds in
    `config`), whatever annotators answered since."""
    return dataclasses.asdict(decide(Clip.from_row(clip), config))


def select_clips(
    rows: Sequence[dict[str, Any]],
    selection: str,
    config: FilterConfig,
    gold: Sequence[str] = (),
    factor: float = 1.5,
) -> list[dict[str, Any]]:
    """The clips to annotate, as the automatic filter decided them: all, the kept ones, the
    borderline ones, or those with one automatic reject reason (``reason=camera_motion``);
    gold clips always. Clips no human keep can rescue (`NEVER_OVERRIDDEN`: too short, too
    small, unreadable, duplicate) are left out unless their reason is the one selected."""
    reason = selection.removeprefix(REASON_SELECTION)
    if selection not in SELECTIONS[:-1] and not (
        selection.startswith(REASON_SELECTION) and reason in SELECTABLE_REASONS
    ):
        raise ConfigError(
            f"--select must be one of {', '.join(SELECTIONS)} (reasons: "
            f"{', '.join(SELECTABLE_REASONS)}), not {selection!r}"
        )
    gold_ids = set(gold)
    missing = gold_ids - {r["clip_id"] for r in rows}
    if missing:
        raise ConfigError(f"gold clips not in the manifest: {sorted(missing)[:5]}")
    picked = {
        "all": lambda c: True,
        "kept": lambda c: c["status"] == CLIP_KEPT,
        "borderline": lambda c: is_borderline(c, config, factor),
    }.get(selection, lambda c: reason in c["reject_reasons"])
    usable = [r for r in rows if not r.get("encode_error") and not r.get("source_error")]
    chosen = []
    for clip in (automatic(r, config) for r in usable):
        reasons = set(clip["reject_reasons"])
        wanted = picked(clip) and not (reasons & NEVER_OVERRIDDEN) - {reason}
        if wanted or clip["clip_id"] in gold_ids:
            chosen.append(clip)
    return chosen


def pre_annotation(clip: dict[str, Any], taxonomy: Taxonomy) -> dict[str, Any]:
    """The automatic decision of `clip` (see `automatic`) as a Label Studio prediction
    (choices by taxonomy id)."""
    auto = clip.get("reject_reasons") or []
    decision = KEEP if clip["status"] == CLIP_KEPT else REJECT
    result = [_choices(DECISION, [decision])]
    reasons = sorted(
        {PRE_ANNOTATED_REASONS.get(r, "other") for r in auto} & set(taxonomy.reason_ids)
    )
    if decision == REJECT and reasons:
        result.append(_choices(REASONS, reasons))
    return {"model_version": MODEL_VERSION, "result": result}


def _choices(name: str, values: list[str]) -> dict[str, Any]:
    return {
        "from_name": name,
        "to_name": VIDEO_FIELD,
        "type": "choices",
        "value": {"choices": values},
    }


def _chosen(result: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """The choices of a prediction's result, by control name."""
    return {r["from_name"]: sorted(r["value"]["choices"]) for r in result}


def score_hints(clip: dict[str, Any], config: FilterConfig, factor: float = 1.5) -> str:
    """The scores within `factor` of their threshold or past it, with the threshold: what an
    annotator may look at twice, without the verdict."""
    shown = []
    for column, value, limit, kind in _measured(clip, config):
        past = value > limit if kind == "max" else value < limit
        if past or _near(value, limit, factor):
            bound = "at most" if kind == "max" else "at least"
            shown.append(f"{column.replace('_', ' ')} {value:.3g} ({bound} {limit:.3g})")
    listed = "; ".join(shown) if shown else "none near its threshold"
    return f"Scores to look at (a hint, not the answer): {listed}"


def task_data(clip: dict[str, Any], video_url: str, config: FilterConfig) -> dict[str, Any]:
    """What a task holds: the preview (its URL and the player showing it), the clip's
    identity, its automatic decision and score hints. Nothing in it says whether the task is
    gold or what an annotator answered."""
    source = html.escape(video_url, quote=True)
    return {
        VIDEO_FIELD: video_url,
        PLAYER_FIELD: (
            f'<video src="{source}" autoplay muted loop playsinline controls preload="auto" '
            'style="display:block;width:100%;max-height:62vh;background:#000"></video>'
        ),
        "clip_id": clip["clip_id"],
        "video_id": clip["video_id"],
        "auto_status": clip["status"],
        "auto_reasons": ", ".join(clip.get("reject_reasons") or []),
        HINTS_FIELD: score_hints(clip, config),
    }


def store_gold(gold_file: Path, out: Path, taxonomy: Taxonomy) -> dict[str, GoldTask]:
    """Check the gold file and keep a copy in OUT/annotations/gold.parquet for `pull`."""
    gold = read_gold(gold_file, taxonomy)
    rows = [
        {"clip_id": g.clip_id, "decision": g.decision, "reasons": list(g.reasons),
         "categories": list(g.categories)}
        for g in gold.values()
    ]  # fmt: skip
    write_table(out / ANNOTATIONS / GOLD_FILE, rows, GOLD_SCHEMA)
    return gold


def stored_gold(out: Path, taxonomy: Taxonomy) -> dict[str, GoldTask]:
    """The gold tasks of the last push with --gold; empty without."""
    path = out / ANNOTATIONS / GOLD_FILE
    return read_gold(path, taxonomy) if path.exists() else {}


def push(
    out: Path,
    studio: Studio,
    project: str,
    overlap: int | None = None,
    selection: str = "all",
    gold_file: Path | None = None,
    workers: int = 1,
    batch_size: int = 100,
    on_batch: Callable[[int], None] | None = None,
) -> PushSummary:
    """Create or update the project and its tasks; see the module docstring. `overlap`
    None keeps the project's overlap (1 for a new project)."""
    if overlap is not None and overlap < 1:
        raise ConfigError(f"--overlap must be at least 1, not {overlap}")
    if shutil.which("ffmpeg") is None:
        raise ConfigError("ffmpeg is needed for the previews: apt-get install -y ffmpeg")
    taxonomy = load_taxonomy()
    gold = store_gold(gold_file, out, taxonomy) if gold_file else stored_gold(out, taxonomy)
    rows = read_rows(out / "manifest.parquet")
    config = saved_build_config(out).filter
    clips = select_clips(rows, selection, config, list(gold))
    previews = out / ANNOTATIONS / PREVIEWS
    started = time.monotonic()
    made = make_previews(clips, source_paths(out), out, LocalExecutor(workers))
    preview_seconds = time.monotonic() - started
    started = time.monotonic()
    project_id, overlap = studio.ensure_project(
        project, label_config_xml(taxonomy), guidelines_html(), overlap
    )
    studio.ensure_local_storage(project_id, previews)
    existing = {t["data"].get("clip_id"): t for t in studio.tasks(project_id)}
    new, updated = [], 0
    for clip in clips:
        data = task_data(clip, studio.file_url(preview_path(out, clip["clip_id"])), config)
        prediction = pre_annotation(clip, taxonomy)
        task = existing.get(clip["clip_id"])
        if task is None:
            new.append({"data": data, "predictions": [prediction]})
            continue
        ours = [p for p in task["predictions"] if p["model_version"] == MODEL_VERSION]
        stale = [_chosen(p["result"]) for p in ours] != [_chosen(prediction["result"])]
        if task["data"] != data:
            studio.update_task(task["id"], data)
        if stale:
            studio.replace_predictions(task["id"], [p["id"] for p in ours], prediction)
        if task["data"] != data or stale:
            updated += 1
    for start in range(0, len(new), batch_size):
        studio.import_tasks(project_id, new[start : start + batch_size])
        if on_batch is not None:
            on_batch(start + len(new[start : start + batch_size]))
    summary = PushSummary(
        project_id=project_id,
        selected=len(clips),
        created=len(new),
        updated=updated,
        unchanged=len(clips) - len(new) - updated,
        previews_made=made,
        preview_seconds=preview_seconds,
        task_seconds=time.monotonic() - started,
    )
    _record_push(out, studio.url, project, project_id, overlap)
    return summary


def _record_push(out: Path, url: str, title: str, project_id: int, overlap: int) -> None:
    write_json(
        out / ANNOTATIONS / PUSH_FILE,
        {"url": url, "project": title, "project_id": project_id, "overlap": overlap},
    )


def pushed_project(out: Path) -> dict[str, Any]:
    """What the last push recorded (server URL, project title and id)."""
    path = out / ANNOTATIONS / PUSH_FILE
    if not path.exists():
        raise AnnotationServerError(f"{out} has not been pushed: run `tld annotate push` first")
    return read_json(path)
