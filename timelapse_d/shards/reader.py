"""The joined reader: each clip of a clip shard with its samples of the field shards beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from timelapse_d.shards.fields import check_digests
from timelapse_d.shards.naming import CLIPS, FIELDS, field_shard
from timelapse_d.shards.tar import FieldMismatch, iter_samples


def iter_joined(clip_shard: Path, fields: tuple[str, ...] = FIELDS) -> Iterator[dict[str, Any]]:
    """Samples of a clip shard joined with its field shards by key:
    ``{"__key__", "clips": {...}, "<field>": {...}}`` with raw member bytes per field.

    Raises FieldMismatch on a missing field shard, a key out of order or missing, or a
    damaged tar.
    """
    readers = {CLIPS: iter_samples(clip_shard)}
    for field in fields:
        path = field_shard(clip_shard, field)
        if not path.is_file():
            command = "masks" if field == "mask" else field  # the CLI's name for it
            raise FieldMismatch(f"{path.name} is missing: run `tld precompute {command}`")
        readers[field] = iter_samples(path)
    for parts in zip(*readers.values(), strict=False):
        keys = {key for key, _ in parts}
        if len(keys) != 1:
            pairs = zip(readers, parts, strict=True)
            found = ", ".join(f"{name}={key}" for name, (key, _) in pairs)
            raise FieldMismatch(f"{clip_shard.name}: keys differ between fields ({found})")
        key = parts[0][0]
        joined: dict[str, Any] = {"__key__": key}
        for name, (_, members) in zip(readers, parts, strict=True):
            if name != CLIPS:
                check_digests(field_shard(clip_shard, name), key, members)
            joined[name] = members
        yield joined
    leftovers = [name for name, reader in readers.items() if next(reader, None) is not None]
    if leftovers:
        raise FieldMismatch(f"{clip_shard.name}: {', '.join(leftovers)} hold(s) extra samples")
