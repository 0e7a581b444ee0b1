"""Records and identifiers: source videos and candidate clips.

Ids are deterministic from the source and the frame range, never change when a stage re-runs,
and contain no dots (WebDataset splits a sample key at its first dot).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

VIDEO_STATUS_OK = "ok"
VIDEO_STATUS_FAILED = "failed"
CLIP_KEPT = "kept"
CLIP_REJECTED = "rejected"
# Manifest columns holding a clip's keyframe hashes (at 1/4, 1/2 and 3/4 of the clip).
KEYFRAME_HASH_COLUMNS = ("dhash_q1", "dhash_mid", "dhash_q3")

_SAFE = re.compile(r"[^a-z0-9]+")
# Every id that reaches a file or tar member name, the tool's own and any from outside (a
# manifest, a URL list, a search answer): no dots, slashes or leading dash.
ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,199}")


def is_plain_id(value: object) -> bool:
    """True when `value` is a string matching ID_PATTERN (safe as a file name)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def video_id_for(source: str, key: str) -> str:
    """Id of a source video from its source name and a stable key (relative path, URL, id)."""
    digest = hashlib.sha256(f"{source}\0{key}".encode()).hexdigest()[:16]
    prefix = _SAFE.sub("", source.lower())[:12] or "src"
    return f"{prefix}-{digest}"


def clip_id_for(video_id: str, start_frame: int, end_frame: int) -> str:
    """Id of a clip: its video and its [start, end) source frame range."""
    return f"{video_id}-{start_frame:07d}-{end_frame:07d}"


@dataclass(frozen=True)
class SourceVideo:
    """A video to curate: where it came from and where its bytes are on disk."""

    video_id: str
    source: str
    source_uri: str
    path: str
