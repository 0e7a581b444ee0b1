"""Provenance of acquired videos: where each came from, under which licence, and what happened.

A :class:`Candidate` is a video found by a source, not downloaded yet. Its download ends in a
:class:`ProvenanceRecord`: the provenance plus the download facts, or the error class and
message of a failure. Records are flat, so they become manifest rows as they are.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timelapse_d.errors import AcquireError
from timelapse_d.records import VIDEO_STATUS_FAILED, VIDEO_STATUS_OK, SourceVideo
from timelapse_d.runs import read_json

LOG = logging.getLogger("timelapse_d")
# The folder of the download records under the acquire stage's state (one JSON per video).
STAGE = "download"
# Beside them, the record of a download whose file a streaming build deleted (one JSON per video).
RELEASED = "released"


@dataclass(frozen=True)
class Provenance:
    """Who made a video, where it is published, and under which licence."""

    video_id: str
    source: str  # flickr, youtube, urls
    url: str  # what the downloader is given: a page URL or a file URL
    page_url: str = ""
    owner_id: str = ""
    owner_name: str = ""
    license_id: str = ""
    license_name: str = ""
    license_url: str = ""
    title: str = ""
    upload_date: str = ""  # ISO 8601, UTC
    taken_date: str = ""  # as the source states it (camera time, no zone)
    tags: tuple[str, ...] = ()
    latitude: float | None = None
    longitude: float | None = None
    duration_s: float | None = None  # as the source states it


@dataclass(frozen=True)
class MediaFormat:
    """A video file the source lists directly (a Flickr size), so no page must be read."""

    url: str
    label: str
    width: int | None = None
    height: int | None = None
    ext: str = "mp4"


@dataclass(frozen=True)
class Candidate:
    """A video to download; `failure` is set when the source already said it cannot be had."""

    meta: Provenance
    formats: tuple[MediaFormat, ...] = ()
    failure: AcquireError | None = None

    @property
    def video_id(self) -> str:
        return self.meta.video_id


@dataclass(frozen=True)
class ProvenanceRecord(Provenance):
    """Provenance plus the outcome: the verified file's facts, or the failure's class."""

    status: str = VIDEO_STATUS_FAILED
    path: str = ""  # the file, relative to the download folder
    format_id: str = ""
    bytes: int = 0
    sha256: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    num_frames: int = 0
    codec: str = ""
    attempts: int = 0
    error_class: str = ""
    error_message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == VIDEO_STATUS_OK

    def to_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["tags"] = list(self.tags)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ProvenanceRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in row.items() if k in known}
        values["tags"] = tuple(values.get("tags") or ())
        return cls(**values)

    @classmethod
    def failed(cls, meta: Provenance, error: AcquireError) -> ProvenanceRecord:
        return cls(
            **provenance_fields(meta),
            attempts=error.attempts,
            error_class=error.error_class,
            error_message=error.message,
        )


def provenance_fields(meta: Provenance) -> dict[str, Any]:
    """The provenance part of a record (or of a candidate) as keyword arguments."""
    return {f.name: getattr(meta, f.name) for f in dataclasses.fields(Provenance)}


def to_source_videos(records: Iterable[ProvenanceRecord], folder: Path) -> list[SourceVideo]:
    """The downloaded videos as the build's source videos, files under `folder`."""
    return [
        SourceVideo(r.video_id, r.source, r.url, str((folder / r.path).resolve()), r.sha256 or None)
        for r in sorted(records, key=lambda r: r.video_id)
        if r.ok
    ]


def attribution_lines(records: Iterable[ProvenanceRecord]) -> list[str]:
    """One credit line per downloaded video, for the attribution file a release ships.

    Sorted by owner, then title, then page, so the file is stable between rebuilds.
    """
    kept = [r for r in records if r.ok]
    kept.sort(key=lambda r: (r.owner_name.casefold(), r.title.casefold(), r.page_url or r.url))
    return [_credit(r) for r in kept]


def _credit(record: ProvenanceRecord) -> str:
    title = f'"{record.title}"' if record.title else "Untitled video"
    owner = record.owner_name or record.owner_id or "unknown author"
    where = record.page_url or record.url
    if record.license_name and record.license_url:
        licence = f"{record.license_name} ({record.license_url})"
    else:
        licence = record.license_name or record.license_url or "licence not stated by the source"
    return f"{title} by {owner}, {where}, licence: {licence}"


def load_records(state_dir: Path) -> list[ProvenanceRecord]:
    """Every download record written so far under `state_dir`, by video id."""
    folder = state_dir / STAGE
    found = (load_record(p) for p in sorted(folder.glob("*.json")) if folder.is_dir())
    return [record for record in found if record is not None]


def load_record(path: Path) -> ProvenanceRecord | None:
    """The download record in `path`; None when there is none or it is damaged."""
    if not path.is_file():
        return None
    try:
        return ProvenanceRecord.from_row(read_json(path))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        LOG.warning("download record %s is damaged: its video is fetched again", path)
        return None
