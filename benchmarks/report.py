"""Benchmark: `tld report` on a synthetic 100,000-clip manifest, and the page's load in Chromium.

The demo build is made once; its manifest rows are repeated (ids made unique, scores scaled by
a random factor, splits, categories and human labels for 5% of the clips added) into a manifest
of --clips rows whose clips point at the demo's real source videos, so the galleries decode
real thumbnails. Prints and saves benchmarks/results/report.json: generation time, page size,
and the time headless Chromium takes to load and lay out the page.

Usage: python benchmarks/report.py [--clips 100000]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser import chromium  # noqa: E402
from timelapse_d.manifest import CLIP_SCHEMA, read_rows, write_table  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SCALED = ("camera_translation", "camera_drift", "scene_motion", "frame_change", "sharpness")


def synthetic_manifest(demo: Path, clips: int) -> None:
    """Replace demo/manifest.parquet by `clips` rows derived from its own."""
    rng = random.Random(0)
    template = read_rows(demo / "manifest.parquet")
    rows = []
    for index in range(clips):
        row = dict(template[index % len(template)])
        row["clip_id"] = f"{row['clip_id']}-{index:07d}"
        for name in SCALED:
            if row.get(name) is not None:
                row[name] *= rng.uniform(0.5, 1.5)
        if row["status"] == "kept":
            row["shard"] = f"clips-{index // 400:06d}.tar"
            row["split"] = "test" if rng.random() < 0.15 else "train"
            row["categories"] = [rng.choice(["sky", "water", "trees", "night"])]
        if rng.random() < 0.05:
            row["human_decision"] = rng.choice(["keep", "reject"])
        rows.append(row)
    write_table(demo / "manifest.parquet", rows, CLIP_SCHEMA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        subprocess.run(
            [sys.executable, "-m", "timelapse_d", "build", "--source", "synthetic",
             "--out", str(demo), "--workers", "2"],
            check=True, capture_output=True,
        )  # fmt: skip
        synthetic_manifest(demo, args.clips)
        assert pq.read_metadata(demo / "manifest.parquet").num_rows == args.clips
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "timelapse_d", "report", str(demo)], check=True)
        generation = time.perf_counter() - started
        page = demo / "report.html"
        page_mb = page.stat().st_size / 1e6
        with chromium(Path(tmp) / "profile") as driver:
            opened = time.perf_counter()
            driver.get(page.as_uri())
            load_wall = time.perf_counter() - opened
            navigation = driver.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                "return [n.domContentLoadedEventEnd, n.loadEventEnd];"
            )
            pager = driver.find_element("id", "clip-page").text
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.node()}",
        "clips": args.clips,
        "generation_s": round(generation, 2),
        "page_mb": round(page_mb, 2),
        "chromium_dom_content_loaded_ms": round(navigation[0]),
        "chromium_load_event_ms": round(navigation[1]),
        "chromium_get_wall_s": round(load_wall, 2),
        "clip_table": pager,
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
