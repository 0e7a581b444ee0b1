"""Takedown requests: reading a request list, the recorded requests of a build
(``OUT/takedowns.parquet``) and the test of whether they name a video."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from timelapse_d.errors import DataError
from timelapse_d.manifest import read_rows

TAKEDOWNS = "takedowns.parquet"
KINDS = ("video", "owner", "url")
TAKEDOWN_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("value", pa.string()),
        ("requested_at", pa.string()),
        ("video_ids", pa.list_(pa.string())),
        ("clip_ids", pa.list_(pa.string())),
    ]
)


@dataclass(frozen=True)
class Request:
    """Take down the videos whose id, owner (name or id) or URL (source or page) is `value`."""

    kind: str
    value: str

    def matches(self, video: dict[str, Any]) -> bool:
        if self.kind == "video":
            return video.get("video_id") == self.value
        if self.kind == "owner":
            return self.value in (video.get("owner_name"), video.get("owner_id"))
        return self.value in (video.get("source_uri"), video.get("page_url"), video.get("url"))


def parse_list(path: Path) -> list[Request]:
    """Requests of a LIST file: one per line, `video ID`, `owner NAME` or `url URL` (a bare
    http(s) URL is a `url`); blank lines and `#` comments are skipped."""
    requests = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, _, value = line.partition(" ")
        if kind.startswith(("http://", "https://")) and not value:
            kind, value = "url", kind
        if kind not in KINDS or not value.strip():
            raise DataError(
                f"{path}:{number}: expected `video ID`, `owner NAME` or `url URL`, got {line!r}"
            )
        requests.append(Request(kind, value.strip()))
    return requests


def recorded_requests(out: Path) -> list[dict[str, Any]]:
    path = out / TAKEDOWNS
    return read_rows(path) if path.is_file() else []


def blocklist(*folders: Path) -> Callable[[dict[str, Any]], bool]:
    """A test of whether a takedown recorded in any of `folders` names a video, given as a row
    or record with `video_id` and any of `source_uri`, `url`, `page_url`, `owner_name`,
    `owner_id`."""
    rows = [row for folder in folders for row in recorded_requests(folder)]
    video_ids = {v for row in rows for v in row["video_ids"] or []}
    requests = [Request(row["kind"], row["value"]) for row in rows]

    def is_blocked(video: dict[str, Any]) -> bool:
        return video.get("video_id") in video_ids or any(r.matches(video) for r in requests)

    return is_blocked
