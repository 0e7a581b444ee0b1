"""Clip shards: kept clips in WebDataset tars rolled by size, with Parquet beside each.

Clips are sharded in the given (clip-id) order, so the same kept set always gives the same
shards. Each sample is `<clip_id>.mp4` (the encoded clip) and `<clip_id>.json` (its manifest
row). A tar is written to a temporary name and renamed into place; stale shards of an earlier,
larger build are removed after the new ones exist. Each tar is read back and checked (member
names and sizes) before anything may rely on it as the clips' home.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from timelapse_d.manifest import CLIP_SCHEMA, write_table
from timelapse_d.records import Clip
from timelapse_d.runs import write_atomic
from timelapse_d.shards.naming import CLIPS, shard_name
from timelapse_d.shards.stored import verify_clip_shard
from timelapse_d.shards.tar import write_samples

TAR_BLOCK = 512


def _member_bytes(size: int) -> int:
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


def _json_bytes(row: dict[str, Any]) -> bytes:
    return json.dumps(row, sort_keys=True, default=str).encode()


def plan_shards(clips: list[Clip], max_bytes: int) -> list[list[Clip]]:
    """Group clips (in the given order) into shards whose tar size stays within max_bytes.

    A single clip larger than max_bytes gets a shard of its own.
    """
    shards: list[list[Clip]] = []
    current: list[Clip] = []
    size = 2 * TAR_BLOCK  # end-of-archive blocks
    for clip in clips:
        if clip.clip_bytes is None:
            raise ValueError(f"clip {clip.clip_id} is not encoded: it has no clip_bytes")
        json_size = len(_json_bytes(clip.row()))
        sample = _member_bytes(clip.clip_bytes) + _member_bytes(json_size + 64)
        if current and size + sample > max_bytes:
            shards.append(current)
            current, size = [], 2 * TAR_BLOCK
        current.append(clip)
        size += sample
    if current:
        shards.append(current)
    return shards


def write_shard(path: Path, samples: Sequence[tuple[dict[str, Any], Callable[[], bytes]]]) -> None:
    """Write one tar atomically: for each (row, clip bytes reader), `<clip_id>.mp4`, `.json`."""

    def write(fh: IO[bytes]) -> None:
        write_samples(
            fh,
            (
                {"__key__": row["clip_id"], "mp4": clip(), "json": _json_bytes(row)}
                for row, clip in samples
            ),
        )

    write_atomic(path, write)


def write_shards(
    shard_dir: Path,
    shards: list[list[Clip]],
    clip_bytes: Callable[[Clip], bytes],
    verified: Callable[[list[Clip]], object] = lambda clips: None,
) -> list[Clip]:
    """Write every shard and its Parquet manifest, each tar read back and checked, then handed
    to `verified` with its clips; return the clips with `shard` set."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    written: list[Clip] = []
    for index, clips in enumerate(shards):
        name = shard_name(index)
        rows = [replace(clip, shard=name) for clip in clips]
        samples = [(clip.row(), functools.partial(clip_bytes, clip)) for clip in rows]
        write_shard(shard_dir / name, samples)
        verify_clip_shard(shard_dir / name, [(c.clip_id, c.clip_bytes or 0) for c in rows])
        verified(rows)
        write_table(
            (shard_dir / name).with_suffix(".parquet"), [c.row() for c in rows], CLIP_SCHEMA
        )
        written += rows
    keep = {shard_name(i) for i in range(len(shards))}
    for stale in shard_dir.glob(f"{CLIPS}-*.*"):
        if stale.with_suffix(".tar").name not in keep:
            stale.unlink()
    return written
