"""The frame batches every flow backend takes."""

from __future__ import annotations

import numpy as np


def check_frames(previous: np.ndarray, following: np.ndarray) -> None:
    """Raise ValueError unless both are uint8 RGB batches (N, H, W, 3) of one shape."""
    if previous.shape != following.shape or previous.ndim != 4 or previous.shape[-1] != 3:
        raise ValueError(
            f"need two equal (N, H, W, 3) RGB batches, got {previous.shape} and {following.shape}"
        )
    if previous.dtype != np.uint8 or following.dtype != np.uint8:
        raise ValueError(f"need uint8 frames, got {previous.dtype} and {following.dtype}")
