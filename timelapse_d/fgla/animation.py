"""Frames from generated flows, looping, and writing them as a video.

Recurrent (the papers' inference, :func:`iter_recurrent_frames`): the model predicts the step
flow F_t from each generated frame I_t at its own size, and frame t + 1 is I_0 sampled once at
F_0->t, the composition of F_0 .. F_t (:func:`timelapse_d.fgla.warp.compose_flows`), so no
frame is a resampling of a resampled frame and detail does not blur away. Single-flow
(:func:`iter_frames`): one flow F predicted from I_0 is composed with itself, faster and a
steady motion. Flows (grid units) are resized to the image's own size, so a 256 x 256 flow
animates a photo of any resolution. Frames are produced one at a time, so a long 1080p
animation needs the memory of a few frames, not of the whole video.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from itertools import chain
from pathlib import Path

import av
import numpy as np
import torch
from av.video.stream import VideoStream
from PIL import Image
from torch import Tensor

from timelapse_d.errors import ConfigError
from timelapse_d.fgla.warp import compose_flows, resize_flow, warp
from timelapse_d.runs import atomic_path

# suffix -> (container, codec); GIFs are written by Pillow (an adaptive palette per frame)
VIDEO_FORMATS = {".mp4": ("mp4", "libx264"), ".webm": ("webm", "libvpx-vp9"), ".gif": None}


def iter_frames(
    image: Tensor,
    step_flow: Tensor,
    frames: int,
    compose: str = "warp",
    align_corners: bool = False,
    speed: float = 1.0,
) -> Iterator[Tensor]:
    """``frames`` frames (each 1 x C x H x W) of ``image`` (1 x C x H x W) moved by
    ``step_flow`` (1 x 2 x h x w, grid units, scaled by ``speed``); frame 0 is the image."""
    with torch.no_grad():
        source = image.float()
        size = (image.shape[-2], image.shape[-1])
        flow = resize_flow(step_flow.float(), size, "bilinear") * speed
        accumulated = torch.zeros_like(flow)
        yield source
        for _ in range(frames - 1):
            accumulated = compose_flows(accumulated, flow, compose, align_corners)
            yield warp(source, accumulated, align_corners)


# (step t, frame t at the model's size, 1 x 3 x S x S in [-1, 1]) -> F_t (1 x 2 x S x S, grid)
StepFlow = Callable[[int, Tensor], Tensor]


def iter_recurrent_frames(
    image: Tensor,
    small: Tensor,
    step_flow: StepFlow,
    frames: int,
    compose: str = "warp",
    align_corners: bool = False,
    speed: float = 1.0,
) -> Iterator[Tensor]:
    """``frames`` frames (each 1 x C x H x W) of ``image``, frame 0 being the image, where
    ``small`` is the image at the model's size: F_t comes from ``step_flow`` on frame t at
    that size (I_0 warped by F_0->t-1 composed at that size), scaled by ``speed``."""
    with torch.no_grad():
        source, model_input = image.float(), small.float()
        size = (source.shape[-2], source.shape[-1])
        accumulated = torch.zeros(1, 2, *size, device=source.device)
        accumulated_small = torch.zeros(1, 2, *model_input.shape[-2:], device=source.device)
        yield source
        for t in range(frames - 1):
            flow_small = step_flow(t, model_input).float() * speed
            flow = resize_flow(flow_small, size, "bilinear")
            accumulated = compose_flows(accumulated, flow, compose, align_corners)
            accumulated_small = compose_flows(accumulated_small, flow_small, compose, align_corners)
            model_input = warp(small.float(), accumulated_small, align_corners)
            yield warp(source, accumulated, align_corners)


def to_uint8(frames: Tensor) -> np.ndarray:
    """T x 3 x H x W in [-1, 1] -> T x H x W x 3 uint8."""
    scaled = ((frames.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def uint8_frames(frames: Iterable[Tensor]) -> Iterator[np.ndarray]:
    """Frames of :func:`iter_frames` (1 x 3 x H x W each) as H x W x 3 uint8, one at a time."""
    for frame in frames:
        yield to_uint8(frame)[0]


def crossfade_loop(frames: Iterable[np.ndarray], length: int, fade: int) -> Iterator[np.ndarray]:
    """A seamless loop of ``length`` frames from ``length + fade`` frames F_0, F_1, ...

    The loop plays F_fade .. F_length-1, then blends B_i = (1 - i/fade) F_length+i +
    (i/fade) F_i for i < fade: the frame after F_length-1 is F_length itself, and the last
    blend leads into F_fade as F_fade-1 would. Only the first ``fade`` frames are held.
    """
    if not 0 < fade <= length:
        raise ConfigError(f"a loop of {length} frames needs a cross-fade of 1..{length} frames")
    source = iter(frames)
    head = [next(source) for _ in range(fade)]
    for _ in range(length - fade):
        yield next(source)
    for i, first in enumerate(head):
        weight = i / fade
        blended = (1 - weight) * next(source).astype(np.float32) + weight * first
        yield np.clip(blended.round(), 0, 255).astype(np.uint8)


def write_video(frames: Iterable[np.ndarray], path: Path, fps: float = 12.0) -> int:
    """Write H x W x 3 uint8 frames as MP4 (H.264), WebM (VP9) or GIF, chosen by the suffix
    of ``path`` (odd sides of MP4/WebM are cropped by one pixel: 4:2:0 needs even sides);
    written to a temporary name, then renamed. Returns the number of frames written."""
    suffix = path.suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise ConfigError(f"{path}: the video must end in {', '.join(VIDEO_FORMATS)}")
    source = iter(frames)
    first = next(source, None)
    if first is None:
        raise ValueError("no frames to write")
    container_codec = VIDEO_FORMATS[suffix]
    with atomic_path(path) as tmp:
        if container_codec is None:
            return _write_gif(chain([first], source), tmp, fps)
        return _write_av(chain([first], source), tmp, fps, *container_codec)


def _write_av(
    frames: Iterator[np.ndarray], path: Path, fps: float, container: str, codec: str
) -> int:
    """Stream frames through PyAV; the first frame sets the (even) size."""
    count = 0
    options = {"movflags": "+faststart"} if container == "mp4" else {}
    with av.open(str(path), "w", format=container, options=options) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        assert isinstance(stream, VideoStream)  # the codecs of VIDEO_FORMATS are video codecs
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20"} if codec == "libx264" else {"crf": "32", "b": "0"}
        for frame in frames:
            if not count:
                stream.height, stream.width = (side - side % 2 for side in frame.shape[:2])
            rgb = np.ascontiguousarray(frame[: stream.height, : stream.width])
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            out.mux(stream.encode(picture.reformat(format="yuv420p")))
            count += 1
        out.mux(stream.encode())
    return count


def _write_gif(frames: Iterator[np.ndarray], path: Path, fps: float) -> int:
    """An endlessly looping GIF; each frame gets its own 256-colour palette."""
    pictures = [
        Image.fromarray(frame).quantize(256, dither=Image.Dither.FLOYDSTEINBERG) for frame in frames
    ]
    pictures[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        loop=0,
        duration=round(1000 / fps),
        optimize=False,
    )
    return len(pictures)
