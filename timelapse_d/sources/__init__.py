"""Sources: where source videos come from. Each turns a config into a list of SourceVideo."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from timelapse_d.config import BuildConfig

SOURCES = ("synthetic", "local", "flickr", "youtube", "urls")
REMOTE_SOURCES = SOURCES[2:]  # searched or listed, then downloaded (timelapse_d.sources.remote)


def streams(config: BuildConfig) -> bool:
    """True when the build streams its sources (a remote source without
    ``download.keep_sources``: see :mod:`timelapse_d.stages.stream`)."""
    return config.source in REMOTE_SOURCES and not config.download.keep_sources
