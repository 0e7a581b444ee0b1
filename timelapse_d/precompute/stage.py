"""`tld precompute frames|flow|masks OUT`: one field shard per clip shard, resumable per shard.

Each clip is decoded once per field (in a background thread, ahead of the model), sampled by
:func:`timelapse_d.precompute.sampling.sample_clip`, and its field sample computed; a finished
shard is written to a temporary name, read back and checked (keys, order, digests), renamed,
and marked done with a fingerprint of the settings and of its clip shard. A re-run skips every
shard whose marker matches, so a killed run resumes at the shard it was writing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from timelapse_d.config import BuildConfig, fingerprint, saved_build_config
from timelapse_d.errors import ConfigError
from timelapse_d.executors import Executor, LocalExecutor, Resources
from timelapse_d.media.decode import prefetched
from timelapse_d.precompute.batching import AdaptiveBatch
from timelapse_d.precompute.sampling import Sampling, sample_clip
from timelapse_d.precompute.settings import PrecomputeConfig
from timelapse_d.publish.card import write_card
from timelapse_d.runs import RunDir, file_identity
from timelapse_d.shards.fields import (
    FRAMES_MEMBER,
    encode_flow,
    encode_frames,
    encode_masks,
    write_field_shard,
)
from timelapse_d.shards.naming import FIELDS, clip_shards, field_shard, shard_glob
from timelapse_d.shards.tar import iter_samples
from timelapse_d.stages.base import Outcome, run_stage
from timelapse_d.torch_runtime import PRECISIONS

LOG = logging.getLogger("timelapse_d")
BACKENDS = {
    "frames": ("decode",),
    "flow": ("dis", "flownet2", "raft", "truth"),
    "mask": ("hrnet", "truth"),
}
DEFAULT_BACKEND = {field: getattr(PrecomputeConfig(), f"{field}_backend") for field in FIELDS}


@dataclass(frozen=True)
class PrecomputeOptions:
    """What to compute and how (every field except `batch` and `device` is in the fingerprint)."""

    field: str
    backend: str | None = None  # None: the field's default
    sampling: Sampling = Sampling()
    device: str = "cpu"
    batch: int = 16  # frame pairs (flow) or frames (masks) per model call
    precision: str = "fp32"
    weights: str | None = None  # a checkpoint file (flow) or a folder of both (masks)
    classes: bool = False  # masks: also store the 150-class map

    def resolved(self) -> PrecomputeOptions:
        """The options with the default backend filled in; ConfigError when invalid."""
        if self.field not in FIELDS:
            raise ConfigError(f"unknown field {self.field!r}; choose from {', '.join(FIELDS)}")
        backend = self.backend or DEFAULT_BACKEND[self.field]
        allowed = BACKENDS[self.field]
        if backend not in allowed:
            raise ConfigError(
                f"backend {backend!r} cannot compute {self.field}; choose from {', '.join(allowed)}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.batch < 1:
            raise ConfigError("--batch must be at least 1")
        return dataclasses.replace(self, backend=backend)

    def key_settings(self) -> dict[str, Any]:
        settings = dataclasses.asdict(self)
        for volatile in ("batch", "device"):
            settings.pop(volatile)
        if self.field == "frames":  # shards of an earlier layout are rewritten
            settings["layout"] = FRAMES_MEMBER
        return settings


@dataclass
class PrecomputeReport:
    """What a precompute run did, for the summary line."""

    field: str
    backend: str
    shards_done: int = 0
    shards_skipped: int = 0
    clips: int = 0
    seconds: float = 0.0
    bytes_written: int = 0

    def lines(self) -> list[str]:
        rate = f", {self.clips / self.seconds:.1f} clips/s" if self.seconds > 0 else ""
        per_clip = self.bytes_written / self.clips / 1024 if self.clips else 0.0
        return [
            f"precompute {self.field} ({self.backend}): {self.shards_done} shards written, "
            f"{self.shards_skipped} already done",
            f"  clips: {self.clips} in {self.seconds:.1f} s{rate}; {per_clip:.0f} KB per clip",
        ]


ComputeFn = Callable[[dict[str, Any], list[int], np.ndarray], dict[str, bytes]]


def precompute(
    out: Path, options: PrecomputeOptions, executor: Executor | None = None
) -> PrecomputeReport:
    """Write the field shards of every clip shard under OUT/shards that is not done yet.

    `executor` runs one task per clip shard (default: in this process, the model loaded once).
    """
    options = options.resolved()
    assert options.backend is not None
    shards = clip_shards(out / "shards")
    if not shards:
        raise ConfigError(f"no clip shards in {out / 'shards'}: run `tld build` first")
    run = RunDir(out)
    report = PrecomputeReport(options.field, options.backend)
    stage = PrecomputeStage(options)
    executor = executor or LocalExecutor(1)
    with run.exclusive():
        executor.check_storage(out)
        run.check_space(_min_free_mb(out), f"precompute {options.field}")
        _remove_orphans(out / "shards", options.field, shards)
        result = run_stage(stage, shards, run, executor)
        for name in result.ran:
            stats = result.stats[name]
            report.shards_done += 1
            report.clips += stats["clips"]
            report.seconds += stats["seconds"]
            report.bytes_written += stats["bytes"]
        report.shards_skipped = len(result.stats) - len(result.ran)
        if (out / "manifest.parquet").is_file():
            write_card(out)  # its configurations list the field shards now present
        result.require_all(stage.name)
    return report


def _min_free_mb(out: Path) -> int:
    """The free-space margin of the build (its saved config), or the default without one."""
    has_config = (out / "run" / "config.yaml").is_file()
    return (saved_build_config(out) if has_config else BuildConfig()).min_free_mb


@dataclass(frozen=True)
class PrecomputeStage:
    """Per clip shard: its field shard beside it, keyed on the settings that shape the field
    (not batch or device) and the clip shard's name, size and modification time."""

    options: PrecomputeOptions

    @property
    def name(self) -> str:
        return f"precompute_{self.options.field}"

    @property
    def resources(self) -> Resources:
        gpus = 0.0 if self.options.device == "cpu" else 1.0
        return Resources(cpus=1.0, gpus=gpus, memory_mb=4096, long_lived=True)

    def item_id(self, clip_shard: Path) -> str:
        return clip_shard.stem

    def key(self, clip_shard: Path) -> str:
        identity = file_identity(clip_shard)
        return fingerprint(self.options.key_settings(), clip_shard.name, identity)

    def done(self, run_dir: RunDir, item_id: str, key: str) -> dict[str, Any] | None:
        target = field_shard(run_dir.out / "shards" / f"{item_id}.tar", self.options.field)
        return run_dir.done_stats(self.name, item_id, key) if target.is_file() else None

    def mark(self, run_dir: RunDir, item_id: str, key: str, outcome: Outcome) -> None:
        run_dir.mark_done(self.name, item_id, key, outcome.stats, outcome.outputs)

    def run(self, clip_shard: Path, run_dir: RunDir) -> Outcome:
        compute = _loaded_compute(run_dir.out, self.options)
        target = field_shard(clip_shard, self.options.field)
        started = time.monotonic()
        clips = _write_shard(clip_shard, target, self.options, compute)
        elapsed = time.monotonic() - started
        stats = {"clips": clips, "seconds": round(elapsed, 3), "bytes": target.stat().st_size}
        LOG.info("%s: %s, %d clips in %.1f s", self.name, target.name, clips, elapsed)
        return Outcome(stats, [target])


# The computation last loaded in this process, by (OUT, options): a model loads once per
# worker process, and only when a shard needs it.
_LOADED: dict[tuple[Path, PrecomputeOptions], ComputeFn] = {}


def _loaded_compute(out: Path, options: PrecomputeOptions) -> ComputeFn:
    if (out, options) not in _LOADED:
        _LOADED.clear()  # one model in memory at a time
        _LOADED[(out, options)] = _compute_fn(out, options)
    return _LOADED[(out, options)]


def _write_shard(
    clip_shard: Path, target: Path, options: PrecomputeOptions, compute: ComputeFn
) -> int:
    samples, keys = [], []
    for key, row, indices, frames in prefetched(_sampled_clips(clip_shard, options.sampling), 4):
        samples.append({"__key__": key, **compute(row, indices, frames)})
        keys.append(key)
    write_field_shard(target, samples, keys)
    return len(keys)


def _sampled_clips(
    clip_shard: Path, sampling: Sampling
) -> Iterator[tuple[str, dict[str, Any], list[int], np.ndarray]]:
    for key, members in iter_samples(clip_shard):
        row = json.loads(members["json"])
        indices, frames = sample_clip(members["mp4"], sampling)
        yield key, row, indices, frames


def _meta(options: PrecomputeOptions, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "backend": options.backend,
        "stride": options.sampling.stride,
        "size": options.sampling.size,
        "clip_frames": row.get("num_frames"),
    }


def _compute_fn(out: Path, options: PrecomputeOptions) -> ComputeFn:
    """The per-clip computation of the chosen field and backend (loads any model once)."""
    if options.field == "frames":
        return lambda row, indices, frames: encode_frames(indices, frames, _meta(options, row))
    if options.backend == "truth":
        from timelapse_d.synth.fields import SyntheticTruth

        truth = SyntheticTruth(out)
        size = options.sampling.size
        if options.field == "flow":
            return lambda row, indices, frames: encode_flow(
                truth.flow(row, indices, size), {**_meta(options, row), "direction": "backward"}
            )
        return lambda row, indices, frames: encode_masks(
            truth.masks(row, indices, size), _meta(options, row)
        )
    batcher = AdaptiveBatch(options.batch)
    if options.field == "flow":
        from timelapse_d.flow.backends import make_flow_backend

        flow_backend = make_flow_backend(
            options.backend or DEFAULT_BACKEND["flow"],
            device=options.device,
            weights=Path(options.weights) if options.weights else None,
            precision=options.precision,
        )

        def flow(row: dict[str, Any], indices: list[int], frames: np.ndarray) -> dict[str, bytes]:
            pairs = len(frames) - 1
            result = batcher.map(
                lambda s: flow_backend.backward_flow(
                    frames[s.start : s.stop], frames[s.start + 1 : s.stop + 1]
                ),
                pairs,
            )
            result = result.reshape(pairs, 2, *frames.shape[1:3])
            return encode_flow(result, {**_meta(options, row), "direction": "backward"})

        return flow
    return _hrnet_masks(options, batcher)


def _hrnet_masks(options: PrecomputeOptions, batcher: AdaptiveBatch) -> ComputeFn:
    from timelapse_d.segment.groups import class_map_to_groups
    from timelapse_d.segment.hrnet import DECODER_FILE, ENCODER_FILE, load_segmenter, segment
    from timelapse_d.torch_runtime import autocast, resolve_device
    from timelapse_d.weights import require

    device = resolve_device(options.device)
    folder = Path(options.weights) if options.weights else None
    encoder = require("hrnetv2_encoder", path=folder / ENCODER_FILE if folder else None)
    decoder = require("hrnetv2_decoder", path=folder / DECODER_FILE if folder else None)
    model = load_segmenter(encoder, decoder, device)

    def classes_of(frames: np.ndarray) -> np.ndarray:
        with autocast(device, options.precision):
            return segment(model, frames)

    def masks(row: dict[str, Any], indices: list[int], frames: np.ndarray) -> dict[str, bytes]:
        classes = batcher.map(lambda s: classes_of(frames[s]), len(frames))
        return encode_masks(
            class_map_to_groups(classes),
            _meta(options, row),
            classes if options.classes else None,
        )

    return masks


def _remove_orphans(shard_dir: Path, field: str, shards: list[Path]) -> None:
    """Field shards left from an earlier build with more clip shards."""
    wanted = {field_shard(path, field).name for path in shards}
    for stale in shard_dir.glob(shard_glob(field)):
        if stale.name not in wanted:
            stale.unlink()
