"""A small local build run through the `tld` command line, and what a consumer reads of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import webdataset as wds

from timelapse_d.synth import write_corpus

SETTINGS = {
    "shard.max_bytes": "400000",
    "filter.min_height": "144",
    "filter.min_frames": "40",
    "min_free_mb": "0",
}


def small_input(folder: Path, videos: int = 2) -> Path:
    """Synthetic source videos (256x144) written into `folder`."""
    write_corpus(folder, 0, width=256, height=144, num_videos=videos)
    return folder


def tld(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `tld ARGS` with this checkout's package."""
    command = [sys.executable, "-m", "timelapse_d", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def build_command(source: Path, out: Path, workers: int = 2, **settings: str) -> list[str]:
    """The arguments of `tld build` of `source` (a folder of videos) into `out`."""
    sets = [f"--set={key}={value}" for key, value in {**SETTINGS, **settings}.items()]
    common = ["--source", "local", "--input", str(source), "--out", str(out)]
    return ["build", *common, "--workers", str(workers), *sets]


def build_into(source: Path, out: Path) -> Path:
    """`out` after a successful `tld build` of `source` with the default settings above."""
    result = tld(*build_command(source, out))
    assert result.returncode == 0, result.stderr
    return out


def snapshot(out: Path) -> dict:
    """Everything a consumer reads: manifests and every shard sample, byte for byte."""
    shards = {}
    for tar in sorted((out / "shards").glob("clips-*.tar")):
        shards[tar.name] = [
            (s["__key__"], s["mp4"], json.loads(s["json"]))
            for s in wds.WebDataset(str(tar), shardshuffle=False)
        ]
    return {
        "manifest": pq.read_table(out / "manifest.parquet").to_pylist(),
        "videos": pq.read_table(out / "videos.parquet").to_pylist(),
        "shards": shards,
        "shard_files": sorted(p.name for p in (out / "shards").iterdir()),
    }


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""
