"""Benchmark: the demo build (`tld build --source synthetic`) end to end on this machine.

Prints and saves wall time, peak RSS of the build process tree, and per-stage throughput to
benchmarks/results/build_demo.json. Usage: python benchmarks/build_demo.py [--workers N]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        command = [sys.executable, "-m", "timelapse_d", "build", "--source", "synthetic",
                   "--out", str(out), "--workers", str(args.workers)]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall = time.perf_counter() - started
        rerun_started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        rerun = time.perf_counter() - rerun_started
        summary = json.loads((out / "run" / "summary.json").read_text())
        markers = (out / "run" / "analyze").glob("*.done.json")
        analyzed = [json.loads(p.read_text())["stats"] for p in markers]
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.node()}",
        "workers": args.workers,
        "wall_s": round(wall, 2),
        "rerun_wall_s": round(rerun, 2),
        "peak_rss_mb_largest_process": round(peak_rss_mb, 1),
        "frames_analysed": sum(s["decoded_frames"] for s in analyzed),
        "analysis_fps_per_worker": round(
            sum(s["decoded_frames"] for s in analyzed) / sum(s["seconds"] for s in analyzed), 1
        ),
        "clips_kept": summary["clips_kept"],
        "clips_rejected": summary["clips_rejected"],
        "reject_reasons": summary["reject_reasons"],
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "build_demo.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
