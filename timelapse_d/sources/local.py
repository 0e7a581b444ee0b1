"""Source `local`: video files found recursively under a directory (or one file)."""

from __future__ import annotations

from pathlib import Path

from timelapse_d.errors import ConfigError
from timelapse_d.records import SourceVideo, video_id_for

VIDEO_SUFFIXES = frozenset(
    [
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".m2ts",
        ".flv",
        ".wmv",
        ".3gp",
        ".ogv",
    ]
)


def find_videos(
    input_path: Path,
    source: str = "local",
    uri_prefix: str | None = None,
    skip: Path | None = None,
) -> list[SourceVideo]:
    """Video files under `input_path` (by suffix, case-insensitive), sorted by relative path;
    files under `skip` (the build's own output folder, when it lies inside the input) are not
    sources.

    The video id derives from the path relative to `input_path`, so moving the whole folder
    keeps every id. The source URI is the file's `file://` URI, or `uri_prefix` + the relative
    path for sources whose files are generated (their URI must not depend on where they lie).
    """
    if not input_path.exists():
        raise ConfigError(f"input not found: {input_path}")
    if input_path.is_file():
        root, files = input_path.parent, [input_path]
    else:
        root = input_path
        files = [p for p in input_path.rglob("*") if p.is_file()]
    if skip is not None:
        skipped = skip.resolve()
        files = [p for p in files if not p.resolve().is_relative_to(skipped)]
    videos = []
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        if path.suffix.lower() not in VIDEO_SUFFIXES or path.name.startswith("."):
            continue
        relative = path.relative_to(root).as_posix()
        videos.append(
            SourceVideo(
                video_id=video_id_for(source, relative),
                source=source,
                source_uri=path.resolve().as_uri() if uri_prefix is None else uri_prefix + relative,
                path=str(path.resolve()),
            )
        )
    return videos
