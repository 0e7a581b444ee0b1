"""Benchmark: what running on Ray costs, and the disk a streaming build holds at most.

1. The same synthetic build on the local executor (`--workers N`) and on a Ray cluster of this
   machine alone (`ray.init(num_cpus=N)`), alternately, `--repeats` times each: wall time,
   Ray's overhead in percent (medians), the cluster's start-up time (paid once per `tld`
   command), and whether both wrote the same bytes.
2. With `--disk`, peak disk use of a URL-list build with `download.keep_sources: false`
   against the sum of its sources (benchmarks/scale_disk.py).

Prints and saves benchmarks/results/scale.json. Usage:
python benchmarks/scale.py [--videos 8] [--workers 2] [--repeats 2] [--disk]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pinned_outputs import output_hashes  # noqa: E402 - the tests folder is put on the path above

from timelapse_d.config import resolve_config  # noqa: E402
from timelapse_d.executors import LocalExecutor  # noqa: E402
from timelapse_d.executors.ray_cluster import RayExecutor  # noqa: E402
from timelapse_d.pipeline import build  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def timed_build(videos: int, out: Path, executor: Any) -> float:
    """Wall seconds of one synthetic build of `videos` videos into `out`."""
    config = resolve_config(source="synthetic", overrides={"synthetic.num_videos": videos})
    started = time.perf_counter()
    summary = build(config, out, executor)
    if not summary.complete:
        raise RuntimeError(summary.text())
    return time.perf_counter() - started


def ray_overhead(videos: int, workers: int, repeats: int) -> dict[str, Any]:
    """Local and Ray builds of the same corpus, alternately; medians and the overhead."""
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - started
    local_s, ray_s, same = [], [], True
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(repeats):
                local_out, ray_out = Path(tmp) / f"local{i}", Path(tmp) / f"ray{i}"
                local_s.append(timed_build(videos, local_out, LocalExecutor(workers)))
                ray_s.append(timed_build(videos, ray_out, RayExecutor()))
                same &= output_hashes(local_out) == output_hashes(ray_out)
    finally:
        ray.shutdown()
    local_median, ray_median = statistics.median(local_s), statistics.median(ray_s)
    return {
        "videos": videos,
        "workers": workers,
        "local_wall_s": [round(s, 2) for s in local_s],
        "ray_wall_s": [round(s, 2) for s in ray_s],
        "ray_overhead_percent": round(100 * (ray_median / local_median - 1), 1),
        "ray_cluster_start_s": round(startup, 2),
        "same_bytes": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--disk", action="store_true", help="also the streaming disk peak")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "ray": ray_overhead(args.videos, args.workers, args.repeats),
    }
    if args.disk:
        from scale_disk import measure_disk_peak

        result["disk"] = measure_disk_peak()
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
