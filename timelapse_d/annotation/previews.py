"""Stage `previews` of `tld annotate push`: a small H.264 MP4 per clip for annotators.

At most `PREVIEW_HEIGHT` pixels high, cropped like the clip, `+faststart` so the browser plays
it at once (Chromium, Firefox and Safari all do), cut from the source video the build read into
``OUT/annotations/previews/<clip_id>.mp4``. Run by :func:`timelapse_d.stages.base.run_stage`,
so a preview is made again only when its settings, its cut or its source (a local file's size
and time, a download's SHA-256) changed.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from timelapse_d.config import EncodeConfig, fingerprint
from timelapse_d.errors import ConfigError
from timelapse_d.executors import Executor, Resources
from timelapse_d.manifest import read_rows
from timelapse_d.runs import RunDir, file_identity
from timelapse_d.stages.base import MarkedStage, Outcome, run_stage
from timelapse_d.stages.encode import encode_clip

STAGE = "previews"
ANNOTATIONS = "annotations"
PREVIEWS = "previews"
PREVIEW_HEIGHT = 360
PREVIEW_ENCODE = EncodeConfig(crf=28, gop=25, max_height=PREVIEW_HEIGHT, stream_copy=False)
# The clip columns `encode_clip` cuts by: a preview depends on these, not on scores or status.
CUT_COLUMNS = (
    *("start_time_s", "first_frame_time_s", "num_frames", "fps", "width", "height"),
    *("crop_x", "crop_y", "crop_width", "crop_height"),
)


def preview_path(out: Path, clip_id: str) -> Path:
    """Where the preview of a clip lives (Label Studio serves it from this folder)."""
    return out / ANNOTATIONS / PREVIEWS / f"{clip_id}.mp4"


def source_paths(out: Path) -> dict[str, Path]:
    """Video id -> the source file the build read (`local_path` in videos.parquet)."""
    paths = {}
    for row in read_rows(out / "videos.parquet"):
        if row.get("local_path"):
            path = Path(row["local_path"])
            paths[row["video_id"]] = path if path.is_absolute() else out / path
    return paths


def source_identities(out: Path) -> dict[str, str]:
    """Video id -> the SHA-256 of a downloaded source (what a preview's key names instead of
    the file, which a streamed build deletes); none for a folder without videos.parquet."""
    videos = out / "videos.parquet"
    rows = read_rows(videos) if videos.is_file() else []
    return {row["video_id"]: row["sha256"] for row in rows if row.get("sha256")}


@dataclass(frozen=True)
class PreviewItem:
    """A clip row, the path of its source video and what identifies the source's bytes."""

    clip: dict[str, Any]
    source: str
    identity: str | list[int]


@dataclass(frozen=True)
class PreviewStage(MarkedStage):
    """Per clip: its preview; a clip ffmpeg cannot cut is a failure (recorded, retried)."""

    name: str = STAGE
    resources: Resources = Resources(cpus=1.0, memory_mb=512)

    def item_id(self, item: PreviewItem) -> str:
        return str(item.clip["clip_id"])

    def key(self, item: PreviewItem) -> str:
        cut = {column: item.clip.get(column) for column in CUT_COLUMNS}
        settings = dataclasses.asdict(PREVIEW_ENCODE)
        return fingerprint(settings, cut, item.identity)

    def run(self, item: PreviewItem, run_dir: RunDir) -> Outcome:
        out = preview_path(run_dir.out, self.item_id(item))
        return Outcome(encode_clip(item.clip, Path(item.source), out, PREVIEW_ENCODE), [out])


def make_previews(
    clips: list[dict[str, Any]], sources: dict[str, Path], out: Path, executor: Executor
) -> int:
    """Make the previews of `clips` not made yet under OUT; returns how many were made.

    Sources a streamed build deleted are fetched again wave by wave
    (:mod:`timelapse_d.sources.refetch`). Raises StageFailed when a preview could not be made
    (see ``OUT/run/failures/previews/``)."""
    run, stage = RunDir(out), PreviewStage()
    downloads = source_identities(out)
    ready, released = [], defaultdict(list)
    for clip in clips:
        source = sources.get(clip["video_id"])
        on_disk = source is not None and source.exists()
        if source is None or not (on_disk or clip["video_id"] in downloads):
            raise ConfigError(
                f"the source video of {clip['clip_id']} is not on disk ({source}): previews are "
                "cut from the sources `tld build` read; run `tld build` on this folder again"
            )
        identity = downloads.get(clip["video_id"]) or file_identity(source)
        item = PreviewItem(clip, str(source), identity)
        if on_disk or stage.done(run, stage.item_id(item), stage.key(item)) is not None:
            ready.append(item)
        else:
            released[clip["video_id"]].append(item)
    made = _run_previews(stage, ready, run, executor)
    if not released:
        return made
    from timelapse_d.sources.refetch import refetched  # downloads: the `acquire` extra

    for paths in refetched(sorted(released), out, executor):
        items = [replace(i, source=str(paths[v])) for v in paths for i in released[v]]
        made += _run_previews(stage, items, run, executor)
    return made


def _run_previews(
    stage: PreviewStage, items: list[PreviewItem], run: RunDir, executor: Executor
) -> int:
    result = run_stage(stage, items, run, executor)
    result.require_all(STAGE)
    return len(result.ran)
