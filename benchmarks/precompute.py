"""Benchmark: flow pairs per second per backend and segmentation frames per second, at 256x256.

Runs each backend on the same batches of real frames (the sunset time-lapse from ../shared/media
when present, else synthetic frames), after one warm-up call, and reports pairs (or frames) per
second with the device named. FlowNet2, RAFT and HRNetV2 run with random weights when no weight
file is installed (the speed does not depend on the weight values). On a CUDA device every
network is also timed in fp16 and bf16. Prints a table and saves
benchmarks/results/precompute-<device>.json.
Usage: python benchmarks/precompute.py [--device cuda] [--batch 16] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from timelapse_d.errors import TldError
from timelapse_d.flow.backends import FlowBackend, FlowNet2Backend, make_flow_backend
from timelapse_d.flow.flownet2 import FlowNet2
from timelapse_d.precompute.sampling import Sampling, sample_clip
from timelapse_d.torch_runtime import autocast, resolve_device
from timelapse_d.weights import MissingWeights

RESULTS = Path(__file__).parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SUNSET = SHARED / "media" / "timelapse" / "sunset-2024-06-22_timelapse.mp4"


def frames(count: int) -> np.ndarray:
    """`count` + 1 consecutive 256x256 RGB frames."""
    if SUNSET.is_file():
        _, sampled = sample_clip(SUNSET.read_bytes(), Sampling(stride=1))
        return np.resize(sampled, (count + 1, *sampled.shape[1:]))
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count + 1, 256, 256, 3), dtype=np.uint8)


def rate(call: Callable[[], object], items: int, seconds: float) -> float:
    """Items per second of `call` (one warm-up call, then as many as fit in `seconds`)."""
    call()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or done == 0:
        call()
        done += items
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return done / (time.perf_counter() - started)


def flow_backend(name: str, device: str, precision: str) -> FlowBackend:
    """The backend with installed weights; FlowNet2 with random weights when none are."""
    try:
        return make_flow_backend(name, device=device, precision=precision)
    except MissingWeights:
        if name != "flownet2":
            raise
    return FlowNet2Backend(FlowNet2().to(device).eval(), precision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    device = resolve_device(args.device)
    precisions = ["fp32"] + (["fp16", "bf16"] if device.type == "cuda" else [])
    batch = frames(args.batch)
    previous, following = batch[:-1], batch[1:]
    rows = []
    for name in ("dis", "flownet2", "raft"):
        for precision in precisions if name != "dis" else ["fp32"]:
            try:
                backend = flow_backend(name, str(device), precision)
            except TldError as exc:
                print(f"{name}: skipped ({exc})")
                break
            call = backend.backward_flow
            value = rate(lambda c=call: c(previous, following), len(previous), args.seconds)
            rows.append({"model": f"flow {name}", "precision": precision, "per_second": value})
    from timelapse_d.segment.hrnet import Segmenter, segment

    model = Segmenter().to(device).eval()
    for precision in precisions:

        def run(p: str = precision) -> object:
            with autocast(device, p):
                return segment(model, batch[:-1])

        rows.append(
            {"model": "masks hrnetv2", "precision": precision,
             "per_second": rate(run, len(previous), args.seconds)}
        )  # fmt: skip
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    report = {
        "device": name or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "batch": args.batch,
        "size": 256,
        "results": [{**r, "per_second": round(r["per_second"], 2)} for r in rows],
    }
    print(f"device: {report['device']} (batch {args.batch}, 256x256)")
    for row in report["results"]:
        print(f"  {row['model']:15} {row['precision']:5} {row['per_second']:9.2f} per second")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"precompute-{device.type}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
