"""Writing and reading WebDataset tar shards with the standard library.

A shard is a plain tar whose members are named ``<key>.<field>``, in sample order, as
WebDataset readers expect. Writing it with :mod:`tarfile` keeps the webdataset package (which
imports PyTorch when PyTorch is installed) out of the build processes. Headers are fixed
(mtime 0, owner 0, mode 0444), so the same samples always give the same bytes.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO

from timelapse_d.errors import DataError
from timelapse_d.records import is_plain_id


class FieldMismatch(DataError):
    """A field shard does not line up with its clip shard, or cannot be read (a DataError:
    the command that rebuilds it fixes it)."""


def write_samples(fh: IO[bytes], samples: Iterable[Mapping[str, object]]) -> None:
    """Write samples ``{"__key__": key, field: bytes, ...}`` to a tar stream, fields sorted."""
    with tarfile.open(fileobj=fh, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in samples:
            key = str(sample["__key__"])
            if not is_plain_id(key):  # member names stay relative, without dots or slashes
                raise ValueError(f"sample key {key!r} is not a plain id")
            for field in sorted(k for k in sample if k != "__key__"):
                data = sample[field]
                if not isinstance(data, bytes):
                    raise TypeError(f"{key}.{field}: expected bytes, got {type(data).__name__}")
                info = tarfile.TarInfo(f"{key}.{field}")
                info.size, info.mtime, info.mode = len(data), 0, 0o444
                tar.addfile(info, io.BytesIO(data))


def iter_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) per sample of a shard, in tar order (FieldMismatch when the
    tar is damaged)."""
    key: str | None = None
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                name, _, extension = info.name.partition(".")
                if name != key:
                    if key is not None:
                        yield key, members
                    key, members = name, {}
                handle = tar.extractfile(info)
                assert handle is not None
                members[extension] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FieldMismatch(f"{path.name} is damaged: {exc}") from exc
    if key is not None:
        yield key, members
