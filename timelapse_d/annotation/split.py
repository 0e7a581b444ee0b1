"""Train/test split drawn from every scene category in equal proportion, grouped by video.

Each source video goes whole to one side, so no footage straddles the split, and each
category's test share of clips is aimed at the same `test_fraction` (Time-lapse-D: 2,456 of
16,874 clips in test, drawn from every category alike). A clip with several categories counts
once in each; clips without categories count in `UNCATEGORIZED`.

With f the test fraction, n_c the clips of category c (t_c of them in test), N the clips
(T in test), the split minimises the imbalance

    sum_c (t_c - f n_c)^2 / n_c  +  (T - f N)^2 / N

(squared miss of each category's target, relative to its size so small categories count) by:

1. shuffling the videos with the seed (sorted by id first: the row order does not matter);
2. presence: for each category, fewest videos first, with no video in test yet, moving to
   test the one of its videos that leaves the smallest imbalance;
3. balance: passes over the videos in shuffled order, moving a video to the other side
   whenever that lowers the imbalance; when no single move helps, swapping a test video with
   a train video of one of its categories when that helps; until nothing helps.

This local search stops at a split no single move or swap improves (not always the best
one). On 60 videos / 300 clips every category's test share lands within 0.1 of f; on 3,000
videos / 15,000 clips within 0.001, in about 5 s.

No move takes the last video of a category with two or more videos off either side, so such
a category is on both sides whenever its videos allow it; a category with one video is in
train only.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timelapse_d.errors import ConfigError

TRAIN, TEST = "train", "test"
UNCATEGORIZED = "uncategorized"
_EPS = 1e-12  # smallest improvement that counts as one (guards float round-off loops)


@dataclass(frozen=True)
class CategoryShare:
    """Clips and videos of one category, and how many of them are in test."""

    category: str
    clips: int
    test_clips: int
    videos: int
    test_videos: int

    @property
    def share(self) -> float:
        return self.test_clips / self.clips


@dataclass(frozen=True)
class SplitSummary:
    """Counts per side and per category."""

    test_fraction: float
    clips: int
    test_clips: int
    videos: int
    test_videos: int
    categories: tuple[CategoryShare, ...]  # by category name

    def text(self) -> str:
        lines = [
            f"test: {self.test_clips} of {self.clips} clips ({self.test_clips / self.clips:.1%}, "
            f"target {self.test_fraction:.1%}), {self.test_videos} of {self.videos} videos",
            "category: test clips / clips (share), test videos / videos",
        ]
        width = max((len(c.category) for c in self.categories), default=0)
        lines += [
            f"  {c.category:<{width}}  {c.test_clips:5d} / {c.clips:<5d} ({c.share:5.1%})  "
            f"{c.test_videos} / {c.videos}"
            for c in self.categories
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Split:
    """The side of each clip (`TRAIN` or `TEST`) and its summary."""

    assignment: dict[str, str]
    summary: SplitSummary


class _Balance:
    """Clip and video counts per category and side, and the effect of moving videos."""

    def __init__(self, counts: dict[str, Counter[str]], test_fraction: float) -> None:
        self.counts = counts  # video -> category -> clips; key "" counts every clip
        self.fraction = test_fraction
        self.totals: Counter[str] = Counter()
        self.videos: Counter[str] = Counter()
        for per_category in counts.values():
            self.totals.update(per_category)
            self.videos.update(per_category.keys())
        self.test: Counter[str] = Counter()  # test clips per category
        self.test_videos: Counter[str] = Counter()
        self.in_test: set[str] = set()

    def _changes(self, videos: tuple[str, ...]) -> dict[str, list[int]]:
        """Category -> [clips, videos] that test gains by moving `videos` across."""
        changes: dict[str, list[int]] = {}
        for video in videos:
            sign = -1 if video in self.in_test else 1
            for category, clips in self.counts[video].items():
                change = changes.setdefault(category, [0, 0])
                change[0] += sign * clips
                change[1] += sign
        return changes

    def gain(self, videos: tuple[str, ...]) -> float:
        """How much moving `videos` across lowers the imbalance."""
        gain = 0.0
        for category, (clips, _) in self._changes(videos).items():
            miss = self.test[category] - self.fraction * self.totals[category]
            gain += (miss * miss - (miss + clips) ** 2) / self.totals[category]
        return gain

    def allowed(self, videos: tuple[str, ...]) -> bool:
        """False when moving `videos` leaves more sides without a category of two or more
        videos than before."""
        missing = 0
        for category, (_, change) in self._changes(videos).items():
            total = self.videos[category]
            if total >= 2:
                before, after = self.test_videos[category], self.test_videos[category] + change
                missing += (after in (0, total)) - (before in (0, total))
        return missing <= 0

    def improves(self, videos: tuple[str, ...]) -> bool:
        return self.gain(videos) > _EPS and self.allowed(videos)

    def move(self, videos: tuple[str, ...]) -> None:
        for category, (clips, count) in self._changes(videos).items():
            self.test[category] += clips
            self.test_videos[category] += count
        self.in_test.symmetric_difference_update(videos)


def split(rows: Iterable[dict[str, Any]], test_fraction: float, seed: int = 0) -> Split:
    """Assign every clip (rows with `clip_id`, `video_id`, `categories`) to train or test."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test fraction must be between 0 and 1, got {test_fraction}")
    rows = sorted(rows, key=lambda row: row["clip_id"])
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        counts[row["video_id"]].update(["", *(set(row.get("categories") or ()) or [UNCATEGORIZED])])
    order = sorted(counts)
    random.Random(seed).shuffle(order)
    balance = _Balance(counts, test_fraction)
    members: dict[str, list[str]] = defaultdict(list)  # category -> its videos, in `order`
    for video in order:
        for category in counts[video].keys() - {""}:
            members[category].append(video)

    categories = sorted((c for c in balance.totals if c), key=lambda c: (balance.videos[c], c))
    for category in categories:
        if balance.test_videos[category] == 0:
            moves = [(v,) for v in members[category] if balance.allowed((v,))]
            if moves:
                balance.move(max(moves, key=balance.gain))
    while _improve(balance, order, members):
        pass

    assignment = {
        row["clip_id"]: TEST if row["video_id"] in balance.in_test else TRAIN for row in rows
    }
    return Split(assignment, _summary(balance, test_fraction, categories))


def _improve(balance: _Balance, order: list[str], members: dict[str, list[str]]) -> bool:
    """One pass of single moves or, when none helps, of swaps between a test video and a train
    video of one of its categories; True when anything moved."""
    moved = False
    for video in order:
        if balance.improves((video,)):
            balance.move((video,))
            moved = True
    if moved:
        return True
    for video in [v for v in order if v in balance.in_test]:
        partners = (
            (video, other)
            for category in sorted(balance.counts[video].keys() - {""})
            for other in members[category]
            if other not in balance.in_test
        )
        swap = next((pair for pair in partners if balance.improves(pair)), None)
        if swap:
            balance.move(swap)
            moved = True
    return moved


def _summary(balance: _Balance, test_fraction: float, categories: list[str]) -> SplitSummary:
    return SplitSummary(
        test_fraction=test_fraction,
        clips=balance.totals[""],
        test_clips=balance.test[""],
        videos=len(balance.counts),
        test_videos=len(balance.in_test),
        categories=tuple(
            CategoryShare(
                category=c,
                clips=balance.totals[c],
                test_clips=balance.test[c],
                videos=balance.videos[c],
                test_videos=balance.test_videos[c],
            )
            for c in sorted(categories)
        ),
    )


def write_split(out: Path, test_fraction: float, seed: int = 0) -> SplitSummary:
    """Split the kept clips of OUT/manifest.parquet, store their sides in OUT/splits.parquet
    (the only writer of `split`) and re-assemble the manifest with them."""
    from timelapse_d.assemble import MANIFEST, assemble, write_splits
    from timelapse_d.manifest import read_rows

    manifest = out / MANIFEST
    if not manifest.is_file():
        raise ConfigError(f"{manifest} is missing: run `tld build` first")
    kept = [row for row in read_rows(manifest) if row["status"] == "kept"]
    if not kept:
        raise ConfigError(f"{manifest} has no kept clips to split")
    result = split(kept, test_fraction, seed)
    write_splits(out, result.assignment)
    assemble(out)
    return result.summary
