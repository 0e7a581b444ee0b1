"""Writing WebDataset tar shards with the standard library.

A shard is a plain tar whose members are named ``<key>.<field>``, in sample order, as
WebDataset readers expect. Writing it with :mod:`tarfile` keeps the webdataset package (which
imports PyTorch when PyTorch is installed) out of the build processes. Headers are fixed
(mtime 0, owner 0, mode 0444), so the same samples always give the same bytes.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Mapping
from typing import IO

from timelapse_d.records import is_plain_id


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
