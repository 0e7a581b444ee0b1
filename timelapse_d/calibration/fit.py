"""Filter thresholds learned from curators' labels, judged by cross-validation grouped by video.

Each scored reject reason is a rule over stored score columns (see
:func:`timelapse_d.stages.filter.reject_reasons`): ``camera_motion`` fires when any camera score
exceeds its limit, ``static`` when both motion scores are below theirs, ``blurry``,
``too_dark`` and ``blown_out`` on one score each. For a reason, the clips labelled with it are
positives and the clips labelled keep are negatives (clips rejected for other reasons say
nothing about it). A rule's limits are fitted by coordinate ascent from the build's values:
each limit in turn moves to the cut between two observed scores that classifies the most
labelled clips right (ties: the cut nearest the current limit), three rounds over the limits.
Nothing is decoded: the fitted limits re-decide clips from their stored scores.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from timelapse_d.calibration.labels import KEEP, Label
from timelapse_d.config import FilterConfig
from timelapse_d.stages.filter import CAMERA_LIMITS

ROUNDS = 3
MAX_CUTS = 256  # candidate limits per score: cuts between observed values, thinned to this


Term = tuple[str, str, Callable[[Any, Any], Any]]  # score column, FilterConfig field, comparison


@dataclass(frozen=True)
class Rule:
    """A reason that fires when any (else all) of its terms hold: score `op` field."""

    reason: str
    any: bool
    terms: tuple[Term, ...]

    def combine(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.logical_or.reduce(parts) if self.any else np.logical_and.reduce(parts)


RULES = (
    Rule("camera_motion", True, tuple((s, f, operator.gt) for s, f in CAMERA_LIMITS)),
    Rule(
        "static",
        False,
        (
            ("scene_motion", "min_scene_motion", operator.lt),
            ("frame_change", "min_frame_change", operator.lt),
        ),
    ),
    Rule("blurry", True, (("sharpness", "min_sharpness", operator.lt),)),
    Rule("too_dark", True, (("highlight_luma", "min_highlight_luma", operator.lt),)),
    Rule("blown_out", True, (("clipped_white", "max_clipped_white", operator.gt),)),
)


@dataclass(frozen=True)
class Counts:
    """Outcomes of one reason over the labelled clips it concerns."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Counts) -> Counts:
        mine, theirs = dataclasses.astuple(self), dataclasses.astuple(other)
        return Counts(*(a + b for a, b in zip(mine, theirs, strict=True)))

    def precision(self) -> tuple[float, float, float]:
        return wilson(self.tp, self.tp + self.fp)

    def recall(self) -> tuple[float, float, float]:
        return wilson(self.tp, self.tp + self.fn)


def wilson(hits: int, total: int, z: float = 1.96) -> tuple[float, float, float]:
    """Share and its Wilson score interval (95 % by default); (nan, 0, 1) when total is 0."""
    if total == 0:
        return math.nan, 0.0, 1.0
    p = hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def _scores(rows: Sequence[Mapping[str, Any]], column: str) -> np.ndarray:
    """A score column as floats; unknown scores are NaN, which fire no comparison."""
    return np.array([np.nan if r.get(column) is None else r[column] for r in rows], dtype=float)


class Dataset:
    """Labelled clips as score columns, with each reason's positives and the keeps."""

    def __init__(self, rows: Sequence[dict[str, Any]], labels: Mapping[str, Label]) -> None:
        self.rows = [r for r in rows if r["clip_id"] in labels]
        self.labels = [labels[r["clip_id"]] for r in self.rows]
        self.groups = np.array([r["video_id"] for r in self.rows])
        columns = {s for rule in RULES for s, _, _ in rule.terms}
        self.scores = {c: _scores(self.rows, c) for c in columns}
        self.keep = np.array([label.decision == KEEP for label in self.labels])

    def positive(self, reason: str) -> np.ndarray:
        return np.array([reason in label.reasons for label in self.labels], dtype=bool)


def fires(rule: Rule, limits: Mapping[str, float], scores: Mapping[str, np.ndarray]) -> np.ndarray:
    """Where the rule fires with these limits."""
    return rule.combine([op(scores[s], limits[f]) for s, f, op in rule.terms])


def _cuts(values: np.ndarray) -> np.ndarray:
    """Candidate limits: midpoints between distinct observed values, and beyond both ends."""
    distinct = np.unique(values[np.isfinite(values)])
    if distinct.size == 0:
        return distinct
    span = max(float(distinct[-1] - distinct[0]), abs(float(distinct[-1])), 1e-12)
    inner = (distinct[1:] + distinct[:-1]) / 2
    if inner.size > MAX_CUTS:
        inner = inner[np.linspace(0, inner.size - 1, MAX_CUTS).round().astype(int)]
    return np.concatenate([[distinct[0] - span], inner, [distinct[-1] + span]])


def fit_rule(rule: Rule, data: Dataset, rows: np.ndarray, config: FilterConfig) -> dict[str, float]:
    """The rule's limits fitted on the labelled clips selected by `rows` (a boolean mask)."""
    limits = {f: float(getattr(config, f)) for _, f, _ in rule.terms}
    positive = data.positive(rule.reason)
    use = rows & (positive | data.keep)
    if not (positive & use).any() or not (data.keep & use).any():
        return limits  # nothing to learn from: the build's limits stay
    truth = positive[use]
    scores = {s: v[use] for s, v in data.scores.items()}
    for _ in range(ROUNDS):
        for score, field, op in rule.terms:
            cuts = np.append(_cuts(scores[score]), limits[field])  # ties keep the nearest
            others = [op2(scores[s], limits[f]) for s, f, op2 in rule.terms if f != field]
            mine = op(scores[score][:, None], cuts[None, :])
            if others:
                rest = rule.combine(others)[:, None]
                mine = mine | rest if rule.any else mine & rest
            right = (mine == truth[:, None]).sum(axis=0)
            best = np.flatnonzero(right == right.max())
            limits[field] = float(cuts[best[np.argmin(np.abs(cuts[best] - limits[field]))]])
    return limits


def fit(data: Dataset, rows: np.ndarray, config: FilterConfig) -> FilterConfig:
    """The build's filter config with every rule's limits fitted on `rows`."""
    fitted: dict[str, Any] = {}  # FilterConfig field -> fitted limit
    for rule in RULES:
        fitted.update(fit_rule(rule, data, rows, config))
    return dataclasses.replace(config, **fitted)


def counts(data: Dataset, rows: np.ndarray, config: FilterConfig) -> dict[str, Counts]:
    """Per reason, outcomes of `config` on the labelled clips selected by `rows`."""
    out = {}
    limits = dataclasses.asdict(config)
    for rule in RULES:
        positive = data.positive(rule.reason)
        use = rows & (positive | data.keep)
        got = fires(rule, limits, data.scores)[use]
        truth = positive[use]
        out[rule.reason] = Counts(
            int((got & truth).sum()), int((got & ~truth).sum()),
            int((~got & truth).sum()), int((~got & ~truth).sum()),
        )  # fmt: skip
    return out


def group_folds(groups: np.ndarray, k: int = 5) -> list[np.ndarray]:
    """Test masks of up to `k` folds; every video's clips fall in one fold (videos are dealt
    round-robin in sorted order)."""
    videos = sorted(set(groups.tolist()))
    k = min(k, len(videos))
    fold_of = {video: i % k for i, video in enumerate(videos)}
    assignment = np.array([fold_of[g] for g in groups.tolist()], dtype=int)
    return [assignment == i for i in range(k)] if k >= 2 else []


def cross_validate(data: Dataset, config: FilterConfig, k: int = 5) -> dict[str, Counts]:
    """Per reason, outcomes on each fold's held-out videos of limits fitted on the others,
    summed over the folds; empty when fewer than two videos are labelled."""
    total = {rule.reason: Counts() for rule in RULES}
    for test in group_folds(data.groups, k):
        fold = counts(data, test, fit(data, ~test, config))
        total = {reason: total[reason] + fold[reason] for reason in total}
    return total if group_folds(data.groups, k) else {}
