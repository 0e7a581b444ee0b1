"""Clips whose home is their shard: find an encoded clip's bytes inside the clip tars.

Once a clip shard is written and verified (:func:`verify_clip_shard`: its members read back with
the expected names and sizes), the encode cache file of a clip it holds may be deleted; the
encode stage then counts the clip as done while some clip tar holds ``<clip_id>.mp4`` at the
size its marker recorded, and the shard stage reads the clip back from there. Every member a
clip tar holds whole has the bytes the encoder wrote (tars are written from verified clips;
one a killed writer left is read up to the cut).
"""

from __future__ import annotations

import functools
import tarfile
from dataclasses import dataclass
from pathlib import Path

from timelapse_d.errors import DataError
from timelapse_d.shards.naming import clip_shards


@dataclass(frozen=True)
class StoredClip:
    """Where a clip's bytes are: a tar, the offset of the member's data, its size."""

    tar: Path
    offset: int
    size: int

    def read(self) -> bytes:
        with self.tar.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read(self.size)
        if len(data) != self.size:
            raise DataError(f"{self.tar.name} is cut short inside a clip")
        return data


def tar_members(tar: Path) -> dict[str, tuple[int, int]]:
    """{member name: (data offset, size)} of a tar, from its headers (empty when unreadable)."""
    try:
        stat = tar.stat()
    except OSError:
        return {}
    return _members(str(tar), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _members(path: str, size: int, mtime_ns: int) -> dict[str, tuple[int, int]]:
    """Cached per file version (path, size, modification time). A tar cut short (a killed
    writer) gives the members before the cut whose data is all there."""
    found: dict[str, tuple[int, int]] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if member.isfile() and member.offset_data + member.size <= size:
                    found[member.name] = (member.offset_data, member.size)
    except (tarfile.TarError, OSError, EOFError):
        pass
    return found


def find_clip(folders: list[Path], clip_id: str, size: int) -> StoredClip | None:
    """The clip's bytes in a clip tar of the first folder that has them at `size`."""
    for folder in folders:
        for tar in clip_shards(folder):
            found = tar_members(tar).get(f"{clip_id}.mp4")
            if found is not None and found[1] == size:
                return StoredClip(tar, *found)
    return None


def verify_clip_shard(tar: Path, clips: list[tuple[str, int]]) -> None:
    """Read a written clip tar back: exactly `<id>.json` and `<id>.mp4` per (clip id, size),
    in order, each mp4 at its size; DataError otherwise."""
    try:
        with tarfile.open(tar, "r:") as archive:
            found = [(m.name, m.size) for m in archive]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{tar.name} does not read back: {exc}") from exc
    names = [name for name, _ in found]
    expected = [f"{clip_id}.{field}" for clip_id, _ in clips for field in ("json", "mp4")]
    sizes = {name: size for name, size in found if name.endswith(".mp4")}
    if names != expected or sizes != {f"{c}.mp4": size for c, size in clips}:
        raise DataError(f"{tar.name} does not hold the clips written into it")
