"""Probe a video file with PyAV: open it once, read its facts, classify why it is unusable.

``open_video`` is shared with the decoder so both give the same reason for the same bad file:
``missing_file``, ``empty_file``, ``not_a_video`` (HTML/text/garbage/still image),
``no_video_stream`` (audio only), ``truncated`` (an MP4/MOV whose boxes run past the end of
the file, e.g. a download cut short before its index) and ``unreadable`` (a recognized
video container FFmpeg cannot open, or a stream with no decodable frame).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from timelapse_d.errors import MediaError, ProbeError

_HEAD_BYTES = 512
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n\r\f" + bytes(range(0x80, 0x100))
_ISO_BMFF_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}
_MAGIC = (
    b"\x1a\x45\xdf\xa3",  # Matroska / WebM
    b"RIFF",  # AVI
    b"FLV",
    b"OggS",
    b"\x00\x00\x01\xba",  # MPEG program stream
    b"\x30\x26\xb2\x75",  # ASF / WMV
)
_MAX_PACKETS_FOR_FIRST_FRAME = 300
_VFR_TOLERANCE = 0.05
# Metadata that is not valid UTF-8 must not make a video unreadable: PyAV before 19 raises on it
# unless told to ignore it; PyAV 19 dropped the option and no longer raises.
_OPEN_OPTIONS: dict[str, Any] = (
    {"metadata_errors": "ignore"} if int(av.__version__.split(".")[0]) < 19 else {}
)


@dataclass(frozen=True, slots=True)
class VideoProbe:
    """Facts about a video's best video stream.

    ``width``/``height`` are the display (upright) size; ``coded_width``/``coded_height`` the
    stored frame size before ``rotation`` (counter-clockwise degrees to turn a stored frame
    upright: 0, 90, 180 or 270). ``num_frames`` is the container's frame count when it has one,
    else ``round(duration_s * fps)`` and then ``num_frames_estimated`` is True.
    ``variable_frame_rate`` is best effort: uneven frame durations in a complete index (MP4/MOV),
    else an average rate that differs from the stream's base rate.
    """

    codec: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    fps: float
    duration_s: float
    num_frames: int
    num_frames_estimated: bool
    pix_fmt: str
    bit_depth: int
    variable_frame_rate: bool
    has_audio: bool
    container: str


def probe_video(path: Path) -> VideoProbe:
    """Describe the video at ``path`` (opened once, first frame decoded); raise ProbeError."""
    path = Path(path)
    container, stream = open_video(path, ProbeError)
    with container:
        frame = _first_frame(path, container, stream)
        return _describe(container, stream, frame)


def open_video(
    path: Path, error: type[MediaError] = ProbeError
) -> tuple[InputContainer, VideoStream]:
    """Open ``path`` and pick its best video stream; raise ``error`` with a reason if unusable."""
    _check_file(path, error)
    try:
        container = av.open(str(path), **_OPEN_OPTIONS)
    except (av.FFmpegError, OSError) as exc:
        raise _open_failure(path, exc, error) from exc
    if _is_still_image(container):
        name = container.format.name
        container.close()
        raise error(path, "not_a_video", f"is a still image ({name}), not a video")
    if not container.streams.video:
        has_audio = bool(container.streams.audio)
        container.close()
        if has_audio:
            raise error(path, "no_video_stream", "has sound but no video stream")
        raise error(path, "not_a_video", "is a media file without any video stream")
    return container, container.streams.best("video")


def index_past_end(stream: VideoStream, path: Path) -> bool:
    """True when the stream's index points at data beyond the end of the file (cut short)."""
    entries = stream.index_entries
    if not len(entries):
        return False
    last = entries[len(entries) - 1]
    return last.pos >= 0 and last.pos + last.size > path.stat().st_size


def stream_duration_s(stream: VideoStream) -> float | None:
    """The video stream's own declared duration (Matroska: its DURATION tag), if any."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    hours, _, rest = stream.metadata.get("DURATION", "").partition(":")
    minutes, _, seconds = rest.partition(":")
    try:
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def quarter_turns(rotation: float) -> int:
    """Counter-clockwise quarter turns (0-3) nearest to a display-matrix rotation in degrees."""
    return round(rotation / 90) % 4


def _check_file(path: Path, error: type[MediaError]) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise error(path, "missing_file", "does not exist") from None
    if not path.is_file():
        raise error(path, "unreadable", "is not a regular file")
    if size == 0:
        raise error(path, "empty_file", "is empty (0 bytes)")


def _open_failure(path: Path, exc: Exception, error: type[MediaError]) -> MediaError:
    if isinstance(exc, PermissionError):
        return error(path, "unreadable", "cannot be read (permission denied)")
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)
    if not head.translate(None, _TEXT_BYTES):
        lowered = head.lower()
        if b"<html" in lowered or b"<!doctype" in lowered:
            what = "an HTML page (often an error or login page saved in place of the video)"
        else:
            what = "a text file"
        return error(path, "not_a_video", f"is {what}, not a video")
    if head[4:8] in _ISO_BMFF_BOXES and _boxes_run_past_end(path):
        return error(path, "truncated", "is an MP4/MOV file that ends early (incomplete download?)")
    if head[4:8] in _ISO_BMFF_BOXES or head.startswith(_MAGIC) or _is_mpeg_ts(head):
        reason = getattr(exc, "strerror", None) or str(exc)
        return error(path, "unreadable", f"is a damaged or unsupported video file ({reason})")
    return error(path, "not_a_video", "is not in any video format FFmpeg recognizes")


def _is_mpeg_ts(head: bytes) -> bool:
    return len(head) > 188 and head[0] == head[188] == 0x47


def _boxes_run_past_end(path: Path) -> bool:
    """Walk ISO-BMFF top-level boxes; True if the last one is cut off by the end of the file."""
    size = path.stat().st_size
    offset = 0
    with path.open("rb") as f:
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            box_size, box_type = struct.unpack(">I4s", header[:8])
            if not all(0x20 <= b < 0x7F for b in box_type) or box_size == 0:
                return False  # not a box, or a final box that runs to the end by definition
            if box_size == 1:
                if len(header) < 16:
                    return True
                box_size = struct.unpack(">Q", header[8:16])[0]
            if box_size < 8:
                return False
            offset += box_size
    return offset != size


def _is_still_image(container: InputContainer) -> bool:
    name = container.format.name
    return name == "image2" or name.endswith("_pipe")


def _first_frame(path: Path, container: InputContainer, stream: VideoStream) -> VideoFrame:
    """Decode up to the first frame, skipping packets the decoder rejects."""
    try:
        for count, packet in enumerate(container.demux(stream)):
            if count == _MAX_PACKETS_FOR_FIRST_FRAME:
                break
            try:
                frames = stream.decode(packet)
            except av.FFmpegError:
                continue
            if frames:
                return frames[0]
    except av.FFmpegError as exc:
        if index_past_end(stream, path):
            raise ProbeError(path, "truncated", "ends before its first frame") from exc
        raise ProbeError(path, "unreadable", f"cannot be read ({exc})") from exc
    codec = stream.codec_context.name if stream.codec_context else "unknown"
    raise ProbeError(path, "unreadable", f"has a {codec} video stream but no decodable frame")


def _describe(container: InputContainer, stream: VideoStream, frame: VideoFrame) -> VideoProbe:
    turns = quarter_turns(frame.rotation)
    width, height = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
    fps = _fps(stream)
    duration_s = _duration_s(container, stream)
    estimated = not stream.frames
    return VideoProbe(
        codec=stream.codec_context.name,
        width=width,
        height=height,
        coded_width=frame.width,
        coded_height=frame.height,
        rotation=turns * 90,
        fps=fps,
        duration_s=duration_s,
        num_frames=round(duration_s * fps) if estimated else stream.frames,
        num_frames_estimated=estimated,
        pix_fmt=frame.format.name,
        bit_depth=max(c.bits for c in frame.format.components),
        variable_frame_rate=_is_vfr(stream),
        has_audio=bool(container.streams.audio),
        container=container.format.name,
    )


def _fps(stream: VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _duration_s(container: InputContainer, stream: VideoStream) -> float:
    return stream_duration_s(stream) or (container.duration or 0) / av.time_base


def _is_vfr(stream: VideoStream) -> bool:
    entries = stream.index_entries
    if stream.frames > 2 and len(entries) == stream.frames:
        stamps = np.fromiter((e.timestamp for e in entries), np.int64, len(entries))
        steps = np.diff(stamps)
        spread = int(steps.max() - steps.min())
        return spread > max(1.0, _VFR_TOLERANCE * float(np.median(steps)))
    if stream.average_rate and stream.base_rate:
        average, base = float(stream.average_rate), float(stream.base_rate)
        return abs(average - base) > _VFR_TOLERANCE * base
    return False
