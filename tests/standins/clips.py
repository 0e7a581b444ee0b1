"""Small real H.264 MP4 clips for the stand-ins to serve, made once per test process."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import media_factory as make


@functools.cache
def clip(width: int = 160, height: int = 120, frames: int = 20) -> bytes:
    """The bytes of a valid MP4 of this size (testsrc2 pattern, index first)."""
    with tempfile.TemporaryDirectory() as folder:
        return make.good_clip(Path(folder) / "clip.mp4", width, height, frames).read_bytes()


@functools.cache
def truncated_clip() -> bytes:
    """An MP4 cut short at its source: its index, at the end, is missing."""
    with tempfile.TemporaryDirectory() as folder:
        return make.truncated_mp4(Path(folder), faststart=False).read_bytes()
