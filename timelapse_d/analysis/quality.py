"""Image quality and held stills from the single decode pass.

- Sharpness, per sampled frame: how much of the frame's local contrast a further blur removes
  (1 - the no-reference blur estimate of Crete et al., 2007, in [0, 1]). It compares the
  frame with itself, so it does not depend on contrast: fog and soft clouds are not "blurry",
  while a defocused or upscaled-then-soft picture is. Measured at the analysis resolution,
  which is close to the 256x256 that FGLA trains on. Frames with too little local contrast to
  judge (black, flat sky) are left out.
- Exposure, per sampled frame: the luma below which 99.5 % of pixels lie (a night sky with a
  moon, stars, aurora or a lit horizon keeps some bright pixels; an underexposed frame has
  none) and the share of pixels clipped white.
- Held stills: the change of the area-averaged frame from each frame to the next. A slideshow
  (photos shown a few per second, or a flip through photos too alike to be cut) is a clip whose
  changes come as isolated jumps over a near-still background: a jump is a step of at least
  ``still_change`` grey levels and ``jump_ratio`` times the clip's median step, between two
  steps under half its size (so a one-frame flash, two jumps in a row, is not a still).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from timelapse_d.analysis.motion import change_thumbnail, mean_change

BLUR_TAPS = 9  # the re-blur kernel length (pixels at the analysis resolution)
MIN_CONTRAST = 0.5  # mean absolute neighbour difference (grey levels) needed to judge sharpness
HIGHLIGHT_QUANTILE = 0.995
CLIPPED_WHITE = 250  # luma at or above which a pixel counts as blown out


@dataclass(frozen=True)
class QualityConfig:
    """Measurement settings (thresholds live in FilterConfig)."""

    sample_stride: int = 4  # sharpness and exposure on every 4th frame, as FGLA samples
    # Grey levels: a jump must also be `jump_ratio` times the clip's median step, so this floor
    # only keeps sensor noise on held photos (0.1-0.2) from counting.
    still_change: float = 1.0
    jump_ratio: float = 8.0


def blur_estimate(gray: np.ndarray) -> float | None:
    """Share of local contrast that survives a further blur: 0 sharp .. 1 blurred, None if flat."""
    image = gray.astype(np.float32)
    estimates = []
    # Vertical neighbour differences against a vertical blur, horizontal likewise.
    for ksize, shifted in (((1, BLUR_TAPS), _rows_apart), ((BLUR_TAPS, 1), _columns_apart)):
        original = cv2.absdiff(*shifted(image))
        # OpenCV's stubs allow a bare float; sumElems returns a 4-tuple.
        total = cv2.sumElems(original)[0]  # type: ignore[index]
        if total < MIN_CONTRAST * original.size:
            return None
        reblurred = cv2.absdiff(*shifted(cv2.blur(image, ksize)))
        # Kept contrast: each difference counts up to its size before the re-blur.
        kept = cv2.sumElems(cv2.min(original, reblurred))[0]  # type: ignore[index]
        estimates.append(kept / total)
    return max(estimates)


def _rows_apart(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row and the row above it."""
    return image[1:], image[:-1]


def _columns_apart(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column and the column left of it."""
    return image[:, 1:], image[:, :-1]


def exposure(gray: np.ndarray) -> tuple[float, float]:
    """(highlight luma 0-1: the 99.5th percentile, share of pixels clipped white)."""
    hist = cv2.calcHist([gray], [0], None, [256], [0, 256]).ravel()
    cumulative = np.cumsum(hist) / hist.sum()
    highlight = int(np.searchsorted(cumulative, HIGHLIGHT_QUANTILE))
    return highlight / 255.0, float(1.0 - cumulative[CLIPPED_WHITE - 1])


class QualityAnalyzer:
    """Feed every frame (grey, analysis size) in order; then ask per clip."""

    def __init__(self, fps: float, config: QualityConfig = QualityConfig()) -> None:  # noqa: B008
        self.fps = fps if fps > 0 else 25.0
        self.config = config
        self._sampled: list[tuple[int, float, float, float]] = []  # index, blur, highlight, white
        self._steps: list[float] = [0.0]  # per frame: change from the previous frame
        self._previous: np.ndarray | None = None

    def update(self, index: int, gray: np.ndarray, thumb: np.ndarray | None = None) -> None:
        """Take frame ``index`` (grey, and its change thumbnail when the caller has it)."""
        if index % self.config.sample_stride == 0:
            blur = blur_estimate(gray)
            highlight, white = exposure(gray)
            self._sampled.append((index, math.nan if blur is None else blur, highlight, white))
        picture = change_thumbnail(gray) if thumb is None else thumb
        if self._previous is not None:
            self._steps.append(mean_change(picture, self._previous))
        self._previous = picture

    def _stills(self, start: int, end: int) -> int:
        """Number of held pictures in [start, end): isolated jumps + 1 (0 when none)."""
        steps = np.array(self._steps[start + 1 : end], dtype=np.float64)
        if steps.size < 3:
            return 0
        limit = max(self.config.still_change, self.config.jump_ratio * float(np.median(steps)))
        padded = np.pad(steps, 1)
        quiet = np.maximum(padded[:-2], padded[2:]) < steps / 2
        jumps = int(np.count_nonzero((steps >= limit) & quiet))
        return jumps + 1 if jumps else 0

    def clip_scores(self, start: int, end: int) -> dict[str, float | None]:
        """Quality scores of the clip [start, end)."""
        rows = [r for r in self._sampled if start <= r[0] < end]
        blurs = np.array([r[1] for r in rows], dtype=np.float64)
        judged = blurs[~np.isnan(blurs)]
        stills = self._stills(start, end)
        return {
            "sharpness": float(1.0 - np.median(judged)) if judged.size else None,
            "highlight_luma": float(np.median([r[2] for r in rows])) if rows else None,
            "clipped_white": float(np.median([r[3] for r in rows])) if rows else None,
            "stills": float(stills),
            "mean_still_s": (end - start) / stills / self.fps if stills else 0.0,
        }
