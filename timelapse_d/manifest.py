"""Parquet tables of a build: `videos.parquet` and `manifest.parquet` (and one per shard).

The contract columns have fixed Arrow types (so an empty table or an all-null column still has
the documented schema); every other column is a score, stored as float64 unless it is an int.
`manifests/README.md` documents each column; `tld schema` prints it from this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from timelapse_d.config import ConfigError
from timelapse_d.runs import write_atomic

VIDEO_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("source", pa.string()),
        ("source_uri", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("codec", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("fps", pa.float64()),
        ("duration_s", pa.float64()),
        ("num_frames", pa.int64()),
        ("decoded_frames", pa.int64()),
        ("pix_fmt", pa.string()),
        ("rotation", pa.float64()),
        ("variable_frame_rate", pa.bool_()),
        ("page_url", pa.string()),
        ("owner_id", pa.string()),
        ("owner_name", pa.string()),
        ("license_id", pa.string()),
        ("license_name", pa.string()),
        ("license_url", pa.string()),
        ("title", pa.string()),
        ("upload_date", pa.string()),
        ("taken_date", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("listed_duration_s", pa.float64()),
        ("download_bytes", pa.int64()),
        ("download_attempts", pa.int64()),
        ("sha256", pa.string()),
        ("local_path", pa.string()),
    ]
)

CLIP_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("source_uri", pa.string()),
        ("start_frame", pa.int64()),
        ("end_frame", pa.int64()),
        ("fps", pa.float64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("num_frames", pa.int64()),
        ("status", pa.string()),
        ("reject_reasons", pa.list_(pa.string())),
        ("shard", pa.string()),
        ("encode_error", pa.string()),
        ("clip_bytes", pa.int64()),
        ("stream_copied", pa.bool_()),
        ("duplicate_of", pa.string()),
        ("source_error", pa.string()),
        ("categories", pa.list_(pa.string())),
        ("split", pa.string()),
        ("human_decision", pa.string()),
        ("human_reasons", pa.list_(pa.string())),
        ("agreement", pa.float64()),
        ("n_annotations", pa.int64()),
        ("crop_x", pa.int64()),
        ("crop_y", pa.int64()),
        ("crop_width", pa.int64()),
        ("crop_height", pa.int64()),
    ]
)


VIDEO_COLUMNS = {
    "video_id": "Stable id of the source video (source name + hash of its key); no dots.",
    "source": "Source that produced it: `local`, `synthetic`, ...",
    "source_uri": "Where it came from (`file://` URI for files on disk).",
    "status": "`ok`, or `failed` when the file could not be used at all.",
    "error": "Null, or `reason: message` (`empty_file`, `not_a_video`, `no_video_stream`, "
    "`unreadable`, `truncated`; for downloads `removed`, `private`, `geo_blocked`, "
    "`rate_limited`, `bot_check`, `network`, `unsupported`, `corrupt`). A truncated file is "
    "`ok` with the frames before the break.",
    "codec": "Video codec name (probe).",
    "page_url": "Remote sources: the video's public page (null for local files).",
    "owner_id": "Remote sources: the uploader's id on the source.",
    "owner_name": "Remote sources: the uploader's name, for attribution.",
    "license_id": "Remote sources: the source's licence id.",
    "license_name": "Remote sources: the licence name (from the source, e.g. Flickr's "
    "photos.licenses.getInfo).",
    "license_url": "Remote sources: the licence's URL.",
    "title": "Remote sources: the video's title.",
    "upload_date": "Remote sources: upload time (ISO 8601, UTC).",
    "taken_date": "Remote sources: capture time as the source states it.",
    "tags": "Remote sources: the uploader's tags.",
    "latitude": "Remote sources: place of capture, when published.",
    "longitude": "Remote sources: place of capture, when published.",
    "listed_duration_s": "Remote sources: duration the source lists (before download).",
    "download_bytes": "Remote sources: size of the downloaded file.",
    "download_attempts": "Remote sources: download attempts (retries after transient errors).",
    "sha256": "Remote sources: SHA-256 of the downloaded file.",
    "local_path": "The file the build read (relative to the build folder when inside it); "
    "`tld annotate push` cuts its previews from it.",
    "width": "Display width in pixels, after rotation (probe).",
    "height": "Display height in pixels, after rotation (probe).",
    "fps": "Average frame rate (probe).",
    "duration_s": "Duration in seconds (probe).",
    "num_frames": "Frame count the container declares, or duration x fps when it has none.",
    "decoded_frames": "Frames the analysis pass actually decoded.",
    "pix_fmt": "Pixel format of the source (probe).",
    "rotation": "Display rotation in degrees (frames are analysed and encoded upright).",
    "variable_frame_rate": "True when timestamps are not evenly spaced.",
}

CLIP_COLUMNS = {
    "clip_id": "`<video_id>-<start_frame>-<end_frame>` (7-digit frames); stable, no dots; the "
    "WebDataset key.",
    "video_id": "The source video.",
    "source_uri": "The source video's URI.",
    "start_frame": "First source frame of the clip (0-based, presentation order).",
    "end_frame": "One past the last source frame (exclusive).",
    "fps": "Frame rate of the source.",
    "width": "Source display width in pixels.",
    "height": "Source display height in pixels.",
    "num_frames": "end_frame - start_frame.",
    "status": "`kept` or `rejected`; rejected clips stay in the manifest.",
    "reject_reasons": "List of reasons (empty when kept); see the table of reasons.",
    "shard": "Tar holding the clip (`clips-NNNNNN.tar`), null when rejected.",
    "encode_error": "Why encoding failed, when it did (reason `unreadable`).",
    "clip_bytes": "Size of the encoded clip in its shard.",
    "stream_copied": "True when the clip's coded frames were copied from the source (see "
    "`stream_copyable`), false when it was re-encoded.",
    "stream_copyable": "The source is H.264 4:2:0, upright, without B-frames, and the clip starts "
    "on a keyframe: it can be copied when it also needs no crop or scaling.",
    "max_keyframe_gap": "Longest run of source frames in the clip without a keyframe.",
    "duplicate_of": "For a `duplicate`, the kept clip it repeats.",
    "categories": "Scene categories (annotation/taxonomy.yaml) resolved from annotators; null "
    "until annotated.",
    "human_decision": "`keep` or `reject` resolved from annotators by `tld annotate pull` "
    "(weighted or majority vote); null until annotated.",
    "human_reasons": "Reject reasons (annotation/taxonomy.yaml) the rejecting annotators gave; "
    "null until annotated.",
    "agreement": "Share of the annotators' weight behind `human_decision` (0.5-1); null with "
    "one annotator.",
    "n_annotations": "Annotators who answered the clip (their latest answer each); 0 until "
    "annotated.",
    "split": "`train` or `test` after `tld split` (kept clips only; whole source videos on one "
    "side, every category in the configured proportion); null otherwise.",
    "source_error": "`tld rehydrate`: why the clip's source could not be downloaded "
    "(`class: message`).",
    "dhash_q1": "64-bit difference hash (as int64) of the frame a quarter into the clip.",
    "dhash_mid": "Difference hash of the middle frame.",
    "dhash_q3": "Difference hash of the frame three quarters into the clip.",
    "crop_x": "Left of the picture inside letterbox/pillarbox bars (source pixels), null without "
    "bars; the encoded clip is cropped to it.",
    "crop_y": "Top of the picture inside the bars, null without bars.",
    "crop_width": "Width of the picture inside the bars, null without bars.",
    "crop_height": "Height of the picture inside the bars, null without bars.",
    "first_frame_time_s": "Timestamp of the source's first decoded frame (seconds).",
    "start_time_s": "Clip start, seconds from the first frame.",
    "end_time_s": "Clip end, seconds from the first frame.",
    "mean_luma": "Mean brightness, 0-1.",
    "black_fraction": "Share of frames that are black (flat and darker than analyze.black_luma).",
    "flashes": "Single-frame flashes inside the clip that were not taken as cuts.",
    "camera_translation": "Typical camera translation per frame, in frame widths (median).",
    "camera_drift": "Net camera displacement per frame (median over the clip's pairs of each "
    "axis), in frame widths.",
    "camera_zoom": "Typical relative scale change per frame (median |zoom|).",
    "camera_rotation": "Typical camera rotation per frame, radians.",
    "camera_shake": "Jitter of the camera translation, frame widths.",
    "scene_motion": "Motion left after removing camera motion, frame widths per frame.",
    "frame_change": "Frame difference of the most-changing 1% of the frame (99th percentile, "
    "frames area-averaged to 64 px wide), median over pairs, 0-1.",
    "motion_pairs": "Frame pairs measured for the motion scores.",
    "sharpness": "1 - no-reference blur estimate (share of local contrast a further blur would "
    "remove), median over every 4th frame at the analysis size, 0-1; null when too flat to judge.",
    "highlight_luma": "Luma below which 99.5% of pixels lie, median over every 4th frame, 0-1.",
    "clipped_white": "Share of pixels at luma 250 or more, median over every 4th frame.",
    "stills": "Held pictures the clip is made of (isolated jumps over a still background + 1); "
    "0 for continuous footage.",
    "mean_still_s": "Clip duration divided by `stills` (seconds); 0 when `stills` is 0.",
}

REJECT_REASONS = {
    "low_resolution": "Height below `filter.min_height` or width below `filter.min_width`.",
    "too_short": "Fewer than `filter.min_frames` frames.",
    "camera_motion": "Pan, tilt, zoom, rotation or shake above the `filter.max_camera_*` limits.",
    "static": "Scene motion below `filter.min_scene_motion` and frame change below "
    "`filter.min_frame_change`: a still photo, a held slideshow photo, black frames.",
    "slideshow": "Made of at least `filter.min_stills` held pictures (`stills`), held "
    "`filter.min_still_s` or longer on average: photos shown a few per second, not continuous "
    "footage.",
    "blurry": "`sharpness` below `filter.min_sharpness`: defocused, smeared or upscaled.",
    "too_dark": "`highlight_luma` below `filter.min_highlight_luma`: almost nothing in the frame "
    "is brighter than near-black (a night sky with stars, moon or aurora stays above it).",
    "blown_out": "`clipped_white` above `filter.max_clipped_white`: the picture is burnt white.",
    "human_reject": "Annotators rejected it (`human_decision`); their reasons are in "
    "`human_reasons`. A human keep lifts the automatic `camera_motion`, `static`, `slideshow`, "
    "`blurry`, `too_dark` and `blown_out`.",
    "duplicate": "Its keyframe hashes differ from an earlier kept clip's (`duplicate_of`) by at "
    "most `filter.max_duplicate_bits` bits in all: the same footage in another file, size or "
    "encoding.",
    "unreadable": "The clip could not be cut and encoded (`encode_error` says why).",
    "encode_failed": "The encode task crashed unexpectedly (traceback in run/failures/encode/).",
    "source_<class>": "`tld rehydrate`: the clip's source could not be downloaded; the class "
    "is the download error's (`source_removed`, `source_private`, ...; see `source_error`).",
    "download_failed": "`tld rehydrate`: the download task crashed unexpectedly (traceback in "
    "run/failures/).",
}


def schema_markdown() -> str:
    """The manifest documentation (manifests/README.md is this text)."""
    parts = [
        "# Manifest schema",
        "",
        "Generated by `tld schema` from `timelapse_d/manifest.py`; do not edit by hand.",
        "",
        "## `videos.parquet`: one row per source video",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
    ]
    parts += [f"| `{f.name}` | {f.type} | {VIDEO_COLUMNS[f.name]} |" for f in VIDEO_SCHEMA]
    parts += [
        "",
        "## `manifest.parquet`: one row per candidate clip, kept and rejected",
        "",
        "The same rows, for the clips of one shard, are in `shards/clips-NNNNNN.parquet`, and",
        "each sample's `.json` member is its row.",
        "",
        "| column | meaning |",
        "|---|---|",
    ]
    parts += [f"| `{name}` | {text} |" for name, text in CLIP_COLUMNS.items()]
    parts += ["", "## Reject reasons", "", "| reason | when |", "|---|---|"]
    parts += [f"| `{name}` | {text} |" for name, text in REJECT_REASONS.items()]
    return "\n".join(parts) + "\n"


def _schema_for(rows: list[dict[str, Any]], base: pa.Schema) -> pa.Schema:
    fields = list(base)
    known = set(base.names)
    extra = sorted({key for row in rows for key in row} - known)
    for key in extra:
        values = [row.get(key) for row in rows if row.get(key) is not None]
        is_int = values and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        is_bool = values and all(isinstance(v, bool) for v in values)
        kind = pa.bool_() if is_bool else pa.int64() if is_int else pa.float64()
        fields.append(pa.field(key, kind))
    return pa.schema(fields)


def to_table(rows: list[dict[str, Any]], base: pa.Schema) -> pa.Table:
    """Rows to a table with the contract schema first, then the score columns sorted by name."""
    schema = _schema_for(rows, base)
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.table(columns, schema=schema)


def write_table(path: Path, rows: list[dict[str, Any]], base: pa.Schema) -> None:
    """Write rows as Parquet, atomically."""
    table = to_table(rows, base)
    write_atomic(path, lambda fh: pq.write_table(table, fh))


def read_table(path: Path, **options: Any) -> pa.Table:
    """A Parquet table; ConfigError naming the file when it is missing or not Parquet."""
    try:
        return pq.read_table(path, **options)
    except FileNotFoundError:
        raise ConfigError(f"{path} not found") from None
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path} is not a readable Parquet file ({reason})") from None


def read_rows(path: Path) -> list[dict[str, Any]]:
    """All rows of a Parquet table as dicts (ConfigError when it cannot be read)."""
    return read_table(path).to_pylist()
