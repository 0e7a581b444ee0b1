"""Inter-annotator agreement and gold-task accuracy, computed here (Label Studio's agreement
endpoints are paid-only).

Krippendorff's alpha for nominal data, from the coincidence matrix: every clip (unit) answered
by m >= 2 annotators adds, for each ordered pair of answers from two different annotators,
1/(m - 1) to cell (c, k) of the matrix o. With n_c the row sums and n their total,

    alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c * n_k

Clips with fewer than two answers carry no pairs and drop out, so any number of annotators per
clip and missing answers are handled. Alpha is 1 for perfect agreement, about 0 for chance, and
undefined (None) when every answer is the same value.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from timelapse_d.annotation.taxonomy import (
    Annotation,
    GoldTask,
    answers_by_clip,
    latest_answers,
)


def coincidences(
    units: Iterable[Sequence[Hashable | None]],
) -> dict[tuple[Hashable, Hashable], float]:
    """The coincidence matrix (as {(c, k): o_ck}) of units given as their answers (None: no
    answer from that annotator)."""
    matrix: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for answers in units:
        counts = Counter(value for value in answers if value is not None)
        pairable = sum(counts.values())
        if pairable < 2:
            continue
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                if pairs:
                    matrix[c, k] += pairs / (pairable - 1)
    return dict(matrix)


def alpha_nominal(units: Iterable[Sequence[Hashable | None]]) -> float | None:
    """Krippendorff's alpha for nominal answers; None when it is undefined (one value only)."""
    matrix = coincidences(units)
    totals: dict[Hashable, float] = {}
    for (c, _), count in matrix.items():
        totals[c] = totals.get(c, 0.0) + count
    n = sum(totals.values())
    observed = sum(count for (c, k), count in matrix.items() if c != k)
    expected = n * n - sum(n_c * n_c for n_c in totals.values())
    if expected <= 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def decision_alpha(annotations: Iterable[Annotation]) -> float | None:
    """Alpha of keep/reject over all clips (latest answer per annotator)."""
    clips = answers_by_clip(annotations)
    return alpha_nominal([a.decision for a in answers] for answers in clips.values())


def category_alpha(
    annotations: Iterable[Annotation], categories: Sequence[str]
) -> dict[str, float | None]:
    """Alpha per category, each a yes/no question per clip (named or not by each annotator)."""
    clips = answers_by_clip(annotations)
    return {
        category: alpha_nominal(
            [category in a.categories for a in answers] for answers in clips.values()
        )
        for category in categories
    }


@dataclass(frozen=True)
class GoldScore:
    """One annotator's record on gold tasks."""

    annotator: str
    tasks: int  # gold tasks answered
    correct: int  # with the expected keep/reject
    category_overlap: float  # mean Jaccard overlap with the expected categories (both empty: 1)

    @property
    def accuracy(self) -> float:
        return self.correct / self.tasks


def gold_accuracy(
    annotations: Iterable[Annotation], gold: Mapping[str, GoldTask]
) -> dict[str, GoldScore]:
    """Scores of every annotator who answered a gold task (latest answer per task)."""
    answered: dict[str, list[tuple[Annotation, GoldTask]]] = defaultdict(list)
    for answer in latest_answers(annotations):
        if answer.clip_id in gold:
            answered[answer.annotator].append((answer, gold[answer.clip_id]))
    return {
        annotator: GoldScore(
            annotator=annotator,
            tasks=len(pairs),
            correct=sum(answer.decision == task.decision for answer, task in pairs),
            category_overlap=sum(
                _overlap(set(answer.categories), set(task.categories)) for answer, task in pairs
            )
            / len(pairs),
        )
        for annotator, pairs in sorted(answered.items())
    }


def _overlap(given: set[str], expected: set[str]) -> float:
    union = given | expected
    return len(given & expected) / len(union) if union else 1.0


@dataclass(frozen=True)
class AgreementReport:
    """What `tld annotate pull` reports about a set of annotations."""

    clips: int
    annotations: int  # latest answers, one per (clip, annotator)
    per_annotator: dict[str, int]  # answers per annotator
    decision_alpha: float | None
    category_alpha: dict[str, float | None]
    category_clips: dict[str, int]  # clips named with each category by at least one annotator
    gold: dict[str, GoldScore]

    def text(self) -> str:
        lines = [
            f"{self.annotations} answers from {len(self.per_annotator)} annotators "
            f"on {self.clips} clips",
            f"keep/reject agreement (Krippendorff's alpha): {_fmt(self.decision_alpha)}",
            "categories: alpha, clips named",
        ]
        width = max((len(name) for name in self.category_alpha), default=0)
        lines += [
            f"  {name:<{width}}  {_fmt(alpha):>6}  {self.category_clips[name]}"
            for name, alpha in self.category_alpha.items()
        ]
        lines.append("annotators: answers, gold tasks, gold accuracy, gold category overlap")
        width = max((len(name) for name in self.per_annotator), default=0)
        for name, count in self.per_annotator.items():
            score = self.gold.get(name)
            gold = (
                f"{score.tasks:4d}  {score.accuracy:6.1%}  {score.category_overlap:.2f}"
                if score
                else "   0       -     -"
            )
            lines.append(f"  {name:<{width}}  {count:5d}  {gold}")
        return "\n".join(lines) + "\n"


def _fmt(alpha: float | None) -> str:
    return "n/a" if alpha is None else f"{alpha:.3f}"


def agreement_report(
    annotations: Iterable[Annotation],
    categories: Sequence[str],
    gold: Mapping[str, GoldTask] | None = None,
) -> AgreementReport:
    """Agreement on keep/reject and on each category, and gold accuracy per annotator."""
    answers = latest_answers(annotations)
    clips = answers_by_clip(answers)
    return AgreementReport(
        clips=len(clips),
        annotations=len(answers),
        per_annotator=dict(sorted(Counter(a.annotator for a in answers).items())),
        decision_alpha=decision_alpha(answers),
        category_alpha=category_alpha(answers, categories),
        category_clips={
            c: sum(any(c in a.categories for a in group) for group in clips.values())
            for c in categories
        },
        gold=gold_accuracy(answers, gold or {}),
    )
