"""Middlebury ``.flo`` flow files and the average end-point error against a ground truth.

Layout: float32 magic 202021.25, int32 width, int32 height, then float32 (u, v) interleaved per
pixel, row by row, little-endian. Ground-truth files mark pixels without a truth by values of
1e9 or more. Flows are held channel-first, (2, H, W), like the flow backends' output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FLO_MAGIC = np.float32(202021.25)
UNKNOWN_FLOW = 1e9  # a component at or above this (in magnitude) marks an unknown pixel
_HEADER = np.dtype([("magic", "<f4"), ("width", "<i4"), ("height", "<i4")])


def read_flo(path: Path | str) -> np.ndarray:
    """The flow of a ``.flo`` file: float32 (2, H, W), unknown pixels kept as stored."""
    raw = Path(path).read_bytes()
    if len(raw) < _HEADER.itemsize:
        raise ValueError(f"{path}: too short for a .flo file ({len(raw)} bytes)")
    header = np.frombuffer(raw, _HEADER, count=1)[0]
    if header["magic"] != FLO_MAGIC:
        raise ValueError(f"{path}: not a .flo file (magic {header['magic']!r})")
    width, height = int(header["width"]), int(header["height"])
    expected = _HEADER.itemsize + 8 * width * height
    if width <= 0 or height <= 0 or len(raw) != expected:
        raise ValueError(
            f"{path}: {width}x{height} flow needs {expected} bytes, the file has {len(raw)}"
        )
    data = np.frombuffer(raw, "<f4", offset=_HEADER.itemsize).reshape(height, width, 2)
    return np.ascontiguousarray(data.transpose(2, 0, 1), dtype=np.float32)


def write_flo(path: Path | str, flow: np.ndarray) -> None:
    """Write a (2, H, W) flow as a ``.flo`` file."""
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"expected a (2, H, W) flow, got shape {flow.shape}")
    height, width = flow.shape[1:]
    header = np.array([(FLO_MAGIC, width, height)], dtype=_HEADER)
    body = np.ascontiguousarray(flow.transpose(1, 2, 0), dtype="<f4")
    Path(path).write_bytes(header.tobytes() + body.tobytes())


def known_pixels(flow: np.ndarray) -> np.ndarray:
    """Boolean (..., H, W) map of the pixels of a (..., 2, H, W) flow that carry a value."""
    return (np.isfinite(flow) & (np.abs(flow) < UNKNOWN_FLOW)).all(axis=-3)


def end_point_error(flow: np.ndarray, truth: np.ndarray) -> float:
    """Average end-point error (pixels) of ``flow`` over the pixels ``truth`` knows.

    Both are (..., 2, H, W) of the same shape, in the same direction and convention.
    """
    if flow.shape != truth.shape or flow.ndim < 3 or flow.shape[-3] != 2:
        raise ValueError(f"need two (..., 2, H, W) flows of one shape: {flow.shape}, {truth.shape}")
    known = known_pixels(truth)
    if not known.any():
        raise ValueError("the ground truth has no known pixel")
    error = np.linalg.norm(flow.astype(np.float64) - truth, axis=-3)
    return float(error[known].mean())
