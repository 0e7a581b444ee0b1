"""Stage `shard`: write kept clips into clip shards (:mod:`timelapse_d.shards.clips`), once per
set of kept rows and shard settings.

A clip is read from its encode file, or, when an earlier run released that file, from the clip
tar holding it: the current tars (and any a killed run was writing) are hard-linked under
``run/shard/previous/`` first, so replacing a tar never loses a clip a later tar still needs.
With `release_encodes` each tar is written under ``run/shard/writing/`` and each clip's encode
file deleted as soon as its bytes are synced there: the shard is the clip's only copy, and the
disk never holds the kept clips twice.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from timelapse_d.config import ShardConfig, fingerprint
from timelapse_d.errors import DataError
from timelapse_d.executors import Executor, Resources
from timelapse_d.records import CLIP_KEPT, Clip
from timelapse_d.runs import RunDir
from timelapse_d.shards.clips import Handover, plan_shards, write_shards
from timelapse_d.shards.naming import CLIPS, clip_shards, shard_name
from timelapse_d.shards.stored import find_clip
from timelapse_d.stages.base import MarkedStage, Outcome, run_stage
from timelapse_d.stages.encode import clip_path, previous_shards, writing_shards

STAGE = "shard"


@dataclass(frozen=True)
class ShardStage(MarkedStage):
    """One item, every kept clip in clip-id order: the shards under ``OUT/shards``; keyed on
    the shard settings and the kept rows, so the same rows are never sharded twice."""

    config: ShardConfig
    release_encodes: bool = False  # delete the sharded clips' encode files (not in the key)
    name: str = STAGE
    resources: Resources = Resources(cpus=1.0, memory_mb=1024)

    def item_id(self, kept: list[Clip]) -> str:
        return "all"

    def key(self, kept: list[Clip]) -> str:
        return fingerprint(dataclasses.asdict(self.config), [clip.row() for clip in kept])

    def run(self, kept: list[Clip], run_dir: RunDir) -> Outcome:
        plan = plan_shards(kept, self.config.max_bytes)
        shard_dir = run_dir.out / "shards"
        previous = previous_shards(run_dir)
        _keep_readable(shard_dir, writing_shards(run_dir), previous)

        def clip_bytes(clip: Clip) -> bytes:
            cached = clip_path(run_dir, clip.clip_id)
            if cached.is_file():
                return cached.read_bytes()
            stored = find_clip([previous], clip.clip_id, clip.clip_bytes or 0)
            if stored is None:
                raise DataError(f"clip {clip.clip_id} is neither in run/encode/ nor in a shard")
            return stored.read()

        def release(clip: Clip) -> None:
            clip_path(run_dir, clip.clip_id).unlink(missing_ok=True)

        writing = writing_shards(run_dir)
        handover = Handover(writing, release) if self.release_encodes else None
        write_shards(shard_dir, plan, clip_bytes, handover)
        shutil.rmtree(previous, ignore_errors=True)
        written = [shard_dir / shard_name(i) for i in range(len(plan))]
        written += [path.with_suffix(".parquet") for path in written]
        return Outcome({"shards": len(plan)}, written)


def _keep_readable(shard_dir: Path, writing: Path, previous: Path) -> None:
    """Hard-link every clip tar of `shard_dir`, and move the tars a killed run was writing, into
    `previous`, named by inode (a killed run's links stay beside: every clip a tar holds whole
    has the encoder's bytes)."""
    previous.mkdir(parents=True, exist_ok=True)
    for tar in clip_shards(shard_dir) + clip_shards(writing):
        link = previous / f"{CLIPS}-{tar.stat().st_ino}.tar"
        if not link.exists():
            os.link(tar, link)
        if tar.parent == writing:
            tar.unlink()


def shard_clips(
    clips: list[Clip],
    config: ShardConfig,
    run_dir: RunDir,
    executor: Executor,
    release_encodes: bool = False,
) -> list[Clip]:
    """Shard the kept clips (skipped when the same rows were already sharded); return every
    clip with `shard` set (None for a rejected clip)."""
    kept = sorted((c for c in clips if c.status == CLIP_KEPT), key=lambda c: c.clip_id)
    stage = ShardStage(config, release_encodes)
    run_stage(stage, [kept], run_dir, executor).require_all(STAGE)
    plan = plan_shards(kept, config.max_bytes)
    names = {clip.clip_id: shard_name(i) for i, shard in enumerate(plan) for clip in shard}
    return [dataclasses.replace(c, shard=names.get(c.clip_id)) for c in clips]
