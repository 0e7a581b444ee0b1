"""Stage `acquire`: the source videos of a build, by source (local files, the synthetic demo,
or downloads from a remote source with their provenance)."""

from __future__ import annotations

from pathlib import Path

from timelapse_d.config import BuildConfig
from timelapse_d.errors import ConfigError
from timelapse_d.executors import Executor
from timelapse_d.runs import RunDir
from timelapse_d.sources import REMOTE_SOURCES, SOURCES
from timelapse_d.sources.local import find_videos
from timelapse_d.sources.remote import Acquired, acquire_remote

__all__ = ["Acquired", "acquire", "local_path"]


def acquire(
    config: BuildConfig, out: Path, run: RunDir, executor: Executor | None = None
) -> Acquired:
    """The source videos of this build (and, for remote sources, provenance and failures;
    their downloads, and the analysis and encodes of streamed downloads, run on `executor`)."""
    if config.source == "synthetic":
        from timelapse_d.sources.synthetic import acquire_synthetic

        return Acquired(acquire_synthetic(config.synthetic, out, run))
    if config.source == "local":
        if not config.input:
            raise ConfigError("--source local needs --input DIR_OR_FILE")
        return Acquired(find_videos(Path(config.input).expanduser(), skip=out))
    if config.source in REMOTE_SOURCES:
        return acquire_remote(config, out, run, executor)
    raise ConfigError(f"unknown source {config.source!r}; available: {', '.join(SOURCES)}")


def local_path(path: str | Path, out: Path) -> str:
    """`path` relative to the build folder when inside it (the folder can move), else absolute."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(out.resolve()).as_posix()
    except ValueError:
        return str(resolved)
