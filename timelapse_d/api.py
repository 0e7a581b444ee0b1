"""The Python API for notebooks and scripts: build a dataset, read its tables, iterate its clips.

``import timelapse_d`` stays cheap: these functions load the pipeline, PyArrow and PyAV only
when called. Errors are the CLI's, with its one-line messages: a
:class:`~timelapse_d.errors.ConfigError` for a bad config value or a folder that is not a
build, a :class:`~timelapse_d.errors.DataError` for a damaged file (both are ``TldError``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from timelapse_d.config import BuildConfig
    from timelapse_d.executors import Executor
    from timelapse_d.report import Summary

MANIFEST = "manifest.parquet"
VIDEOS = "videos.parquet"


def load_config(
    source: str = "local",
    *,
    recipe: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> BuildConfig:
    """The config ``tld build --source SOURCE --recipe RECIPE --set KEY=VALUE ...`` resolves:
    the defaults, the source's shipped recipe, ``recipe``, then ``overrides`` (dotted keys,
    e.g. ``{"filter.min_height": 240, "input": "footage/", "workers": 4}``)."""
    from timelapse_d.config import resolve_config

    return resolve_config(
        source=source,
        recipe=None if recipe is None else Path(recipe),
        overrides=dict(overrides or {}),
    )


def saved_config(out: str | Path) -> BuildConfig:
    """The resolved config the latest build of ``out`` saved (``OUT/run/config.yaml``)."""
    from timelapse_d.config import saved_build_config

    return saved_build_config(Path(out))


def build(config: BuildConfig, out: str | Path, executor: Executor | None = None) -> Summary:
    """Run (or resume) the build of ``config`` into ``out``, as ``tld build`` does; returns
    its summary (``summary.text()`` is what the CLI prints). ``executor`` runs the tasks
    (default: the one the config's ``executor`` key names); it never changes the outputs."""
    from timelapse_d.pipeline import build as run_build

    return run_build(config, Path(out), executor)


def open_manifest(
    out: str | Path, *, kept: bool | None = None, columns: Iterable[str] | None = None
) -> pa.Table:
    """The clip manifest of build ``out`` as an Arrow table (``.to_pandas()`` for a
    DataFrame): every candidate clip with its scores, or only the kept (``kept=True``) or
    rejected (``kept=False``) ones; ``columns`` selects columns."""
    from timelapse_d.manifest import read_table
    from timelapse_d.records import CLIP_KEPT, CLIP_REJECTED

    options: dict[str, Any] = {"columns": None if columns is None else list(columns)}
    if kept is not None:
        options["filters"] = [("status", "=", CLIP_KEPT if kept else CLIP_REJECTED)]
    return read_table(Path(out) / MANIFEST, **options)


def open_videos(out: str | Path) -> pa.Table:
    """The source videos of build ``out`` (``videos.parquet``) as an Arrow table: status,
    error, probe facts and provenance."""
    from timelapse_d.manifest import read_table

    return read_table(Path(out) / VIDEOS)


@dataclass(frozen=True)
class ClipSample:
    """One kept clip as a shard holds it: the encoded video and its metadata."""

    clip_id: str
    mp4: bytes  # H.264 in MP4, as stored in the shard
    meta: dict[str, Any]  # the clip's manifest row written beside it (``<clip_id>.json``)

    def frames(self) -> np.ndarray:
        """Every frame, decoded: (T, H, W, 3) uint8 RGB."""
        import av
        import numpy as np

        with av.open(io.BytesIO(self.mp4), "r") as container:
            decoded = container.decode(video=0)
            return np.stack([frame.to_ndarray(format="rgb24") for frame in decoded])


def iter_clips(out: str | Path, clip_ids: Iterable[str] | None = None) -> Iterator[ClipSample]:
    """The kept clips of build ``out`` in shard order, or only those named in ``clip_ids``
    (e.g. ``open_manifest(out, kept=True)["clip_id"]`` filtered by any column). Each shard is
    read once, front to back; a clip named but not found in the shards raises ConfigError
    after the others."""
    from timelapse_d.errors import ConfigError
    from timelapse_d.shards.naming import clip_shards
    from timelapse_d.shards.tar import iter_samples

    root = Path(out)
    wanted = set(_kept_ids(root) if clip_ids is None else (str(i) for i in clip_ids))
    found: set[str] = set()
    for shard in clip_shards(root / "shards"):
        for key, members in iter_samples(shard):
            if key in wanted:
                found.add(key)
                yield ClipSample(key, members["mp4"], json.loads(members["json"]))
    missing = sorted(wanted - found)
    if missing:
        count = f"{len(missing)} clip" + ("s" if len(missing) > 1 else "")
        raise ConfigError(f"{root}: {count} not in the shards, e.g. {missing[0]}")


def _kept_ids(out: Path) -> list[str]:
    return open_manifest(out, kept=True, columns=["clip_id"])["clip_id"].to_pylist()
