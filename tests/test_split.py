"""Train/test split: every category in test at the configured share, videos never straddle."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from timelapse_d.annotation.split import TEST, TRAIN, UNCATEGORIZED, split
from timelapse_d.errors import ConfigError

CATEGORIES = ["cloud", "star", "water", "waterfall", "hayfield", "traffic", "smoke", "tree",
              "sun", "moon", "aurora", "fire", "fog"]  # fmt: skip


def _corpus(seed: int, videos: int = 60) -> list[dict]:
    """About 5 clips per video; each video has a main category, 30% of clips a second one."""
    rng = random.Random(seed)
    rows = []
    for v in range(videos):
        main = CATEGORIES[v % len(CATEGORIES)]
        for k in range(rng.randint(2, 8)):
            extra = {rng.choice(CATEGORIES)} if rng.random() < 0.3 else set()
            rows.append(
                {"clip_id": f"v{v:03d}-{k}", "video_id": f"v{v:03d}",
                 "categories": sorted({main} | extra)}
            )  # fmt: skip
    return rows


@pytest.mark.parametrize(("corpus_seed", "fraction"), [(0, 0.15), (1, 0.2), (2, 0.146)])
def test_every_category_is_in_test_at_the_configured_share(
    corpus_seed: int, fraction: float
) -> None:
    rows = _corpus(corpus_seed)
    assert 250 <= len(rows) <= 350
    result = split(rows, fraction, seed=7)
    summary = result.summary
    assert [c.category for c in summary.categories] == sorted(CATEGORIES)
    for share in summary.categories:
        assert share.test_clips > 0, share
        assert abs(share.share - fraction) <= 0.1, share
    assert abs(summary.test_clips / summary.clips - fraction) <= 0.03
    # the summary counts what the assignment says
    test_clips = [r for r in rows if result.assignment[r["clip_id"]] == TEST]
    assert summary.test_clips == len(test_clips)
    cloud = next(c for c in summary.categories if c.category == "cloud")
    assert cloud.test_clips == sum("cloud" in r["categories"] for r in test_clips)
    assert cloud.clips == sum("cloud" in r["categories"] for r in rows)


def test_no_video_is_on_both_sides() -> None:
    rows = _corpus(3)
    assignment = split(rows, 0.15, seed=1).assignment
    assert set(assignment) == {r["clip_id"] for r in rows}
    assert set(assignment.values()) == {TRAIN, TEST}
    sides = defaultdict(set)
    for row in rows:
        sides[row["video_id"]].add(assignment[row["clip_id"]])
    assert all(len(s) == 1 for s in sides.values())


def test_same_seed_same_split_whatever_the_row_order() -> None:
    rows = _corpus(4)
    first = split(rows, 0.15, seed=11)
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    assert split(shuffled, 0.15, seed=11) == first
    assert split(rows, 0.15, seed=12).assignment != first.assignment


def test_small_categories_and_uncategorized_clips() -> None:
    rows = _corpus(5, videos=40)
    rows += [{"clip_id": f"solo-{k}", "video_id": "solo", "categories": ["volcano"]}
             for k in range(3)]  # fmt: skip
    rows += [{"clip_id": f"pair{v}-{k}", "video_id": f"pair{v}", "categories": ["geyser"]}
             for v in range(2) for k in range(3)]  # fmt: skip
    rows += [{"clip_id": f"none{v}-{k}", "video_id": f"none{v}", "categories": None}
             for v in range(6) for k in range(4)]  # fmt: skip
    result = split(rows, 0.15, seed=0)
    shares = {c.category: c for c in result.summary.categories}
    assert shares["volcano"].test_videos == 0  # one video: train only
    assert shares["geyser"].test_videos == 1  # two videos: one on each side
    assert shares[UNCATEGORIZED].clips == 24 and shares[UNCATEGORIZED].test_clips > 0
    text = result.summary.text()
    assert "geyser" in text and f"of {len(rows)} clips" in text


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_fraction_must_be_inside_zero_one(fraction: float) -> None:
    with pytest.raises(ConfigError, match="test fraction"):
        split(_corpus(0), fraction, seed=0)


def test_tld_split_writes_the_manifest_column(synthetic_build, tmp_path) -> None:
    import shutil

    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from timelapse_d.cli import cli

    out = tmp_path / "out"
    shutil.copytree(synthetic_build, out)
    result = CliRunner().invoke(cli, ["split", str(out), "--test-fraction", "0.25"])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert all((r["split"] is None) == (r["status"] != "kept") for r in rows)
    sides = {}
    for row in (r for r in rows if r["split"]):
        sides.setdefault(row["video_id"], set()).add(row["split"])
    assert all(len(s) == 1 for s in sides.values())
    assert {"train", "test"} == set().union(*sides.values())


def test_a_rebuild_keeps_the_split(synthetic_build, tmp_path) -> None:
    import shutil

    import pyarrow.parquet as pq

    from timelapse_d.annotation.split import write_split
    from timelapse_d.config import resolve_config
    from timelapse_d.pipeline import build

    out = tmp_path / "out"
    shutil.copytree(synthetic_build, out)
    write_split(out, 0.25, seed=3)
    before = pq.read_table(out / "manifest.parquet", columns=["clip_id", "split"]).to_pylist()
    assert {r["split"] for r in before} == {"train", "test", None}
    summary = build(resolve_config(source="synthetic", overrides={"workers": 2}), out)
    assert summary.complete
    after = pq.read_table(out / "manifest.parquet", columns=["clip_id", "split"]).to_pylist()
    assert after == before


def test_a_rebuild_keeps_the_side_of_clips_still_kept_only(caplog) -> None:
    from timelapse_d.assemble import with_splits
    from timelapse_d.records import Clip

    def clip(clip_id: str, status: str) -> Clip:
        return Clip(clip_id=clip_id, video_id="v", status=status)

    sides = {"a": "test", "b": "train"}
    rebuilt = [clip("a", "kept"), clip("b", "rejected"), clip("c", "kept"), clip("d", "kept")]
    assert [c.split for c in with_splits(rebuilt, sides)] == ["test", None, None, None]
    assert "2 kept clips are new since `tld split`" in caplog.text
    caplog.clear()
    assert with_splits(rebuilt, {}) == rebuilt
    assert "new since" not in caplog.text
