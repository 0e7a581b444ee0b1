"""Benchmark: the single analysis pass against decoding alone, at 720p and 1080p.

Makes test sources by upscaling the synthetic demo corpus with ffmpeg (H.264, crf 20, the
demo's scene changes and motion kept), or with ``--real`` the real clips of ../shared/media
(nature reel, meadow, tree, sunset, archive pan; saved as curate_real.json), then on the
same files in one run measures source frames per second of (a) decoding alone (PyAV,
threaded, no scaling), (b) decoding plus scaling to the analysis size, and (c) the full
analysis pass of `tld build` (probe, decode, cuts, camera and scene motion). Prints a table
and saves benchmarks/results/curate.json.
Usage: python benchmarks/curate.py [--seconds 40] [--real]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import av

from timelapse_d.config import AnalyzeConfig
from timelapse_d.media.decode import analysis_size, iter_frames
from timelapse_d.sources.local import find_videos
from timelapse_d.stages.analyze import analyze_video
from timelapse_d.synth import write_corpus

RESULTS = Path(__file__).parent / "results"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
REAL_CLIPS = [
    "cuts/testvideo.mp4",
    "camera_motion/static_meadow_yoga.mp4",
    "camera_motion/static_tree.avi",
    "timelapse/sunset-2024-06-22_timelapse.mp4",
    "camera_motion/pan_153_105898.mp4",
]


def make_source(corpus: list[Path], size: tuple[int, int], seconds: float, out: Path) -> Path:
    """The videos joined (each scaled to `size` at 25 fps), cut to `seconds`."""
    inputs = [arg for path in corpus for arg in ("-i", str(path))]
    scale = f"scale={size[0]}:{size[1]}:flags=bicubic,fps=25,setsar=1,format=yuv420p"
    chain = "".join(f"[{i}:v]{scale}[v{i}];" for i in range(len(corpus)))
    joined = "".join(f"[v{i}]" for i in range(len(corpus))) + f"concat=n={len(corpus)}:v=1[out]"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", chain + joined,
         "-map", "[out]", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


def decode_only(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def decode_scaled(path: Path) -> int:
    with av.open(str(path)) as container:
        width, height = container.streams.video[0].width, container.streams.video[0].height
    size = analysis_size(width, height, AnalyzeConfig().width)
    return sum(1 for _ in iter_frames(path, width=size[0], height=size[1]))


def full_analysis(path: Path) -> int:
    return analyze_video(find_videos(path)[0], AnalyzeConfig())["stats"]["decoded_frames"]


def best_fps(runs: dict, path: Path, repeats: int = 3) -> dict[str, float]:
    """Best frames per second of each run over `repeats` rounds, the runs interleaved in each
    round so that load from other processes on the machine hits them alike."""
    best = dict.fromkeys(runs, 0.0)
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            frames = run(path)
            best[name] = max(best[name], round(frames / (time.perf_counter() - started), 1))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--real", action="store_true", help="real clips of ../shared/media")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.real:
            corpus = [SHARED_MEDIA / name for name in REAL_CLIPS]
        else:
            corpus = write_corpus(Path(tmp) / "corpus", seed=0)
        for name, size in SIZES.items():
            source = make_source(corpus, size, args.seconds, Path(tmp) / f"{name}.mp4")
            runs = {
                "decode_only_fps": decode_only,
                "decode_and_scale_fps": decode_scaled,
                "analysis_fps": full_analysis,
            }
            row = {"resolution": name, **best_fps(runs, source)}
            row["analysis_vs_decode_only"] = round(row["analysis_fps"] / row["decode_only_fps"], 3)
            rows.append(row)
            print(json.dumps(row))
    RESULTS.mkdir(exist_ok=True)
    name = "curate_real.json" if args.real else "curate.json"
    (RESULTS / name).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
