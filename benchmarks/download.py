"""Benchmark: download throughput of the pipeline against plain HTTP, from a host on 127.0.0.1.

Serves N copies of one real H.264 MP4 (made with ffmpeg, about 3 MB) from the tests' video
host and fetches all of them three ways, each with the same number of workers:
(a) plain HTTP: urllib in a thread pool, bytes written to disk;
(b) the pipeline: `download_all` on a URL list (yt-dlp, verification, SHA-256, records);
(c) the pipeline again on the same folder: the resume check, nothing fetched.
Prints a table and saves benchmarks/results/download.json.
Usage: python benchmarks/download.py [--videos N] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from timelapse_d.acquire.download import download_all
from timelapse_d.acquire.settings import DownloadConfig
from timelapse_d.acquire.urls import read_url_list
from timelapse_d.runs import RunDir

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from standins.host import VideoHost  # noqa: E402 - the tests folder is put on the path above


def make_video(path: Path, seconds: int = 8) -> Path:
    """A 960x540 25 fps H.264 MP4 with moving content and grain (about 3 MB for 8 s)."""
    command = [
        shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=960x540:rate=25", "-t", str(seconds),
        "-vf", "noise=alls=10:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "27",
        "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return path


def plain_http(urls: list[str], folder: Path, workers: int) -> None:
    """Fetch every URL with urllib into `folder`, `workers` at a time."""
    folder.mkdir(parents=True)

    def fetch(index_url: tuple[int, str]) -> None:
        index, url = index_url
        with (
            urllib.request.urlopen(url, timeout=30) as answer,
            open(folder / f"{index}.mp4", "wb") as fh,
        ):
            shutil.copyfileobj(answer, fh, 1 << 20)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fetch, enumerate(urls)))


def pipeline(listing: Path, folder: Path, workers: int) -> int:
    """`download_all` on the URL list; returns the videos that ended ok."""
    config = DownloadConfig(workers=workers)
    report = download_all(
        read_url_list(listing), config, folder / "files", folder / "state", RunDir(folder)
    )
    return report.counts()["ok"]


def measure(host: VideoHost, run: Callable[[], int | None]) -> dict:
    """Wall time and requests at the host of one way of downloading (and what `run` returns)."""
    requests_before = len(host.hits())
    started = time.perf_counter()
    value = run()
    wall = time.perf_counter() - started
    row = {"wall_s": round(wall, 3), "requests": len(host.hits()) - requests_before}
    return row if value is None else {**row, "videos_ok": value}


def with_rates(row: dict, count: int, total_bytes: int) -> dict:
    return {
        **row,
        "videos_per_s": round(count / row["wall_s"], 2),
        "mb_per_s": round(total_bytes / 1e6 / row["wall_s"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    count, workers = args.videos, args.workers
    with tempfile.TemporaryDirectory() as tmp, VideoHost() as host:
        root = Path(tmp)
        data = make_video(root / "source.mp4").read_bytes()
        paths = [f"/v/clip-{i:03d}.mp4" for i in range(count)]
        for path in paths:
            host.files[path] = data
        urls = [host.url(path) for path in paths]
        listing = root / "urls.txt"
        listing.write_text("\n".join(urls) + "\n")
        total = len(data) * count
        rows = {
            "plain_http": measure(host, lambda: plain_http(urls, root / "plain", workers)),
            "pipeline": measure(host, lambda: pipeline(listing, root / "tld", workers)),
            # In-process, one video at a time: the fixed cost per video.
            "pipeline_1_worker": measure(host, lambda: pipeline(listing, root / "tld1", 1)),
        }
        rows = {name: with_rates(row, count, total) for name, row in rows.items()}
        # Everything is done: the time to find that out; no request may be made.
        rows["pipeline_rerun"] = measure(host, lambda: pipeline(listing, root / "tld", workers))
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.node()}",
        "videos": count,
        "workers": workers,
        "video_bytes": len(data),
        "pipeline_time_over_plain": round(
            rows["pipeline"]["wall_s"] / rows["plain_http"]["wall_s"], 1
        ),
        "modes": rows,
    }
    print(f"{count} videos of {len(data) / 1e6:.1f} MB, {workers} workers")
    print(f"{'mode':18} {'wall s':>8} {'videos/s':>9} {'MB/s':>8} {'requests':>9}")
    for name, row in rows.items():
        rates = f"{row.get('videos_per_s', ''):>9} {row.get('mb_per_s', ''):>8}"
        print(f"{name:18} {row['wall_s']:8.2f} {rates} {row['requests']:9d}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "download.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
