"""The frames every field is computed from: each `stride`-th frame of a clip at `size`.

All fields (frames, flow, masks) sample a clip through :func:`sample_clip`, so frame ``j`` of
every field is the same picture: clip frame ``j * stride``, resized to ``size`` x ``size``
(FGLA resizes whole frames to 256x256; the aspect ratio is not kept).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import cv2
import numpy as np


@dataclass(frozen=True)
class Sampling:
    """How clips are sampled into fields (saved in each field sample's metadata)."""

    stride: int = 4
    size: int = 256

    def __post_init__(self) -> None:
        if self.stride < 1 or self.size < 16:
            raise ValueError(f"stride must be >= 1 and size >= 16, got {self}")


def sample_clip(mp4: bytes, sampling: Sampling) -> tuple[list[int], np.ndarray]:
    """(clip frame indices, frames (T, size, size, 3) uint8 RGB) of an encoded clip."""
    indices: list[int] = []
    frames: list[np.ndarray] = []
    with av.open(io.BytesIO(mp4), "r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index % sampling.stride:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            size = (sampling.size, sampling.size)
            frames.append(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
            indices.append(index)
    if not frames:
        raise ValueError("the clip has no decodable frame")
    return indices, np.stack(frames)
