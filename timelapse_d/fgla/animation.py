"""Frames from one generated flow, and writing them as a video.

FGLA predicts one backward flow F for the input image I_0. Frame t is I_0 sampled once at
F_0->t, where F_0->t composes F t times (``inference.compose``), so no frame is a resampling
of a resampled frame and detail does not blur away. The flow (grid units) is resized to the
image's own size, so a 256 x 256 flow animates a photo of any resolution.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

from timelapse_d.config import ConfigError
from timelapse_d.fgla.warp import compose_flows, resize_flow, warp
from timelapse_d.runs import atomic_path

# suffix -> (container, codec, pixel format)
VIDEO_FORMATS = {
    ".mp4": ("mp4", "libx264", "yuv420p"),
    ".webm": ("webm", "libvpx-vp9", "yuv420p"),
    ".gif": ("gif", "gif", "rgb8"),
}


def animate(
    image: Tensor,
    step_flow: Tensor,
    frames: int,
    compose: str = "warp",
    align_corners: bool = False,
    speed: float = 1.0,
) -> Tensor:
    """``frames`` frames (T x C x H x W) of ``image`` (1 x C x H x W) moved by ``step_flow``
    (1 x 2 x h x w, grid units, scaled by ``speed``); frame 0 is the image itself."""
    flow = resize_flow(step_flow.float(), tuple(image.shape[-2:]), "bilinear") * speed
    accumulated = torch.zeros_like(flow)
    out = [image.float()]
    for _ in range(frames - 1):
        accumulated = compose_flows(accumulated, flow, compose, align_corners)
        out.append(warp(image.float(), accumulated, align_corners))
    return torch.cat(out)


def to_uint8(frames: Tensor) -> np.ndarray:
    """T x 3 x H x W in [-1, 1] -> T x H x W x 3 uint8."""
    scaled = ((frames.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def write_video(frames: np.ndarray, path: Path, fps: float = 12.0) -> None:
    """Write T x H x W x 3 uint8 frames as MP4 (H.264), WebM (VP9) or GIF, chosen by the
    suffix of ``path``; written to a temporary name, then renamed."""
    kind = VIDEO_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{path}: the video must end in {', '.join(VIDEO_FORMATS)}")
    container_format, codec, pix_fmt = kind
    height, width = frames.shape[1:3]
    if codec != "gif":  # 4:2:0 needs even sides
        frames = frames[:, : height - height % 2, : width - width % 2]
    options = {"movflags": "+faststart"} if container_format == "mp4" else {}
    with (
        atomic_path(path) as tmp,
        av.open(str(tmp), "w", format=container_format, options=options) as out,
    ):
        stream = out.add_stream(codec, rate=round(fps))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        if codec != "gif":
            stream.options = {"crf": "20"} if codec == "libx264" else {"crf": "32", "b": "0"}
        for frame in frames:
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            out.mux(stream.encode(picture.reformat(format=pix_fmt)))
        out.mux(stream.encode())
