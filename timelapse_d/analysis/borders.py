"""Letterbox and pillarbox bars: black borders found in the decode pass, cropped when encoding.

Every `BORDER_SAMPLE_EVERY`-th frame, each side's bar width is measured: the number of outer
rows (or columns) whose pixels are all darker than `BAR_LUMA`. A clip's bar on a side is the
narrowest bar over its sampled frames (a bar must be black in every frame). Bars are kept only
in symmetric pairs, as letterboxing and pillarboxing put them: a dark sky at the top of a night
scene has no matching bar at the bottom, so it is never cropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BORDER_SAMPLE_EVERY = 5
BAR_LUMA = 24  # grey level (0-255) that every pixel of a bar row or column stays under
SYMMETRY = 0.02  # opposite bars may differ by this share of the frame size
MIN_BAR = 0.01  # bars thinner than this share of the frame size are ignored


@dataclass(frozen=True)
class Crop:
    """A crop rectangle in source display pixels (even values)."""

    x: int
    y: int
    width: int
    height: int


class BorderDetector:
    """Feed frames (grey, analysis size) in order; ask :meth:`crop_for` per clip at the end."""

    def __init__(self) -> None:
        self._rows: list[tuple[int, int, int, int, int]] = []  # index, top, bottom, left, right
        self._shape: tuple[int, int] = (0, 0)

    def update(self, index: int, gray: np.ndarray) -> None:
        if index % BORDER_SAMPLE_EVERY:
            return
        self._shape = gray.shape
        dark_rows = gray.max(axis=1) < BAR_LUMA
        dark_cols = gray.max(axis=0) < BAR_LUMA
        self._rows.append(
            (index, _run(dark_rows), _run(dark_rows[::-1]), _run(dark_cols), _run(dark_cols[::-1]))
        )

    def crop_for(self, start: int, end: int, width: int, height: int) -> Crop | None:
        """The crop of clip [start, end) in a `width` x `height` source, or None for no bars."""
        samples = [row[1:] for row in self._rows if start <= row[0] < end]
        if not samples or not self._shape[0]:
            return None
        top, bottom, left, right = np.min(np.array(samples), axis=0)
        rows, cols = self._shape
        top, bottom = _paired(top, bottom, rows)
        left, right = _paired(left, right, cols)
        if not (top or bottom or left or right) or top + bottom >= rows or left + right >= cols:
            return None
        sy, sx = height / rows, width / cols
        x0, y0 = _even_up(left * sx), _even_up(top * sy)
        x1, y1 = _even_down(width - right * sx), _even_down(height - bottom * sy)
        return Crop(x0, y0, x1 - x0, y1 - y0)


def _run(dark: np.ndarray) -> int:
    """Length of the leading run of True."""
    return int(np.argmin(dark)) if not dark.all() else len(dark)


def _paired(first: int, second: int, size: int) -> tuple[int, int]:
    """Both bars when they match and are thick enough, else none."""
    if min(first, second) < MIN_BAR * size or abs(first - second) > SYMMETRY * size + 1:
        return 0, 0
    return int(first), int(second)


def _even_up(value: float) -> int:
    return int(np.ceil(value / 2) * 2)


def _even_down(value: float) -> int:
    return int(np.floor(value / 2) * 2)
