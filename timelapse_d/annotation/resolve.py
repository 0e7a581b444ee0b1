"""One human label per clip from several annotators' answers (`tld annotate pull` stores them
in `labels.parquet`; `stages.filter.decide` applies them).

Votes. Each annotator i votes with a weight w_i. A clip is kept when the annotators who chose
keep hold strictly more than half of its total weight; otherwise it is rejected. A tie
therefore rejects (a clip its annotators split on is not clean enough to train on) and is
flagged (`tie`) for review. Plain majority is w_i = 1. The reliability-weighted vote takes
the weights from gold tasks (a one-coin Dawid-Skene model with the accuracies estimated on
gold rather than by EM):

    p_i = (c_i + 2) / (n_i + 3)      gold accuracy, c_i right of n_i, smoothed by a Beta(2, 1) prior
    w_i = max(0, ln(p_i / (1 - p_i)))

For independent annotators who are right with probability p_i on a two-way question, the
answer with the larger sum of log-odds weights is the more probable one. The prior gives an
annotator without gold tasks p = 2/3 (w = 0.69) and keeps a perfect record finite (10 of 10:
w = 2.48). Annotators at or below chance weigh 0 instead of a negative weight that would turn
their votes round; when every annotator of a clip weighs 0, that clip falls back to plain
majority.

Reasons and categories follow the same weights: a reject reason is recorded when the
annotators who rejected and named it hold at least half of the rejecting weight; a category
when the annotators who named it hold strictly more than half of the clip's weight.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from timelapse_d.annotation.agreement import gold_accuracy
from timelapse_d.annotation.taxonomy import (
    KEEP,
    REJECT,
    Annotation,
    GoldTask,
    answers_by_clip,
    latest_answers,
)
from timelapse_d.records import Label

GOLD_PRIOR = (2.0, 1.0)  # Beta prior (right, wrong) on an annotator's gold accuracy


def annotator_weights(
    annotations: Iterable[Annotation], gold: Mapping[str, GoldTask]
) -> dict[str, float]:
    """The log-odds weight of every annotator in `annotations` from their gold accuracy."""
    answers = latest_answers(annotations)
    scores = gold_accuracy(answers, gold)
    right_prior, wrong_prior = GOLD_PRIOR
    weights = {}
    for annotator in sorted({a.annotator for a in answers}):
        score = scores.get(annotator)
        tasks, correct = (score.tasks, score.correct) if score else (0, 0)
        p = (correct + right_prior) / (tasks + right_prior + wrong_prior)
        weights[annotator] = max(0.0, math.log(p / (1.0 - p)))
    return weights


def resolve(
    annotations: Iterable[Annotation], weights: Mapping[str, float] | None = None
) -> dict[str, Label]:
    """Resolve every clip (latest answer per annotator) by weighted vote; plain majority when
    `weights` is None. Every annotator needs a weight (see :func:`annotator_weights`)."""
    clips = answers_by_clip(annotations)
    return {clip_id: _resolve_clip(clip_id, answers, weights) for clip_id, answers in clips.items()}


def _resolve_clip(
    clip_id: str, answers: list[Annotation], weights: Mapping[str, float] | None
) -> Label:
    annotators = [a.annotator for a in answers]
    if weights is not None and not set(annotators) <= set(weights):
        raise ValueError(f"no weight for annotators {sorted(set(annotators) - set(weights))}")
    weight = {name: 1.0 if weights is None else weights[name] for name in annotators}
    if not any(weight.values()):
        weight = dict.fromkeys(weight, 1.0)
    total = sum(weight.values())
    keep = sum(weight[a.annotator] for a in answers if a.decision == KEEP)
    tie = math.isclose(keep, total / 2)
    decision = KEEP if keep > total / 2 and not tie else REJECT
    rejecters = [a for a in answers if a.decision == REJECT]
    reasons = sorted({r for a in rejecters for r in a.reasons}) if decision == REJECT else []
    categories = sorted({c for a in answers for c in a.categories})
    return Label(
        clip_id=clip_id,
        human_decision=decision,
        human_reasons=tuple(
            r
            for r in reasons
            if sum(weight[a.annotator] for a in rejecters if r in a.reasons) >= (total - keep) / 2
        ),
        categories=tuple(
            c
            for c in categories
            if sum(weight[a.annotator] for a in answers if c in a.categories) > total / 2
        ),
        agreement=(keep if decision == KEEP else total - keep) / total
        if len(answers) > 1
        else None,
        n_annotations=len(answers),
        tie=tie,
    )
