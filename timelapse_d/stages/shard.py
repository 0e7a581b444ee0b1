"""Stage `shard`: write kept clips into WebDataset tars rolled by size, with Parquet beside each.

Clips are sharded in clip-id order, so the same kept set always gives the same shards. Each
sample is `<clip_id>.mp4` (the encoded clip) and `<clip_id>.json` (its manifest row). A tar is
written to a temporary name and renamed into place; stale shards of an earlier, larger build
are removed after the new ones exist.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timelapse_d.config import ShardConfig, fingerprint
from timelapse_d.executors import Executor, Resources
from timelapse_d.manifest import CLIP_SCHEMA, write_table
from timelapse_d.records import CLIP_KEPT
from timelapse_d.runs import RunDir, write_atomic
from timelapse_d.stages.base import MarkedStage, Outcome, run_stage
from timelapse_d.stages.encode import clip_path
from timelapse_d.tars import write_samples

STAGE = "shard"
TAR_BLOCK = 512
FIELD = "clips"


def shard_name(index: int, field: str = FIELD) -> str:
    """File name of shard `index` of a field: clips-000012.tar."""
    return f"{field}-{index:06d}.tar"


def _member_bytes(size: int) -> int:
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


def _json_bytes(row: dict[str, Any]) -> bytes:
    return json.dumps(row, sort_keys=True, default=str).encode()


def plan_shards(clips: list[dict[str, Any]], max_bytes: int) -> list[list[dict[str, Any]]]:
    """Group clips (in the given order) into shards whose tar size stays within max_bytes.

    A single clip larger than max_bytes gets a shard of its own.
    """
    shards: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 2 * TAR_BLOCK  # end-of-archive blocks
    for clip in clips:
        sample = _member_bytes(clip["clip_bytes"]) + _member_bytes(len(_json_bytes(clip)) + 64)
        if current and size + sample > max_bytes:
            shards.append(current)
            current, size = [], 2 * TAR_BLOCK
        current.append(clip)
        size += sample
    if current:
        shards.append(current)
    return shards


def write_shard(path: Path, samples: list[tuple[dict[str, Any], Path]]) -> None:
    """Write one tar atomically: for each (row, clip file), `<clip_id>.mp4` and `.json`."""

    def write(fh: io.BufferedWriter) -> None:
        write_samples(
            fh,
            (
                {"__key__": row["clip_id"], "mp4": clip.read_bytes(), "json": _json_bytes(row)}
                for row, clip in samples
            ),
        )

    write_atomic(path, write)


def write_shards(
    shard_dir: Path, shards: list[list[dict[str, Any]]], clip_path: Any
) -> list[dict[str, Any]]:
    """Write every shard and its Parquet manifest; return the rows with `shard` set."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    written: list[dict[str, Any]] = []
    for index, rows in enumerate(shards):
        name = shard_name(index)
        rows = [{**row, "shard": name} for row in rows]
        write_shard(shard_dir / name, [(row, clip_path(row)) for row in rows])
        write_table((shard_dir / name).with_suffix(".parquet"), rows, CLIP_SCHEMA)
        written += rows
    keep = {shard_name(i) for i in range(len(shards))}
    for stale in shard_dir.glob(f"{FIELD}-*.*"):
        if stale.with_suffix(".tar").name not in keep:
            stale.unlink()
    return written


@dataclass(frozen=True)
class ShardStage(MarkedStage):
    """One item, every kept clip in clip-id order: the shards under ``OUT/shards``; keyed on
    the shard settings and the kept rows, so the same rows are never sharded twice."""

    config: ShardConfig
    name: str = STAGE
    resources: Resources = Resources(cpus=1.0, memory_mb=1024)

    def item_id(self, kept: list[dict[str, Any]]) -> str:
        return "all"

    def key(self, kept: list[dict[str, Any]]) -> str:
        return fingerprint(dataclasses.asdict(self.config), kept)

    def run(self, kept: list[dict[str, Any]], run_dir: RunDir) -> Outcome:
        plan = plan_shards(kept, self.config.max_bytes)
        shard_dir = run_dir.out / "shards"
        write_shards(shard_dir, plan, lambda row: clip_path(run_dir, row["clip_id"]))
        written = [shard_dir / shard_name(i) for i in range(len(plan))]
        written += [path.with_suffix(".parquet") for path in written]
        return Outcome({"shards": len(plan)}, written)


def shard_clips(
    clips: list[dict[str, Any]], config: ShardConfig, run_dir: RunDir, executor: Executor
) -> list[dict[str, Any]]:
    """Shard the kept clips (skipped when the same rows were already sharded); return every
    row with `shard` set (None for a rejected clip)."""
    kept = sorted((c for c in clips if c["status"] == CLIP_KEPT), key=lambda c: c["clip_id"])
    run_stage(ShardStage(config), [kept], run_dir, executor).require_all(STAGE)
    plan = plan_shards(kept, config.max_bytes)
    names = {row["clip_id"]: shard_name(i) for i, rows in enumerate(plan) for row in rows}
    return [{**c, "shard": names.get(c["clip_id"])} for c in clips]
