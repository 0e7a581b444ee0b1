"""The one decode pass of a video: upright frames at analysis size, streamed in bounded memory.

Scaling and pixel conversion run in FFmpeg's swscale through one reused PyAV
``VideoReformatter`` (FAST_BILINEAR interpolation, swscale threads off: the decoder's threads
use the cores), in the thread that consumes the frames. FAST_BILINEAR samples like OpenCV's
INTER_LINEAR resize that PySceneDetect applies to its own frames, so its detectors fed our
frames reproduce its published cut lists; AREA and BILINEAR average more and add false cuts at
fades on the reference clip.
Medians of 5 runs on a shared 2-core machine, 1280x720 H.264 to 256x144 bgr24: 465-495 fps
here (365-380 without decoder threads), 445-490 fps for the same scale in a
libavfilter graph, 240-305 fps for ``VideoFrame.reformat`` (a new scaler for every frame);
decoding alone runs at 550-580 fps.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import av
import numpy as np
from av.container import InputContainer
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from timelapse_d.errors import DecodeError
from timelapse_d.media.probe import index_past_end, open_video, quarter_turns, stream_duration_s

T = TypeVar("T")
PIX_FMTS = ("bgr24", "rgb24", "gray")
_INTERPOLATION = "FAST_BILINEAR"
_B_PICTURE = 3  # FFmpeg's AV_PICTURE_TYPE_B
_MISSING_TOLERANCE_S = 1.0  # decoded time may fall short of the declared duration by this
_MISSING_TOLERANCE_SHARE = 0.02  # ... or by this share of it, whichever is larger
# ``deblock`` -> FFmpeg's skip_loop_filter. Decoder CPU per frame, H.264 from x264 (B-frames):
# "reference" 6-9 % less at 720p and 1080p, "none" 15-28 % less (4K: about a fifth).
_SKIP_LOOP_FILTER = {"all": None, "reference": "noref", "none": "all"}


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: ``index`` counts yielded frames in presentation order from 0,
    ``time_s`` is its presentation time, ``image`` is HxWx3 uint8 (HxW for gray);
    ``key_frame`` and ``bidirectional`` (a B-frame) describe how the source coded it."""

    index: int
    time_s: float
    image: np.ndarray
    key_frame: bool = False
    bidirectional: bool = False


def analysis_size(width: int, height: int, target_width: int = 256) -> tuple[int, int]:
    """Size to analyse a ``width``x``height`` video at: aspect kept, even, never upscaled."""
    if min(width, height, target_width) <= 0:
        raise ValueError(f"sizes must be positive, got {width}x{height} -> {target_width}")
    out_width = max(2, min(target_width, width) // 2 * 2)
    out_height = 2 * round(height * out_width / width / 2)
    return out_width, max(2, min(out_height, height // 2 * 2))


def iter_frames(
    path: Path,
    *,
    width: int | None = None,
    height: int | None = None,
    pix_fmt: str = "bgr24",
    threads: bool = True,
    deblock: str = "all",
    ahead: int = 0,
) -> Iterator[Frame]:
    """Decode ``path`` once, yielding upright frames scaled to ``width``x``height``.

    The size refers to the upright (display) frame; ``None`` keeps that dimension of the
    display size. Packets the decoder rejects in the middle are skipped (FFmpeg conceals the
    damage). ``deblock`` names the frames the decoder deblocks (its loop filter, in the codecs
    that honour FFmpeg's ``skip_loop_filter``): ``all``; ``reference``, the frames others are
    predicted from, so the blocking left in the rest never spreads; or ``none``, which saves
    more but moves borderline cut scores of 720p sources (a PySceneDetect golden cut of the
    shared test video is lost), so it is for sources large enough that scaling hides it. Raises
    DecodeError: ``truncated`` after yielding every good frame when the file ends early or its
    last packets are damaged (also with no frame yielded when the file is visibly cut short);
    ``unreadable`` when no frame decodes; the reasons of ``open_video`` when the file is not a
    usable video. Errors surface on iteration, not on the call. With ``ahead`` > 0, a
    background thread decodes up to that many frames ahead (see :func:`prefetched`) while the
    caller scales each one: swscale, off the thread that feeds the decoder, no longer holds up
    its frame threads (benchmarks/curate.py measured the analysis pass at 720p a few hundredths
    of decode-only speed faster this way).
    """
    if pix_fmt not in PIX_FMTS:
        raise ValueError(f"pix_fmt must be one of {PIX_FMTS}, got {pix_fmt!r}")
    if (width is not None and width <= 0) or (height is not None and height <= 0):
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    if deblock not in _SKIP_LOOP_FILTER:
        raise ValueError(f"deblock must be one of {tuple(_SKIP_LOOP_FILTER)}, got {deblock!r}")
    convert = _Converter(width, height, pix_fmt)
    decoded = _decoded(Path(path), threads, deblock)
    if ahead:
        decoded = prefetched(decoded, ahead)
    try:
        for index, (frame, time_s) in enumerate(decoded):
            coded_as_b = int(frame.pict_type) == _B_PICTURE
            yield Frame(index, time_s, convert(frame), bool(frame.key_frame), coded_as_b)
    finally:
        decoded.close()


def _decoded(
    path: Path, threads: bool, deblock: str
) -> Generator[tuple[VideoFrame, float], None, None]:
    """Decoded frames of ``path`` with their presentation times in seconds; raises
    DecodeError after the last one when the stream is incomplete (see :func:`iter_frames`)."""
    container, stream = open_video(path, DecodeError)
    with container:
        if threads:
            stream.thread_type = "AUTO"
        skip_loop_filter = _SKIP_LOOP_FILTER[deblock]
        if skip_loop_filter:
            stream.codec_context.options = {"skip_loop_filter": skip_loop_filter}
        decoder = _PacketDecoder(container, stream)
        rate = float(stream.average_rate or stream.guessed_rate or 1)
        count, first_s, last_s = 0, 0.0, 0.0
        for frame in decoder.frames():
            last_s = float(frame.time) if frame.time is not None else count / rate
            first_s = first_s if count else last_s
            yield frame, last_s
            count += 1
        decoded_s = last_s - first_s + 1 / rate if count else 0.0
        _raise_if_incomplete(path, container, stream, decoder, count, decoded_s)


_DONE = object()


def prefetched(frames: Iterator[T], depth: int = 8) -> Generator[T, None, None]:
    """Run `frames` in a background thread, at most `depth` items ahead of the consumer.

    FFmpeg decoding releases the GIL, so the next frames decode while the caller works on the
    current one (any iterator works the same way).
    Exceptions (a DecodeError after the last good frame) are re-raised in the caller in order;
    closing the returned generator stops the thread.
    """
    ready: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in frames:
                if not offer(frame):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            offer(exc)
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="tld-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


class _PacketDecoder:
    """Decode one stream packet by packet and remember how the stream ended.

    Packets the demuxer marks corrupt (read only in part, e.g. at a cut) are not decoded: a
    frame-threaded decoder that meets one can drop the frames still in flight.
    """

    def __init__(self, container: InputContainer, stream: VideoStream) -> None:
        self._container = container
        self._stream = stream
        self.read_error: str | None = None  # the demuxer failed (file cut or damaged)
        self.partial_end = False  # the last packet was read only in part
        self.rejected_end = False  # the decoder rejected the last packet

    def frames(self) -> Iterator[VideoFrame]:
        """Yield decoded frames until the end of the stream or a read error."""
        packets = self._container.demux(self._stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as exc:
                self.read_error = f"reading failed ({exc})"
                yield from self._decode(None)
                return
            if packet.is_corrupt:
                self.partial_end = True
            else:
                yield from self._decode(packet)

    def _decode(self, packet: Packet | None) -> list[VideoFrame]:
        try:
            frames = self._stream.decode(packet)
        except av.FFmpegError:
            self.rejected_end = True
            return []
        if packet is not None and packet.size:
            self.partial_end = self.rejected_end = False
        return frames


def _raise_if_incomplete(
    path: Path,
    container: InputContainer,
    stream: VideoStream,
    decoder: _PacketDecoder,
    count: int,
    decoded_s: float,
) -> None:
    cut_short = _cut_short(path, stream, decoder)
    if count == 0:
        if cut_short:
            raise DecodeError(path, "truncated", f"no frame could be decoded: {cut_short}")
        codec = stream.codec_context.name if stream.codec_context else "unknown"
        raise DecodeError(
            path, "unreadable", f"has a {codec} video stream but no frame could be decoded"
        )
    problem = (
        cut_short
        or _missing_time(container, stream, decoded_s)
        or ("its last packets are damaged" if decoder.rejected_end else None)
    )
    if problem:
        raise DecodeError(
            path,
            "truncated",
            f"decoding stopped after {count} frame{'s' * (count != 1)}: {problem}",
        )


def _cut_short(path: Path, stream: VideoStream, decoder: _PacketDecoder) -> str | None:
    """Why the file looks cut short, or None."""
    if decoder.read_error:
        return decoder.read_error
    if decoder.partial_end:
        return "the file ends inside its last packet"
    if index_past_end(stream, path):
        return "the file ends before the data its index lists"
    return None


def _missing_time(container: InputContainer, stream: VideoStream, decoded_s: float) -> str | None:
    """Name the missing time when far less was decoded than the file declares, else None."""
    declared_s = stream_duration_s(stream)
    if declared_s is None and container.duration and len(container.streams) == 1:
        declared_s = container.duration / av.time_base
    if declared_s is None:
        return None
    missing_s = declared_s - decoded_s
    if missing_s <= max(_MISSING_TOLERANCE_S, _MISSING_TOLERANCE_SHARE * declared_s):
        return None
    return f"only {decoded_s:.1f} s of the declared {declared_s:.1f} s could be decoded"


class _Converter:
    """Scale, convert and turn upright decoded frames; the size refers to the upright frame."""

    def __init__(self, width: int | None, height: int | None, pix_fmt: str) -> None:
        self._width = width
        self._height = height
        self._pix_fmt = pix_fmt
        self._reformatter = VideoReformatter()

    def __call__(self, frame: VideoFrame) -> np.ndarray:
        turns = quarter_turns(frame.rotation)
        upright = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
        width, height = self._width or upright[0], self._height or upright[1]
        if turns % 2:
            width, height = height, width
        scaled = self._reformatter.reformat(
            frame, width, height, self._pix_fmt, interpolation=_INTERPOLATION, threads=1
        )
        return np.ascontiguousarray(np.rot90(scaled.to_ndarray(), turns))
