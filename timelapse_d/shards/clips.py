"""Clip shards: kept clips in WebDataset tars rolled by size, with Parquet beside each.

Clips are sharded in the given (clip-id) order, so the same kept set always gives the same
shards. Each sample is `<clip_id>.mp4` (the encoded clip) and `<clip_id>.json` (its manifest
row). A tar is written to a temporary name and renamed into place; stale shards of an earlier,
larger build are removed after the new ones exist. Each tar is read back and checked (member
names and sizes) before anything may rely on it as the clips' home.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
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


@dataclass(frozen=True)
class Handover:
    """Clips handed over as their tar is written: the tar is written in `folder` (under a name
    a killed run leaves in place, so its clips stay readable: :mod:`timelapse_d.shards.stored`)
    and `written(clip)` is called once the clip's bytes are on disk there."""

    folder: Path
    written: Callable[[Clip], object]


def _samples(
    rows: list[Clip],
    clip_bytes: Callable[[Clip], bytes],
    handover: Handover | None = None,
    fh: IO[bytes] | None = None,
) -> Iterator[dict[str, Any]]:
    """The tar samples of `rows`; with `handover`, each clip is handed over once the tar
    writer asks for the next sample (the clip's members are written) and `fh` is synced."""
    for clip in rows:
        yield {"__key__": clip.clip_id, "mp4": clip_bytes(clip), "json": _json_bytes(clip.row())}
        if handover is not None and fh is not None:
            fh.flush()
            os.fsync(fh.fileno())
            handover.written(clip)


def write_shard(
    path: Path,
    rows: list[Clip],
    clip_bytes: Callable[[Clip], bytes],
    handover: Handover | None = None,
) -> None:
    """Write one tar, `<clip_id>.mp4` and `.json` per row, and read it back (DataError when it
    does not hold what was written): to a temporary name, or with `handover` in its folder,
    then moved to `path`."""
    expected = [(c.clip_id, c.clip_bytes or 0) for c in rows]
    if handover is None:
        write_atomic(path, lambda fh: write_samples(fh, _samples(rows, clip_bytes)))
        verify_clip_shard(path, expected)
        return
    partial = handover.folder / path.name
    partial.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "wb") as fh:
        write_samples(fh, _samples(rows, clip_bytes, handover, fh))
        fh.flush()
        os.fsync(fh.fileno())
    verify_clip_shard(partial, expected)
    os.replace(partial, path)


def write_shards(
    shard_dir: Path,
    shards: list[list[Clip]],
    clip_bytes: Callable[[Clip], bytes],
    handover: Handover | None = None,
) -> list[Clip]:
    """Write every shard (see :func:`write_shard`) and its Parquet manifest; return the clips
    with `shard` set."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    written: list[Clip] = []
    for index, clips in enumerate(shards):
        name = shard_name(index)
        rows = [replace(clip, shard=name) for clip in clips]
        write_shard(shard_dir / name, rows, clip_bytes, handover)
        write_table(
            (shard_dir / name).with_suffix(".parquet"), [c.row() for c in rows], CLIP_SCHEMA
        )
        written += rows
    keep = {shard_name(i) for i in range(len(shards))}
    for stale in shard_dir.glob(f"{CLIPS}-*.*"):
        if stale.with_suffix(".tar").name not in keep:
            stale.unlink()
    return written
