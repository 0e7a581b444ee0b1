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


def find_clip(folders: list[Path], clip_id: str, size: int) -> StoredClip | None:
    """The clip's bytes in a clip tar of the first folder that has them at `size`."""
    for folder in folders:
        found = _index(_listing(folder)).get(f"{clip_id}.mp4")
        if found is not None and found.size == size:
            return found
    return None


def _listing(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, size, modification time) of the folder's clip tars: the version of its index."""
    listing = []
    for tar in clip_shards(folder):
        try:
            stat = tar.stat()
        except OSError:
            continue
        listing.append((str(tar), stat.st_size, stat.st_mtime_ns))
    return tuple(listing)


@functools.lru_cache(maxsize=8)
def _index(listing: tuple[tuple[str, int, int], ...]) -> dict[str, StoredClip]:
    """{member name: where it is} over the tars of one folder listing, read from their headers
    once per listing. A tar cut short (a killed writer) gives the members before the cut whose
    data is all there."""
    index: dict[str, StoredClip] = {}
    for path, size, _ in listing:
        try:
            with tarfile.open(path, "r:") as tar:
                for member in tar:
                    if member.isfile() and member.offset_data + member.size <= size:
                        index[member.name] = StoredClip(Path(path), member.offset_data, member.size)
        except (tarfile.TarError, OSError, EOFError):
            continue
    return index


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
