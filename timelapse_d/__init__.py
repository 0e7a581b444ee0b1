"""timelapse-d: build and curate time-lapse landscape video datasets.

The Python API (see :mod:`timelapse_d.api` and the README's "Python API")::

    import timelapse_d as tld

    config = tld.load_config("local", overrides={"input": "footage/", "workers": 4})
    summary = tld.build(config, "data/tld")
    kept = tld.open_manifest("data/tld", kept=True).to_pandas()
    for clip in tld.iter_clips("data/tld"):
        frames = clip.frames()  # (T, H, W, 3) uint8 RGB

Importing the package loads none of the pipeline: each name is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timelapse_d.version import __version__

__all__ = [
    "__version__",
    "ClipSample",
    "build",
    "iter_clips",
    "load_config",
    "open_manifest",
    "open_videos",
    "saved_config",
]

if TYPE_CHECKING:
    from timelapse_d.api import (
        ClipSample,
        build,
        iter_clips,
        load_config,
        open_manifest,
        open_videos,
        saved_config,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        from timelapse_d import api

        return getattr(api, name)
    raise AttributeError(f"module 'timelapse_d' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
