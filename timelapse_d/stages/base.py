"""The Stage interface and the one runner every stage goes through.

A stage turns items into outputs under ``OUT/run/<stage>/`` (or elsewhere under OUT). The
runner, :func:`run_stage`, skips every item whose completion marker carries the fingerprint
``stage.key(item)`` and whose outputs are in place, runs the rest through an executor, marks
each finished item done with its stats and outputs (``stage.mark``), and records each
unexpected failure under ``OUT/run/failures/<stage>/`` (no marker: a re-run tries it again).
A task whose worker died after marking it (its result lost on the way back) is done.
Stages are picklable (settings only): a process pool or a cluster runs `stage.run(item,
run_dir)` elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from timelapse_d.errors import TldError
from timelapse_d.executors import Executor, Resources, Task, TaskFailure
from timelapse_d.runs import RunDir

LOG = logging.getLogger("timelapse_d")
Item = TypeVar("Item")
Item_contra = TypeVar("Item_contra", contravariant=True)


@dataclass(frozen=True)
class Outcome:
    """What a finished task leaves: stats for its marker, and the files it wrote under OUT."""

    stats: dict[str, Any]
    outputs: list[Path] = field(default_factory=list)


class Stage(Protocol[Item_contra]):
    """One step of the pipeline, run per item by :func:`run_stage`."""

    @property
    def name(self) -> str:
        """Names the stage's folders: run/<name>/, run/failures/<name>/."""
        ...

    @property
    def resources(self) -> Resources:
        """What one task needs."""
        ...

    def item_id(self, item: Item_contra) -> str:
        """The task name: a plain id, unique within the stage (markers are named by it)."""
        ...

    def key(self, item: Item_contra) -> str:
        """The fingerprint of everything the item's outputs depend on."""
        ...

    def run(self, item: Item_contra, run_dir: RunDir) -> Outcome:
        """Do the work, write the outputs atomically; raise on an unexpected failure."""
        ...

    def done(self, run_dir: RunDir, item_id: str, key: str) -> dict[str, Any] | None:
        """The stats of a completed item, None when it must run (again)."""
        ...

    def mark(self, run_dir: RunDir, item_id: str, key: str, outcome: Outcome) -> None:
        """Record a finished item so that `done` finds it (run last, after its outputs)."""
        ...


class MarkedStage:
    """Default `done` and `mark`: a marker ``run/<name>/<id>.done.json`` with this key, done
    while the outputs it lists are all in place."""

    name: str

    def done(self, run_dir: RunDir, item_id: str, key: str) -> dict[str, Any] | None:
        return run_dir.done_stats(self.name, item_id, key)

    def mark(self, run_dir: RunDir, item_id: str, key: str, outcome: Outcome) -> None:
        run_dir.mark_done(self.name, item_id, key, outcome.stats, outcome.outputs)


class StageFailed(TldError):
    """A stage whose every item is needed (shard, precompute) had tasks that failed (`tld`
    exits 1: the re-run goes on from there)."""


@dataclass
class StageResult:
    """Per item id: the stats of every completed item, which ran now, which failed."""

    stats: dict[str, dict[str, Any]]
    ran: list[str]
    failed: dict[str, TaskFailure]

    def require_all(self, stage: str) -> None:
        """Raise StageFailed when any task failed (each is recorded in run/failures/)."""
        if self.failed:
            first = next(iter(self.failed.values()))
            raise StageFailed(
                f"{stage}: {len(self.failed)} task(s) failed, see run/failures/{stage}/ "
                f"({first.name}: {first.error})"
            )


def _run_item(stage: Stage[Item], item: Item, run_dir: RunDir, key: str) -> dict[str, Any]:
    outcome = stage.run(item, run_dir)
    stage.mark(run_dir, stage.item_id(item), key, outcome)
    return outcome.stats


def run_stage(
    stage: Stage[Item], items: Iterable[Item], run_dir: RunDir, executor: Executor
) -> StageResult:
    """Run `stage` on every item not done yet (see module); return what is done now."""
    items = list(items)
    keys = {stage.item_id(item): stage.key(item) for item in items}
    stats: dict[str, dict[str, Any]] = {}
    tasks = []
    for item in items:
        item_id = stage.item_id(item)
        done = stage.done(run_dir, item_id, keys[item_id])
        if done is None:
            args = (stage, item, run_dir, keys[item_id])
            tasks.append(Task(item_id, _run_item, args, stage.resources))
        else:
            stats[item_id] = done
    LOG.info("%s: %d items, %d already done", stage.name, len(items), len(stats))
    ran, failed = [], {}
    for task, result in executor.map(tasks, stage.name):
        if isinstance(result, TaskFailure):  # its worker died: had it finished (and marked)?
            finished = stage.done(run_dir, task.name, keys[task.name])
            result = result if finished is None else finished
        if isinstance(result, TaskFailure):
            LOG.error("%s task %s failed: %s", stage.name, task.name, result.error)
            run_dir.record_failure(stage.name, task.name, f"{result.error}\n\n{result.traceback}")
            failed[task.name] = result
        else:
            stats[task.name] = result
            ran.append(task.name)
    return StageResult(stats, ran, failed)
