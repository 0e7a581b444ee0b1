"""Curation decisions against known truth: cut precision/recall and per-segment decisions.

Used by the tests and benchmarks on the synthetic corpus (whose generator writes the truth) and
on labelled real clips.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CutScore:
    """Cut detection quality with a frame tolerance."""

    true_positives: int
    predicted: int
    actual: int

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.actual if self.actual else 1.0


def score_cuts(predicted: Iterable[int], actual: Iterable[int], tolerance: int = 2) -> CutScore:
    """Match each true cut to at most one predicted cut within `tolerance` frames (greedy)."""
    unmatched = sorted(predicted)
    predicted_count = len(unmatched)
    actual_list = sorted(actual)
    hits = 0
    for cut in actual_list:
        best = min(unmatched, key=lambda p: abs(p - cut), default=None)
        if best is not None and abs(best - cut) <= tolerance:
            unmatched.remove(best)
            hits += 1
    return CutScore(hits, predicted_count, len(actual_list))


def clip_for_segment(clips: list[dict[str, Any]], start: int, end: int) -> dict[str, Any] | None:
    """The clip (of one video) that covers most of the frame range [start, end)."""

    def overlap(clip: dict[str, Any]) -> int:
        return max(0, min(end, clip["end_frame"]) - max(start, clip["start_frame"]))

    best = max(clips, key=overlap, default=None)
    return best if best is not None and overlap(best) > 0 else None


def cuts_of(clips: list[dict[str, Any]]) -> list[int]:
    """Cut positions implied by one video's clips (every start frame but 0)."""
    return sorted(c["start_frame"] for c in clips if c["start_frame"] > 0)
