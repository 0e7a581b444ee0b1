"""Stage `analyze`: probe a video and decode it once, feeding every measurement from that pass.

Output per video (``run/analyze/<video_id>.json``): the video row for ``videos.parquet`` and one
row per candidate clip with every score, before any threshold is applied. Expected per-video
failures (not a video, no video stream, unreadable) become a `failed` row with the reason; a
file that breaks part way keeps the clips of the frames that decoded, and says so in `error`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from timelapse_d.analysis.borders import BorderDetector
from timelapse_d.analysis.cuts import CutDetector, segments_from_cuts
from timelapse_d.analysis.motion import (
    MotionAnalyzer,
    MotionConfig,
    change_thumbnail,
    clip_motion_scores,
)
from timelapse_d.analysis.quality import QualityAnalyzer
from timelapse_d.config import AnalyzeConfig, fingerprint
from timelapse_d.errors import DecodeError, MediaError
from timelapse_d.executors import Executor, Resources
from timelapse_d.media.decode import Frame, analysis_size, iter_frames
from timelapse_d.media.probe import VideoProbe, probe_video
from timelapse_d.records import (
    KEYFRAME_HASH_COLUMNS,
    VIDEO_STATUS_FAILED,
    VIDEO_STATUS_OK,
    SourceVideo,
    Video,
    clip_id_for,
)
from timelapse_d.runs import RunDir, file_identity, read_json, write_json
from timelapse_d.stages.base import MarkedStage, Outcome, run_stage

STAGE = "analyze"
LOG = logging.getLogger("timelapse_d")
CROP_FIELDS = ("x", "y", "width", "height")


def _video_record(video: SourceVideo, probe: VideoProbe | None, error: str | None) -> Video:
    """The video's row of `videos.parquet` from its probe (`failed` without one)."""
    row = Video(video.video_id, video.source, video.source_uri, VIDEO_STATUS_FAILED, error)
    if probe is None:
        return row
    facts = asdict(probe)
    probed = {f.name: facts[f.name] for f in fields(Video) if f.name in facts}
    return replace(row, status=VIDEO_STATUS_OK, **probed)


def _time_at(times: list[float], index: int, fps: float) -> float:
    """Seconds from the first frame to frame `index` (one frame past the last one allowed)."""
    if index < len(times):
        return times[index] - times[0]
    return times[-1] - times[0] + (1.0 / fps if fps > 0 else 0.0)


@dataclass
class _Coding:
    """How the source coded its frames: what decides whether a clip can be stream-copied."""

    keyframes: list[int] = field(default_factory=list)
    b_frames: bool = False

    def update(self, frame: Frame) -> None:
        if frame.key_frame:
            self.keyframes.append(frame.index)
        self.b_frames |= frame.bidirectional

    def clip_facts(self, probe: VideoProbe, start: int, end: int) -> dict[str, Any]:
        """`stream_copyable`: an H.264 4:2:0 upright source without B-frames whose clip starts
        on a keyframe; `max_keyframe_gap`: the longest run of frames without a keyframe."""
        inside = [k for k in self.keyframes if start <= k < end]
        gaps = np.diff([*inside, end]) if inside else np.array([end - start])
        copyable = (
            probe.codec == "h264"
            and probe.pix_fmt == "yuv420p"
            and not probe.rotation
            and not self.b_frames
            and bool(inside)
            and inside[0] == start
        )
        return {"stream_copyable": copyable, "max_keyframe_gap": int(gaps.max())}


def _deblock(config: AnalyzeConfig, probe: VideoProbe) -> str:
    """Frames to deblock when decoding for analysis: none in sources at least
    ``skip_loop_filter_height`` tall, else only those other frames are predicted from (the
    other frames' blocking never spreads and vanishes at analysis size; the PySceneDetect
    goldens and every decision stay the same)."""
    tall = 0 < config.skip_loop_filter_height <= probe.height
    return "none" if tall else "reference"


def _keyframe_hashes(hashes: np.ndarray, start: int, end: int) -> dict[str, int]:
    """Hashes of the frames at a quarter, half and three quarters of the clip, as int64."""
    picks = [start + (end - start) * q // 4 for q in (1, 2, 3)]
    signed = hashes[picks].view(np.int64)
    return {name: int(value) for name, value in zip(KEYFRAME_HASH_COLUMNS, signed, strict=True)}


def _clip_rows(
    video: SourceVideo,
    probe: VideoProbe,
    cut_result: Any,
    motion: MotionAnalyzer,
    borders: BorderDetector,
    quality: QualityAnalyzer,
    coding: _Coding,
    times: list[float],
    analysis_width: int,
) -> list[dict[str, Any]]:
    num_frames = len(times)
    pairs = motion.pairs()
    rows = []
    for start, end in segments_from_cuts(cut_result.cuts, num_frames):
        luma = cut_result.luma_mean[start:end]
        row = {
            "clip_id": clip_id_for(video.video_id, start, end),
            "video_id": video.video_id,
            "source_uri": video.source_uri,
            "start_frame": start,
            "end_frame": end,
            "first_frame_time_s": times[0],
            "start_time_s": times[start] - times[0],
            "end_time_s": _time_at(times, end, probe.fps),
            "fps": probe.fps,
            "width": probe.width,
            "height": probe.height,
            "num_frames": end - start,
            "mean_luma": float(luma.mean()) / 255.0,
            "black_fraction": float(cut_result.black[start:end].mean()),
            "flashes": sum(1 for f in cut_result.flashes if start <= f < end),
        }
        row.update(clip_motion_scores(pairs, start, end, analysis_width))
        row.update(quality.clip_scores(start, end))
        row.update(coding.clip_facts(probe, start, end))
        row.update(_keyframe_hashes(cut_result.hashes, start, end))
        crop = borders.crop_for(start, end, probe.width, probe.height)
        row.update({f"crop_{k}": (getattr(crop, k) if crop else None) for k in CROP_FIELDS})
        rows.append(row)
    return rows


def _failed(video: SourceVideo, exc: MediaError) -> dict[str, Any]:
    """The result of a video that yielded no frame: its `failed` row and no clips."""
    return {
        "video": _video_record(video, None, f"{exc.reason}: {exc}").row(),
        "clips": [],
        "stats": {},
    }


def analyze_video(video: SourceVideo, config: AnalyzeConfig) -> dict[str, Any]:
    """Probe, decode once and measure; return {'video': row, 'clips': rows, 'stats': ...}."""
    started = time.monotonic()
    path = Path(video.path)
    try:
        probe = probe_video(path)
    except MediaError as exc:
        return _failed(video, exc)
    width, height = analysis_size(probe.width, probe.height, config.width)
    cuts = CutDetector(config, probe.fps)
    motion = MotionAnalyzer(MotionConfig(pair_stride=config.motion_pair_stride))
    borders = BorderDetector()
    quality = QualityAnalyzer(probe.fps)
    coding = _Coding()
    times: list[float] = []
    error = None
    try:
        deblock = _deblock(config, probe)
        for frame in iter_frames(path, width=width, height=height, deblock=deblock, ahead=8):
            gray = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)  # once, for every analyzer
            cuts.update(frame.index, frame.image, gray)
            thumb = change_thumbnail(gray)  # shared by the motion and held-still measures
            motion.update(frame.index, gray, thumb)
            borders.update(frame.index, gray)
            quality.update(frame.index, gray, thumb)
            coding.update(frame)
            times.append(frame.time_s)
    except DecodeError as exc:
        if not times:
            return _failed(video, exc)
        error = f"{exc.reason}: {exc} (kept the {len(times)} frames before the error)"
    cut_result = cuts.finish()
    row = replace(_video_record(video, probe, error), decoded_frames=len(times))
    clips = _clip_rows(video, probe, cut_result, motion, borders, quality, coding, times, width)
    elapsed = time.monotonic() - started
    stats = {
        "decoded_frames": len(times),
        "seconds": round(elapsed, 3),
        "fps": round(len(times) / elapsed, 1) if elapsed > 0 else None,
        "clips": len(clips),
        "detector_cuts": cut_result.detector_cuts,
        "flashes": cut_result.flashes,
    }
    return {"video": row.row(), "clips": clips, "stats": stats}


@dataclass(frozen=True)
class AnalyzeStage(MarkedStage):
    """Per source video: ``run/analyze/<video_id>.json`` holding :func:`analyze_video`'s result;
    keyed on the analyze settings, the file's URI and its content id (a download's SHA-256) or
    else its size and modification time."""

    config: AnalyzeConfig
    name: str = STAGE
    resources: Resources = Resources(cpus=1.0, memory_mb=1024)

    def item_id(self, video: SourceVideo) -> str:
        return video.video_id

    def key(self, video: SourceVideo) -> str:
        identity = video.content_id or file_identity(video.path)
        return fingerprint(asdict(self.config), video.source_uri, identity)

    def done(self, run_dir: RunDir, item_id: str, key: str) -> dict[str, Any] | None:
        """Done when marked and its saved result still parses (damage that kept the file's
        size escapes the marker's size check)."""
        stats = super().done(run_dir, item_id, key)
        if stats is None:
            return None
        try:
            read_result(run_dir, item_id)
        except ValueError:  # not JSON, or not UTF-8
            LOG.warning("analyze: the saved result of %s is damaged; analyzing it again", item_id)
            return None
        return stats

    def run(self, video: SourceVideo, run_dir: RunDir) -> Outcome:
        result = analyze_video(video, self.config)
        path = result_path(run_dir, video.video_id)
        write_json(path, result)
        return Outcome(result["stats"], [path])


def result_path(run_dir: RunDir, video_id: str) -> Path:
    return run_dir.stage_dir(STAGE) / f"{video_id}.json"


def read_result(run_dir: RunDir, video_id: str) -> dict[str, Any]:
    """The saved result of an analyzed video: {'video': row, 'clips': rows, 'stats': ...}."""
    result: dict[str, Any] = read_json(result_path(run_dir, video_id))
    return result


def analyze_videos(
    videos: list[SourceVideo], config: AnalyzeConfig, run_dir: RunDir, executor: Executor
) -> dict[str, dict[str, Any]]:
    """Analyze every video not done yet; {video_id: result} of those analyzed (a video whose
    task failed is left out: see run/failures/analyze/)."""
    done = run_stage(AnalyzeStage(config), videos, run_dir, executor).stats
    return {v.video_id: read_result(run_dir, v.video_id) for v in videos if v.video_id in done}


def encode_sources(
    videos: list[SourceVideo], config: AnalyzeConfig, analyzed: dict[str, Any]
) -> dict[str, tuple[str, str]]:
    """{video_id: (path, fingerprint)} of the analyzed videos, for the encode stage: a source's
    fingerprint is its analyze key (settings, URI, content id or size and modification time)."""
    stage = AnalyzeStage(config)
    return {v.video_id: (v.path, stage.key(v)) for v in videos if v.video_id in analyzed}
