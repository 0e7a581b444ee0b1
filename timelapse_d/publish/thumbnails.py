"""Small JPEG thumbnails of a clip's first, middle and last frame, cut from its source video.

Rejected clips have no encoded file, so every thumbnail comes from the source the build read
(``local_path`` in videos.parquet). Each source is opened once; each frame is reached by a seek
to the keyframe before it and a decode up to its timestamp.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from av.video.frame import VideoFrame

from timelapse_d.media.probe import quarter_turns

THUMB_WIDTH = 160
JPEG_QUALITY = 80
SEEK_GAP_S = 2.0  # decode forward to targets closer than this, seek farther


def frame_times(clip: dict[str, Any]) -> list[float]:
    """Source timestamps (seconds) of the clip's first, middle and last frame."""
    fps = clip["fps"] or 25.0
    start = clip.get("start_time_s")
    start = start if start is not None else clip["start_frame"] / fps
    start += clip.get("first_frame_time_s") or 0.0
    last = max(clip["num_frames"] - 1, 0)
    return [start + offset / fps for offset in (0, last // 2, last)]


def clip_thumbnails(
    clips: list[dict[str, Any]], sources: dict[str, Path]
) -> dict[str, list[bytes]]:
    """{clip_id: [first, middle, last] JPEG bytes} for every clip whose source is readable."""
    by_video: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for clip in clips:
        by_video[clip["video_id"]].append(clip)
    thumbs: dict[str, list[bytes]] = {}
    for video_id, video_clips in by_video.items():
        path = sources.get(video_id)
        if path is None or not path.is_file():
            continue
        try:
            thumbs.update(_from_source(path, video_clips))
        except (av.FFmpegError, OSError, ValueError):
            continue  # a source that cannot be read gives no thumbnails, never a failed report
    return thumbs


def _from_source(path: Path, clips: list[dict[str, Any]]) -> dict[str, list[bytes]]:
    wanted = sorted(
        (t, clip["clip_id"], j) for clip in clips for j, t in enumerate(frame_times(clip))
    )
    found: dict[str, list[bytes | None]] = {clip["clip_id"]: [None] * 3 for clip in clips}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        half_frame = 0.5 / float(stream.average_rate or 25)
        time_base = stream.time_base
        assert time_base is not None  # a demuxed stream has one
        frames: Iterator[VideoFrame] = iter(())
        position = float("inf")  # time of the last decoded frame
        for time_s, clip_id, slot in wanted:
            if not position - half_frame <= time_s < position + SEEK_GAP_S:
                container.seek(max(int(time_s / time_base), 0), stream=stream)
                frames = container.decode(stream)
            frame: VideoFrame | None = None
            for frame in frames:
                position = frame.time if frame.time is not None else position
                if position >= time_s - half_frame:
                    break
            if frame is not None:
                found[clip_id][slot] = _jpeg(_upright(frame))
    return {k: v for k, v in found.items() if all(v)}  # type: ignore[misc]


def _upright(frame: Any) -> np.ndarray:
    return np.rot90(frame.to_ndarray(format="rgb24"), quarter_turns(frame.rotation))


def _jpeg(rgb: np.ndarray) -> bytes:
    height = max(2, round(rgb.shape[0] * THUMB_WIDTH / rgb.shape[1]))
    small = cv2.resize(rgb, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()
