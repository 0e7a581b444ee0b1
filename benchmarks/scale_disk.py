"""Benchmark: peak disk use of a streamed URL-list build against the sum of its sources.

Serves N distinct synthetic time-lapses (384x216, about 1 MB each) from the tests' video host
on 127.0.0.1 and builds them with ``download.keep_sources: false`` (the default), while a
thread sums the sizes of the files under OUT (each inode once, so hard links count once)
every `interval_s`. Reports the peak against the sum of the sources and against the bound the
streaming promises: the shards plus the largest wave of ``download.videos_in_flight`` sources.
With `compare_kept`, the same build with ``keep_sources: true`` is measured too.
Prints a table and saves benchmarks/results/scale_disk.json.
Usage: python benchmarks/scale_disk.py [--videos N] [--in-flight N] [--compare-kept]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from timelapse_d.config import resolve_config
from timelapse_d.pipeline import build
from timelapse_d.synth import write_corpus

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from standins.host import VideoHost  # noqa: E402 - the tests folder is put on the path above

VIDEOS_PER_SEED = 4


def tree_bytes(root: Path) -> int:
    """Sum of the sizes of the files under `root`, each inode counted once."""
    seen: dict[tuple[int, int], int] = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:  # removed while walking
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    seen[(stat.st_dev, stat.st_ino)] = stat.st_size
            except OSError:
                continue
    return sum(seen.values())


@contextmanager
def peak_sampler(root: Path, interval_s: float) -> Iterator[dict[str, int]]:
    """Yield {'peak': bytes, 'samples': n}, updated by a thread until the block ends."""
    found = {"peak": 0, "samples": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            found["peak"] = max(found["peak"], tree_bytes(root))
            found["samples"] += 1
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()
        found["peak"] = max(found["peak"], tree_bytes(root))


def make_corpus(folder: Path, videos: int) -> list[Path]:
    """`videos` distinct synthetic time-lapses (seeds 1, 2, ...; four per seed)."""
    paths: list[Path] = []
    for seed in range(1, 1 + -(-videos // VIDEOS_PER_SEED)):
        paths += write_corpus(folder / f"seed-{seed}", seed, num_videos=VIDEOS_PER_SEED)
    return paths[:videos]


def _build(listing: Path, out: Path, keep: bool, in_flight: int, interval_s: float) -> dict:
    overrides = {
        "workers": 2,
        "min_free_mb": 0,
        "filter.min_height": 144,  # the demo's thresholds, for footage this small
        "filter.min_frames": 40,
        "download.keep_sources": keep,
        "download.videos_in_flight": in_flight,
    }
    config = resolve_config(source="urls", overrides=overrides)
    config.input = str(listing)
    out.mkdir(parents=True)
    started = time.monotonic()
    with peak_sampler(out, interval_s) as sampled:
        summary = build(config, out)
    if not summary.complete:
        raise RuntimeError(summary.text())
    folders = {p.name: tree_bytes(p) for p in sorted(out.iterdir()) if p.is_dir()}
    return {
        "keep_sources": keep,
        "seconds": round(time.monotonic() - started, 1),
        "peak_bytes": sampled["peak"],
        "samples": sampled["samples"],
        "final_bytes": tree_bytes(out),
        "final_bytes_by_folder": folders,
        "shards_bytes": folders.get("shards", 0),
    }


def measure_disk_peak(
    videos: int = 40,
    in_flight: int = 8,
    interval_s: float = 0.05,
    compare_kept: bool = False,
    work: Path | None = None,
) -> dict[str, Any]:
    """Build `videos` URL-list videos streamed (and kept, with `compare_kept`); the figures."""
    with tempfile.TemporaryDirectory(prefix="tld-scale-disk-", dir=work) as folder:
        root = Path(folder)
        sources = make_corpus(root / "corpus", videos)
        sizes = [p.stat().st_size for p in sources]
        with VideoHost() as host:
            for number, path in enumerate(sources):
                host.files[f"/v/{number:03d}.mp4"] = path.read_bytes()
            listing = root / "urls.txt"
            listing.write_text("".join(host.url(p) + "\n" for p in sorted(host.files)))
            streamed = _build(listing, root / "streamed", False, in_flight, interval_s)
            kept = (
                _build(listing, root / "kept", True, in_flight, interval_s)
                if compare_kept
                else None
            )
    waves = [sum(sizes[i : i + in_flight]) for i in range(0, len(sizes), in_flight)]
    bound = streamed["shards_bytes"] + max(waves)
    return {
        "videos": videos,
        "videos_in_flight": in_flight,
        "sources_bytes": sum(sizes),
        "largest_wave_bytes": max(waves),
        "bound_bytes": bound,
        "streamed": streamed,
        "kept": kept,
        "peak_over_sources": round(streamed["peak_bytes"] / sum(sizes), 3),
        "peak_over_bound": round(streamed["peak_bytes"] / bound, 3),
    }


def _mb(value: int) -> str:
    return f"{value / 1e6:8.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--compare-kept", action="store_true")
    args = parser.parse_args()
    result = measure_disk_peak(args.videos, args.in_flight, compare_kept=args.compare_kept)
    streamed = result["streamed"]
    print(f"{result['videos']} videos, {result['videos_in_flight']} in flight")
    print(f"sum of the sources            {_mb(result['sources_bytes'])}")
    print(f"largest wave of sources       {_mb(result['largest_wave_bytes'])}")
    print(f"shards                        {_mb(streamed['shards_bytes'])}")
    print(f"bound (shards + largest wave) {_mb(result['bound_bytes'])}")
    print(f"peak, keep_sources false      {_mb(streamed['peak_bytes'])}")
    print(f"final, keep_sources false     {_mb(streamed['final_bytes'])}")
    print(f"  by folder: {streamed['final_bytes_by_folder']}")
    if result["kept"]:
        print(f"peak, keep_sources true       {_mb(result['kept']['peak_bytes'])}")
    print(f"peak / sources {result['peak_over_sources']}, peak / bound {result['peak_over_bound']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale_disk.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
