"""Benchmark: camera-motion decisions on real footage under virtual cameras with known truth.

Generates the corpus of :mod:`timelapse_d.synth.real_camera` from ../shared/media (nothing is
kept), analyses each segment with the analysis pass of `tld build` and decides it with the
filter thresholds (``--set filter.KEY=VALUE`` to try others). Prints and saves, per half
(calibration, held_out), the camera_motion confusion table, precision and recall, the share of
fixed-camera segments kept (not rejected for camera motion), overall and for those with strong
scene motion, and the misjudged segments. ``--scores FILE`` keeps every segment's scores (JSON
lines) and reuses them on the next run, so thresholds can be tried without re-analysing.
Usage: python benchmarks/camera_corpus.py [--jobs 2] [--scores FILE] [--set filter.KEY=VALUE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from timelapse_d.config import AnalyzeConfig, resolve_config
from timelapse_d.sources.local import find_videos
from timelapse_d.stages.analyze import analyze_video
from timelapse_d.stages.filter import reject_reasons
from timelapse_d.synth import real_camera

RESULTS = Path(__file__).parent / "results"
SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def analyse(segment: real_camera.Segment) -> dict:
    """The segment's truth and the scores of its (single) clip."""
    with tempfile.TemporaryDirectory() as tmp:
        path = real_camera.write_segment(segment, SHARED_MEDIA, Path(tmp) / f"{segment.name}.mp4")
        clips = analyze_video(find_videos(path)[0], AnalyzeConfig())["clips"]
    clip = max(clips, key=lambda c: c["num_frames"])
    return {"segment": segment.to_dict(), "clip": clip, "clips": len(clips)}


def scored(jobs: int, cache: Path | None) -> list[dict]:
    """Every segment's row, from `cache` where it has the segment."""
    done = {}
    if cache is not None and cache.exists():
        rows = [json.loads(line) for line in cache.read_text().splitlines()]
        done = {r["segment"]["name"]: r for r in rows}
    wanted = real_camera.segments()
    missing = [s for s in wanted if s.name not in done]
    with ProcessPoolExecutor(jobs) as pool:
        for row in pool.map(analyse, missing):
            done[row["segment"]["name"]] = row
            if cache is not None:
                with cache.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    return [done[s.name] for s in wanted]


def table(rows: list[dict], overrides: dict) -> dict:
    """Confusion table and rates of one half."""
    config = resolve_config(source="synthetic", overrides=overrides).filter
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    strong = [0, 0]  # fixed-camera segments with strong scene motion: kept, all
    wrong = []
    for row in rows:
        truth = row["segment"]["camera_motion"]
        got = "camera_motion" in reject_reasons(row["clip"], config)
        counts[("t" if truth == got else "f") + ("p" if got else "n")] += 1
        if not truth and row["segment"]["strong_scene_motion"]:
            strong[0] += not got
            strong[1] += 1
        if truth != got:
            wrong.append(row["segment"]["name"])
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    return {
        "segments": len(rows),
        "confusion": counts,
        "camera_motion_precision": round(tp / max(tp + fp, 1), 4),
        "camera_motion_recall": round(tp / max(tp + fn, 1), 4),
        "fixed_camera_kept": round(tn / max(tn + fp, 1), 4),
        "strong_scene_motion_kept": f"{strong[0]}/{strong[1]}",
        "misjudged": wrong,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--scores", type=Path, help="JSON-lines cache of segment scores")
    parser.add_argument("--set", action="append", default=[], help="filter.KEY=VALUE")
    parser.add_argument("--name", default="camera_corpus", help="result file name")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    overrides = {k: float(v) for k, v in overrides.items()}
    rows = scored(args.jobs, args.scores)
    result = {
        half: table([r for r in rows if r["segment"]["half"] == half], overrides)
        for half in ("calibration", "held_out")
    }
    result["overrides"] = overrides
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
