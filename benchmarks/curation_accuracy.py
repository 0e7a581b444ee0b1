"""Benchmark: curation decisions against truth, on synthetic corpora and on ../shared/media.

For each synthetic seed, builds the demo corpus and scores cuts (precision/recall within 2
frames) and decisions per truth segment: precision and recall of each scored reason
(`camera_motion`, `static`, `slideshow`, `too_dark`), precision and recall of keeping, and the
share of clean time-lapse segments kept. Then scores the real clips of
../shared/media whose truth is known (pan: camera_motion; static cameras: no camera_motion).
Prints a table and saves benchmarks/results/curation_accuracy.json.
Seeds 0-5 were used to calibrate thresholds; other seeds are held out.
Usage: python benchmarks/curation_accuracy.py [--seeds 0 1 2] [--name FILE_STEM]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from timelapse_d.config import resolve_config
from timelapse_d.cut_scoring import clip_for_segment, cuts_of, score_cuts
from timelapse_d.pipeline import build
from timelapse_d.synth import load_truth

RESULTS = Path(__file__).parent / "results"
SCORED_REASONS = ("camera_motion", "static", "slideshow", "too_dark")
SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
REAL = {
    "camera_motion/pan_153_105898.mp4": True,
    "camera_motion/static_meadow_yoga.mp4": False,
    "camera_motion/static_tree.avi": False,
    "timelapse/sunset-2024-06-22_timelapse.mp4": False,
    "timelapse/sky_timelapse_grid8x6.mp4": False,
}


def _outcome(reason: str, expected: bool, got: bool) -> str:
    kind = "tp" if expected and got else "fn" if expected else "fp" if got else "tn"
    return f"{reason}_{kind}"


def synthetic(seed: int, work: Path) -> Counter:
    """Counts of cut and decision outcomes for one seed."""
    out = work / f"seed{seed}"
    build(resolve_config(source="synthetic", overrides={"synthetic.seed": seed, "workers": 2}), out)
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    counts: Counter = Counter()
    for video in sorted((out / "sources" / "synthetic").glob("*.mp4")):
        truth = load_truth(video)
        uri = f"synthetic://seed-{seed}/{video.name}"
        clips = sorted((r for r in rows if r["source_uri"] == uri), key=lambda r: r["start_frame"])
        cuts = score_cuts(cuts_of(clips), truth.cuts, tolerance=2)
        counts.update(cut_hits=cuts.true_positives, cut_pred=cuts.predicted, cut_true=cuts.actual)
        for segment in truth.segments:
            clip = clip_for_segment(clips, segment.start, segment.end)
            reasons = set(clip["reject_reasons"])
            counts["segments"] += 1
            for reason in SCORED_REASONS:
                counts[_outcome(reason, reason in segment.expected_reasons, reason in reasons)] += 1
            kept = clip["status"] == "kept"
            counts[_outcome("keep", segment.expected_decision == "kept", kept)] += 1
            if segment.expected_decision == "kept":
                counts["positives"] += 1
                counts["positives_kept"] += clip["status"] == "kept"
    return counts


def real(work: Path) -> list[dict]:
    """Camera-motion decisions on the real clips."""
    folder = work / "real"
    folder.mkdir()
    for name in REAL:
        (folder / Path(name).name).symlink_to(SHARED_MEDIA / name)
    out = work / "real_out"
    overrides = {"input": str(folder), "filter.min_frames": 16, "filter.min_height": 200}
    build(resolve_config(source="local", overrides=overrides), out)
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    report = []
    for name, moving in REAL.items():
        clips = [r for r in rows if Path(r["source_uri"]).name == Path(name).name]
        flagged = any("camera_motion" in r["reject_reasons"] for r in clips)
        reasons = [r["reject_reasons"] for r in clips]
        report.append(
            {"clip": name, "camera_moves": moving, "flagged_camera_motion": flagged,
             "correct": flagged == moving, "reasons": reasons}
        )  # fmt: skip
    return report


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 1.0


def _precision_recall(t: Counter, reason: str) -> dict[str, float]:
    tp, fp, fn = t[f"{reason}_tp"], t[f"{reason}_fp"], t[f"{reason}_fn"]
    return {f"{reason}_precision": _ratio(tp, tp + fp), f"{reason}_recall": _ratio(tp, tp + fn)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--name", default="curation_accuracy", help="result file name")
    args = parser.parse_args()
    total: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            total += synthetic(seed, Path(tmp))
        real_report = real(Path(tmp)) if SHARED_MEDIA.is_dir() else []
    t = total
    result = {
        "seeds": args.seeds,
        "segments": t["segments"],
        "cut_precision": _ratio(t["cut_hits"], t["cut_pred"]),
        "cut_recall": _ratio(t["cut_hits"], t["cut_true"]),
        **{k: v for r in (*SCORED_REASONS, "keep") for k, v in _precision_recall(t, r).items()},
        "positives_kept": f"{t['positives_kept']}/{t['positives']}",
        "counts": dict(t),
        "real": real_report,
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
