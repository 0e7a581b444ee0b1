"""Names of the shards of a build: ``shards/clips-NNNNNN.tar`` and, beside each, one shard per
precomputed field, ``shards/<field>-NNNNNN.tar``, with the same number."""

from __future__ import annotations

from pathlib import Path

CLIPS = "clips"  # the field of the clip shards the build writes
FIELDS = ("frames", "flow", "mask")  # the fields `tld precompute` adds


def shard_name(index: int, field: str = CLIPS) -> str:
    """File name of shard `index` of a field: clips-000012.tar."""
    return f"{field}-{index:06d}.tar"


def shard_glob(field: str = CLIPS) -> str:
    """Glob pattern of a field's tar shards: clips-*.tar."""
    return f"{field}-*.tar"


def clip_shards(shard_dir: Path) -> list[Path]:
    """The clip shards under `shard_dir`, in order (none when it does not exist)."""
    return sorted(Path(shard_dir).glob(shard_glob())) if Path(shard_dir).is_dir() else []


def field_shard(clip_shard: Path, field: str) -> Path:
    """``shards/clips-000003.tar`` -> ``shards/<field>-000003.tar``."""
    prefix, _, number = clip_shard.name.partition("-")
    if prefix != CLIPS:
        raise ValueError(f"not a clip shard: {clip_shard}")
    return clip_shard.with_name(f"{field}-{number}")
