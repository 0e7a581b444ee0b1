"""Stage `shard`: write kept clips into clip shards (:mod:`timelapse_d.shards.clips`), once per
set of kept rows and shard settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from timelapse_d.config import ShardConfig, fingerprint
from timelapse_d.executors import Executor, Resources
from timelapse_d.records import CLIP_KEPT, Clip
from timelapse_d.runs import RunDir
from timelapse_d.shards.clips import plan_shards, write_shards
from timelapse_d.shards.naming import shard_name
from timelapse_d.stages.base import MarkedStage, Outcome, run_stage
from timelapse_d.stages.encode import clip_path

STAGE = "shard"


@dataclass(frozen=True)
class ShardStage(MarkedStage):
    """One item, every kept clip in clip-id order: the shards under ``OUT/shards``; keyed on
    the shard settings and the kept rows, so the same rows are never sharded twice."""

    config: ShardConfig
    name: str = STAGE
    resources: Resources = Resources(cpus=1.0, memory_mb=1024)

    def item_id(self, kept: list[Clip]) -> str:
        return "all"

    def key(self, kept: list[Clip]) -> str:
        return fingerprint(dataclasses.asdict(self.config), [clip.row() for clip in kept])

    def run(self, kept: list[Clip], run_dir: RunDir) -> Outcome:
        plan = plan_shards(kept, self.config.max_bytes)
        shard_dir = run_dir.out / "shards"
        write_shards(shard_dir, plan, lambda clip: clip_path(run_dir, clip.clip_id))
        written = [shard_dir / shard_name(i) for i in range(len(plan))]
        written += [path.with_suffix(".parquet") for path in written]
        return Outcome({"shards": len(plan)}, written)


def shard_clips(
    clips: list[Clip], config: ShardConfig, run_dir: RunDir, executor: Executor
) -> list[Clip]:
    """Shard the kept clips (skipped when the same rows were already sharded); return every
    clip with `shard` set (None for a rejected clip)."""
    kept = sorted((c for c in clips if c.status == CLIP_KEPT), key=lambda c: c.clip_id)
    run_stage(ShardStage(config), [kept], run_dir, executor).require_all(STAGE)
    plan = plan_shards(kept, config.max_bytes)
    names = {clip.clip_id: shard_name(i) for i, shard in enumerate(plan) for clip in shard}
    return [dataclasses.replace(c, shard=names.get(c.clip_id)) for c in clips]
