"""`tld calibrate`: thresholds fitted to curators' labels, applied by `tld build --recipe`."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from timelapse_d.calibration.fit import RULES, Dataset, fit, group_folds, wilson
from timelapse_d.calibration.labels import Label, read_labels
from timelapse_d.config import resolve_config
from timelapse_d.errors import DataError
from timelapse_d.manifest import read_rows
from timelapse_d.pipeline import build

TLD = shutil.which("tld") or "tld"


def _stricter_labels(rows: list[dict]) -> tuple[dict[str, tuple[str, set[str]]], int]:
    """Curators who reject slower pans than the build does: every clip the build flags, plus
    the kept clip with the largest camera translation; the number of clips that disagree."""
    kept = sorted(
        (r for r in rows if not r["reject_reasons"]), key=lambda r: r["camera_translation"]
    )
    limit = (kept[-1]["camera_translation"] + kept[-2]["camera_translation"]) / 2
    labels = {}
    for row in rows:
        reasons = set(row["reject_reasons"]) | (
            {"camera_motion"} if row["camera_translation"] > limit else set()
        )
        labels[row["clip_id"]] = ("reject" if reasons else "keep", reasons)
    return labels, sum(1 for r in kept if r["camera_translation"] > limit)


def test_calibrate_follows_labels_the_thresholds_disagree_with(
    synthetic_build: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(synthetic_build, out)
    rows = read_rows(out / "manifest.parquet")
    labels, disagreeing = _stricter_labels(rows)
    assert disagreeing == 1
    labels_csv = tmp_path / "labels.csv"
    with labels_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "decision", "reasons"])
        for clip_id, (decision, reasons) in labels.items():
            writer.writerow([clip_id, decision, ";".join(sorted(reasons))])

    result = subprocess.run(
        [TLD, "calibrate", str(out), "--labels", str(labels_csv)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "cross-val precision" in result.stdout
    table = {line.split()[0]: line for line in result.stdout.splitlines()[2:7]}
    assert set(table) == {rule.reason for rule in RULES}
    assert "labels vs the build's thresholds: 1 clips disagree" in result.stdout
    assert "label reject ['camera_motion']; keep" in result.stdout
    assert "labels vs the fitted thresholds: 0 clips disagree" in result.stdout

    analyses = {p: p.stat().st_mtime_ns for p in (out / "run" / "analyze").glob("*.json")}
    recipe = out / "calibrated_recipe.yaml"
    build(resolve_config(source="synthetic", recipe=recipe, overrides={"workers": 2}), out)
    assert {p: p.stat().st_mtime_ns for p in analyses} == analyses  # nothing re-analysed
    redecided = {r["clip_id"]: r for r in read_rows(out / "manifest.parquet")}
    for clip_id, (decision, reasons) in labels.items():
        row = redecided[clip_id]
        assert row["status"] == ("kept" if decision == "keep" else "rejected"), clip_id
        assert ("camera_motion" in row["reject_reasons"]) == ("camera_motion" in reasons)


def test_fit_keeps_the_build_limits_when_the_labels_agree(synthetic_build: Path) -> None:
    rows = read_rows(synthetic_build / "manifest.parquet")
    reasons = {r["clip_id"]: frozenset(r["reject_reasons"]) for r in rows}
    labels = {c: Label("reject" if why else "keep", why) for c, why in reasons.items()}
    data = Dataset(rows, labels)
    config = resolve_config(source="synthetic").filter
    assert fit(data, np.ones(len(data.rows), dtype=bool), config) == config


def test_folds_keep_each_video_whole() -> None:
    groups = np.array(["a", "a", "b", "c", "c", "c", "d"])
    folds = group_folds(groups, k=3)
    assert np.sum(folds, axis=0).tolist() == [1] * len(groups)
    for test in folds:
        assert not set(groups[test]) & set(groups[~test])


def test_wilson_interval() -> None:
    share, low, high = wilson(9, 10)
    assert share == 0.9 and 0.59 < low < 0.60 and 0.98 < high < 0.99
    assert wilson(0, 0)[1:] == (0.0, 1.0)


def test_bad_labels_fail_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("clip_id,decision,reasons\nabc,maybe,\n")
    with pytest.raises(DataError, match="use keep or reject"):
        read_labels(path)
    path.write_text("clip,verdict\n")
    with pytest.raises(DataError, match="clip_id,decision,reasons"):
        read_labels(path)


def test_calibrate_without_labels_fails_with_one_line(synthetic_build: Path) -> None:
    result = subprocess.run(
        [TLD, "calibrate", str(synthetic_build)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "run `tld annotate pull`" in result.stderr
