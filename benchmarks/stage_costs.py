"""Benchmark: CPU seconds per unit of work of every stage, the measured side of docs/scale.md.

CPU time is this process's plus its waited-for children's (``resource.getrusage``), so the
figures hold on a busy machine; wall time and the load average are saved beside them. Sources
are real footage from ../shared/media (required): the nature reel ``cuts/testvideo.mp4`` as
it is (1280x720, its own H.264), the same reel upscaled to 1920x1080 (libx264 medium, crf 18,
B-frames: a typical upload), the same at 1080p as a short-GOP stream without B-frames (what
the encode stage stream-copies), the native 1080p meadow clip (5.8 Mbit/s, a real camera's
detail) and the meadow scaled to 720p (libx264 medium, crf 18). All made in a temporary
folder. Measured:
- analysis: `analyze_video` (the single decode pass), CPU s per minute of footage;
- encode: `encode_clip` on every candidate clip (re-encode and stream copy), per minute;
- previews: `encode_clip` with the preview settings, per clip and per minute;
- precompute: decoding and sampling a 1080p / 720p clip (`sample_clip`), per clip frame;
  DIS, FlowNet2 and HRNetV2 (random weights) on 256x256 frames, CPU s per pair / frame and
  FLOPs per pair / frame counted by torch's FlopCounterMode; `tld precompute flow --backend
  dis` end to end on the demo build, per clip;
- download: `download_all` (yt-dlp, verification, SHA-256) from the tests' video host on
  127.0.0.1, one worker in this process, of copies of the reel and of a large (137 MB) file;
  CPU per video and per GB fitted to both (the host's serving thread is counted too: an
  upper bound).
Prints each figure as it comes and a table at the end; saves benchmarks/results/stage_costs.json.
Usage: python benchmarks/stage_costs.py [--quick]   (--quick: 8 s sources, printed, not saved)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.flop_counter import FlopCounterMode

from timelapse_d.acquire.download import download_all
from timelapse_d.acquire.settings import DownloadConfig
from timelapse_d.acquire.urls import read_url_list
from timelapse_d.annotation.previews import PREVIEW_ENCODE
from timelapse_d.config import AnalyzeConfig, EncodeConfig
from timelapse_d.flow.dis import DISBackend
from timelapse_d.flow.flownet2 import FlowNet2, estimate_flow
from timelapse_d.precompute.sampling import Sampling, sample_clip
from timelapse_d.runs import RunDir
from timelapse_d.segment.hrnet import Segmenter, segment
from timelapse_d.sources.local import find_videos
from timelapse_d.stages.analyze import analyze_video
from timelapse_d.stages.encode import encode_clip

RESULTS = Path(__file__).parent / "results"
MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
REEL = MEDIA / "cuts" / "testvideo.mp4"
MEADOW = MEDIA / "camera_motion" / "static_meadow_yoga.mp4"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from standins.host import VideoHost  # noqa: E402 - the tests folder is put on the path above

T = TypeVar("T")


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads) and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measured(call: Callable[[], T]) -> tuple[T, float, float]:
    """(result, CPU seconds, wall seconds) of `call`."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = call()
    return result, cpu_seconds() - cpu, time.perf_counter() - wall


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_sources(folder: Path, seconds: float) -> dict[str, Path]:
    """The test sources (see the module docstring), cut to `seconds`."""
    up = "scale=1920:1080:flags=bicubic,setsar=1"
    x264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-an")
    sources = {"720p reel": folder / "reel720.mp4", "1080p reel": folder / "reel1080.mp4"}
    sources["1080p reel, short GOP"] = folder / "reel1080_gop.mp4"
    ffmpeg("-i", str(REEL), "-t", str(seconds), "-c", "copy", "-an", str(sources["720p reel"]))
    ffmpeg("-i", str(REEL), "-t", str(seconds), "-vf", up, *x264, "-preset", "medium",
           "-crf", "18", str(sources["1080p reel"]))  # fmt: skip
    ffmpeg("-i", str(REEL), "-t", str(seconds), "-vf", up, *x264, "-preset", "veryfast",
           "-crf", "18", "-bf", "0", "-g", "12", "-keyint_min", "1",
           str(sources["1080p reel, short GOP"]))  # fmt: skip
    sources["1080p meadow (native)"] = MEADOW
    sources["720p meadow"] = folder / "meadow720.mp4"
    ffmpeg("-i", str(MEADOW), "-vf", "scale=1280:720:flags=area,setsar=1", *x264,
           "-preset", "medium", "-crf", "18", str(sources["720p meadow"]))  # fmt: skip
    return sources


def minutes_of(clips: list[dict[str, Any]]) -> float:
    return sum(c["num_frames"] / c["fps"] for c in clips) / 60


def analysis_cost(name: str, path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The analysis row of one source and its candidate clips."""
    result, cpu, wall = measured(lambda: analyze_video(find_videos(path)[0], AnalyzeConfig()))
    video = result["video"]
    minutes = video["num_frames"] / video["fps"] / 60
    row = {
        "source": name,
        "size": f"{video['width']}x{video['height']}",
        "frames": video["num_frames"],
        "source_mb_per_minute": round(path.stat().st_size / 1e6 / minutes, 2),
        "minutes": round(minutes, 3),
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "cpu_s_per_minute": round(cpu / minutes, 2),
        "cpu_ms_per_frame": round(1000 * cpu / video["num_frames"], 2),
    }
    return row, result["clips"]


def encode_cost(
    name: str, source: Path, clips: list[dict[str, Any]], config: EncodeConfig, out: Path
) -> dict[str, Any]:
    """Encode every clip; CPU per minute of footage, split by stream-copied or re-encoded."""
    out.mkdir(parents=True, exist_ok=True)
    ways: dict[str, dict[str, float]] = {}
    for clip in clips:
        target = out / f"{clip['clip_id']}.mp4"
        done, cpu, wall = measured(lambda c=clip, t=target: encode_clip(c, source, t, config))
        way = ways.setdefault("stream_copy" if done["stream_copied"] else "re_encode", {})
        for key, value in (("clips", 1), ("frames", clip["num_frames"]), ("cpu_s", cpu),
                           ("wall_s", wall), ("minutes", minutes_of([clip])),
                           ("bytes", done["clip_bytes"])):  # fmt: skip
            way[key] = way.get(key, 0) + value
    rows = {}
    for way, sums in ways.items():
        rows[way] = {
            "clips": int(sums["clips"]),
            "frames": int(sums["frames"]),
            "cpu_s": round(sums["cpu_s"], 2),
            "wall_s": round(sums["wall_s"], 2),
            "cpu_s_per_minute": round(sums["cpu_s"] / sums["minutes"], 2),
            "cpu_s_per_clip": round(sums["cpu_s"] / sums["clips"], 3),
            "cpu_ms_per_frame": round(1000 * sums["cpu_s"] / sums["frames"], 2),
            "mb_per_minute": round(sums["bytes"] / 1e6 / sums["minutes"], 2),
        }
    return {"source": name, **rows}


def sampling_cost(name: str, clip_files: list[Path]) -> dict[str, Any]:
    """Decoding encoded clips and sampling every 4th frame at 256x256, as precompute does."""
    frames = cpu = wall = 0.0
    for path in clip_files:
        data = path.read_bytes()
        (indices, _), c, w = measured(lambda d=data: sample_clip(d, Sampling()))
        frames += indices[-1] + 1
        cpu, wall = cpu + c, wall + w
    return {
        "source": name,
        "clip_frames": int(frames),
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "cpu_ms_per_clip_frame": round(1000 * cpu / frames, 2),
    }


def network_frames(count: int) -> np.ndarray:
    """`count` + 1 real 256x256 frames (the reel, every 4th frame, as precompute samples)."""
    _, sampled = sample_clip(REEL.read_bytes(), Sampling())
    return np.resize(sampled, (count + 1, *sampled.shape[1:]))


def flops(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return int(counter.get_total_flops())


def network_costs(batch: int, repeats: int) -> list[dict[str, Any]]:
    """CPU s per pair (flow) or frame (masks) at 256x256 and FLOPs counted at one item.

    One torch thread: with two, threads waiting for each other spin and count as CPU time on
    a busy machine (HRNetV2 measured 0.31 CPU s per frame quiet, 2.1 at a load average of 7).
    The least of `repeats` runs: other processes slow every instruction, and CPU time too.
    """
    torch.manual_seed(0)
    torch.set_num_threads(1)
    frames = network_frames(batch)
    previous, following = frames[:-1], frames[1:]
    one = torch.rand(1, 3, 256, 256)
    flownet2, segmenter = FlowNet2().eval(), Segmenter().eval()
    runs: list[tuple[str, Callable[[], object], int | None]] = [
        ("flow dis", lambda: DISBackend().backward_flow(previous, following), None),
        ("flow flownet2", lambda: estimate_flow(flownet2, following, previous),
         flops(flownet2, one * 255, one * 255)),
        ("masks hrnetv2", lambda: segment(segmenter, previous),
         flops(segmenter, one)),
    ]  # fmt: skip
    rows = []
    for name, run, counted in runs:
        run()  # warm-up
        cpu, wall = min(measured(run)[1:] for _ in range(repeats))
        row = {
            "model": name,
            "batch": batch,
            "torch_threads": torch.get_num_threads(),
            "cpu_s_per_item": round(cpu / batch, 4),
            "wall_s_per_item": round(wall / batch, 4),
        }
        if counted is not None:
            row["gflop_per_item"] = round(counted / 1e9, 1)
        rows.append(row)
    return rows


def tld(*args: str) -> tuple[float, float]:
    """CPU and wall seconds of one `tld` command (a child process)."""
    command = [sys.executable, "-m", "timelapse_d", *args]
    _, cpu, wall = measured(lambda: subprocess.run(command, check=True, capture_output=True))
    return cpu, wall


def dis_precompute_cost(folder: Path) -> dict[str, Any]:
    """`tld precompute flow --backend dis` on the demo build, per clip and per sampled pair."""
    out = folder / "demo"
    build_cpu, build_wall = tld(
        "build", "--source", "synthetic", "--workers", "1", "--out", str(out)
    )
    cpu, wall = tld("precompute", "flow", str(out), "--backend", "dis")
    manifest = pq.read_table(out / "manifest.parquet", columns=["status", "num_frames"])
    kept = [n for s, n in zip(*manifest.to_pydict().values(), strict=True) if s == "kept"]
    pairs = sum(-(-n // 4) - 1 for n in kept)
    return {
        "build": "tld build --source synthetic (demo, 384x216), 1 worker",
        "build_cpu_s": round(build_cpu, 2),
        "build_wall_s": round(build_wall, 2),
        "clips": len(kept),
        "clip_frames": sum(kept),
        "pairs": pairs,
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "cpu_s_per_clip": round(cpu / len(kept), 3),
        "cpu_ms_per_pair": round(1000 * cpu / pairs, 2),
    }


def make_large_video(path: Path, seconds: float) -> Path:
    """A 1080p lossless H.264 file of grainy test pattern: about 68 MB per second."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25", "-t", str(seconds),
           "-vf", "noise=alls=20:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
           "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


def download_cost(files: dict[str, tuple[Path, int]], folder: Path) -> dict[str, Any]:
    """`download_all` of each file (path, copies), after one warm-up download; CPU per video
    and per GB fitted to the runs (cpu = a * videos + b * bytes, least squares)."""
    rows = []
    with VideoHost() as host:
        for name, (path, copies) in {"warm-up": (REEL, 1), **files}.items():
            data = path.read_bytes()
            urls = []
            for i in range(copies):
                host.files[f"/{name}/{i}.mp4"] = data
                urls.append(host.url(f"/{name}/{i}.mp4"))
            listing = folder / f"{name}.txt"
            listing.write_text("\n".join(urls) + "\n")
            root = folder / f"dl-{name}"

            def run(listing: Path = listing, root: Path = root) -> Any:
                candidates, config = read_url_list(listing), DownloadConfig(workers=1)
                return download_all(candidates, config, root / "f", root / "s", RunDir(root))

            report, cpu, wall = measured(run)
            if report.counts()["ok"] != copies:
                raise RuntimeError(f"downloads failed: {report.counts()}")
            if name != "warm-up":
                rows.append({"file": name, "bytes": len(data), "videos": copies,
                             "cpu_s": round(cpu, 2), "wall_s": round(wall, 2)})  # fmt: skip
    design = np.array([[r["videos"], r["videos"] * r["bytes"]] for r in rows], dtype=float)
    (per_video, per_byte), *_ = np.linalg.lstsq(design, [r["cpu_s"] for r in rows], rcond=None)
    return {
        "runs": rows,
        "cpu_s_per_video": round(float(per_video), 3),
        "cpu_s_per_gb": round(float(per_byte) * 1e9, 2),
    }


def summary(report: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(what, unit, CPU seconds per unit) of every measurement in the report."""
    rows = [
        (f"analysis, {r['source']}", "minute", r["cpu_s_per_minute"]) for r in report["analysis"]
    ]
    for row in report["encode"]:
        for way in ("re_encode", "stream_copy"):
            if way in row:
                what = f"encode ({way.replace('_', ' ')}), {row['source']}"
                rows.append((what, "minute", row[way]["cpu_s_per_minute"]))
    for row in report["previews"]:
        rows.append((f"previews, {row['source']}", "minute", row["re_encode"]["cpu_s_per_minute"]))
    for row in report["precompute_sampling"]:
        what = f"precompute sampling, {row['source']}"
        rows.append((what, "clip frame", row["cpu_ms_per_clip_frame"] / 1000))
    for row in report["networks_256"]:
        unit = "frame" if row["model"].startswith("masks") else "pair"
        rows.append((f"{row['model']} at 256x256", unit, row["cpu_s_per_item"]))
    dis, download = report["precompute_dis_demo"], report["download"]
    rows.append(("tld precompute flow --backend dis, demo", "clip", dis["cpu_s_per_clip"]))
    rows.append(("download", "video", download["cpu_s_per_video"]))
    rows.append(("download", "GB", download["cpu_s_per_gb"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="8 s sources, small batches; prints only"
    )
    args = parser.parse_args()
    if not REEL.is_file():
        raise SystemExit(f"needs the real media of ../shared/media ({REEL} is missing)")
    seconds, batch, copies = (8.0, 2, 4) if args.quick else (24.0, 4, 8)
    load_before = os.getloadavg()
    started = time.perf_counter()
    report: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "quick": args.quick,
        "load_average_before": [round(x, 2) for x in load_before],
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sources = make_sources(folder, seconds)
        analysis, encode, previews, sampling = [], [], [], []
        for name, path in sources.items():
            row, clips = analysis_cost(name, path)
            analysis.append(row)
            print("analysis", json.dumps(row))
            clip_dir = folder / f"clips-{path.stem}"
            encode.append(encode_cost(name, path, clips, EncodeConfig(), clip_dir))
            print("encode", json.dumps(encode[-1]))
            if name != "1080p reel, short GOP":
                previews.append(
                    encode_cost(name, path, clips, PREVIEW_ENCODE, folder / f"prev-{path.stem}")
                )
                print("previews", json.dumps(previews[-1]))
                sampling.append(sampling_cost(name, sorted(clip_dir.glob("*.mp4"))))
                print("sampling", json.dumps(sampling[-1]))
        report["analysis"] = analysis
        report["encode"] = encode
        report["previews"] = previews
        report["precompute_sampling"] = sampling
        report["networks_256"] = network_costs(batch, 1 if args.quick else 3)
        print("networks", json.dumps(report["networks_256"]))
        report["precompute_dis_demo"] = dis_precompute_cost(folder)
        print("precompute dis", json.dumps(report["precompute_dis_demo"]))
        large = make_large_video(folder / "large.mp4", 2.0)
        files = {"reel720": (sources["720p reel"], copies), "large": (large, max(1, copies // 4))}
        report["download"] = download_cost(files, folder)
        print("download", json.dumps(report["download"]))
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(f"\n{'stage':52} {'unit':>10} {'CPU s':>9}")
    for what, unit, value in summary(report):
        print(f"{what:52} {unit:>10} {value:9.4g}")
    if args.quick:  # a smoke run: the saved figures stay those of a full run
        print(f"done in {report['wall_s']} s (--quick: nothing saved)")
        return
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "stage_costs.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {path} ({report['wall_s']} s)")


if __name__ == "__main__":
    main()
