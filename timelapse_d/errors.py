"""Typed errors for media files that cannot be probed or decoded.

Every error carries a short, stable ``reason`` code (recorded in manifests) and a
message for people that names the file and says what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path

REASONS = frozenset(
    {
        "missing_file",  # the path does not exist
        "empty_file",  # zero bytes
        "not_a_video",  # HTML/text/garbage/still image: not a video format at all
        "no_video_stream",  # a media file without video, e.g. audio only
        "unreadable",  # a video container or codec that cannot be opened or decoded at all
        "truncated",  # the file ends early: decoding stops part way (or before any frame)
    }
)


class MediaError(Exception):
    """A media file is unusable; ``reason`` is a stable code, ``message`` says why in words."""

    def __init__(self, path: Path | str, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown media error reason {reason!r}")
        self.path = Path(path)
        self.reason = reason
        self.detail = detail
        self.message = f"{self.path.name}: {detail}"
        super().__init__(self.message)

    def __reduce__(self) -> tuple[type[MediaError], tuple[Path, str, str]]:
        return type(self), (self.path, self.reason, self.detail)


class ProbeError(MediaError):
    """Probing found the file unusable."""


class DecodeError(MediaError):
    """Decoding failed; frames yielded before the error are still good."""
