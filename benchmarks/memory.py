"""Benchmark: peak memory of `tld build` on 1080p sources of 1, 5 and 10 minutes.

The source is the synthetic demo corpus upscaled to 1920x1080 and looped to length (H.264,
ultrafast, so the file is quick to make). Each build runs in a fresh process; the figure is the
peak RSS of the largest process of the build's tree (the `tld` process or an ffmpeg child), from
getrusage. Memory must not grow with the length of the video. Prints and saves
benchmarks/results/memory.json. Usage: python benchmarks/memory.py [--minutes 1 5 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timelapse_d.synth import write_corpus

RESULTS = Path(__file__).parent / "results"
MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, capture_output=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def make_source(corpus: list[Path], minutes: float, out: Path) -> Path:
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in corpus))
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-f", "concat", "-safe", "0",
         "-i", str(listing), "-t", str(minutes * 60), "-vf", "scale=1920:1080",
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus", seed=0)
        for minutes in args.minutes:
            source = make_source(corpus, minutes, Path(tmp) / f"src_{minutes}.mp4")
            out = Path(tmp) / f"out_{minutes}"
            build = [sys.executable, "-m", "timelapse_d", "build", "--source", "local",
                     "--input", str(source), "--out", str(out)]  # fmt: skip
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", MEASURE, *build], check=True, capture_output=True, text=True
            )
            summary = json.loads((out / "run" / "summary.json").read_text())
            rows.append(
                {
                    "minutes": minutes,
                    "resolution": "1920x1080",
                    "peak_rss_mb": round(int(result.stdout.strip()) / 1024, 1),
                    "wall_s": round(time.perf_counter() - started, 1),
                    "clips_kept": summary["clips_kept"],
                    "clips_rejected": summary["clips_rejected"],
                }
            )
            print(json.dumps(rows[-1]))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
