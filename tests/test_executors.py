"""The local executor and the stage runner: a worker that dies natively (a segfault, SIGKILL)
fails only the tasks it had in flight, the rest go on in a fresh pool, and a re-run completes."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from timelapse_d.config import EncodeConfig, resolve_config
from timelapse_d.errors import ConfigError
from timelapse_d.executors import LocalExecutor, Resources, make_executor
from timelapse_d.runs import RunDir, read_json, write_json
from timelapse_d.stages.base import MarkedStage, Outcome, run_stage
from timelapse_d.stages.encode import EncodeStage, ffmpeg_command


@dataclass(frozen=True)
class DiesOnce(MarkedStage):
    """Writes `<item>.json`; the item `crash` kills its own process with `signum` until the
    file `survived` exists (it creates it just before dying)."""

    survived: str
    signum: int
    name: str = "dies_once"
    resources: Resources = Resources()

    def item_id(self, item: str) -> str:
        return item

    def key(self, item: str) -> str:
        return f"key-{item}"

    def run(self, item: str, run_dir: RunDir) -> Outcome:
        if item == "crash" and not Path(self.survived).exists():
            Path(self.survived).touch()
            os.kill(os.getpid(), self.signum)
        path = run_dir.stage_dir(self.name) / f"{item}.json"
        write_json(path, {"item": item})
        return Outcome({"item": item}, [path])


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGSEGV, signal.SIGKILL])
def test_a_worker_dying_natively_fails_its_tasks_and_the_rerun_completes(
    tmp_path: Path, signum: int
) -> None:
    run = RunDir(tmp_path / "out")
    stage = DiesOnce(str(tmp_path / "survived"), signum)
    items = ["crash", *(f"item{i:02d}" for i in range(12))]

    first = run_stage(stage, items, run, LocalExecutor(2))

    # The pool broke: `crash` and at most the other tasks in flight (2 x 2 workers) failed,
    # each recorded without a marker; every other item finished, the later ones in a new pool.
    assert "crash" in first.failed and len(first.failed) <= 4
    assert "worker process died" in first.failed["crash"].error
    assert sorted(first.ran) == sorted(set(items) - set(first.failed))
    assert sorted(run.failures()["dies_once"]) == sorted(first.failed)
    assert all(not run.marker("dies_once", name).exists() for name in first.failed)

    second = run_stage(stage, items, run, LocalExecutor(2))

    assert sorted(second.ran) == sorted(first.failed) and not second.failed
    assert sorted(second.stats) == sorted(items)
    assert run.failures() == {}
    assert read_json(run.stage_dir("dies_once") / "crash.json")["item"] == "crash"


def test_an_unknown_executor_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown executor 'cluster'; available: local, ray"):
        make_executor("cluster", 2)
    with pytest.raises(ConfigError, match="executor.*local.*ray"):
        resolve_config(source="synthetic", overrides={"executor": "cluster"})
    assert not (tmp_path / "out").exists()


def test_encode_threads_set_ffmpeg_and_the_cpus_an_encode_asks() -> None:
    clip = {"fps": 25.0, "num_frames": 48, "start_time_s": 0.0, "first_frame_time_s": 0.0}
    clip |= {"width": 640, "height": 360}
    chosen = EncodeStage(EncodeConfig())
    pinned = EncodeStage(EncodeConfig(threads=3))

    assert "-threads" not in ffmpeg_command(clip, Path("in.mp4"), Path("o.mp4"), chosen.config)
    command = ffmpeg_command(clip, Path("in.mp4"), Path("o.mp4"), pinned.config)
    assert command[command.index("-threads") + 1] == "3"
    assert (chosen.resources.cpus, pinned.resources.cpus) == (1.0, 3.0)
    with pytest.raises(ConfigError, match="encode.threads"):
        resolve_config(source="synthetic", overrides={"encode.threads": -1})


@dataclass(frozen=True)
class DiesAfterMarking(DiesOnce):
    """Item `crash` finishes and is marked, then its worker dies before the result is sent."""

    def run(self, item: str, run_dir: RunDir) -> Outcome:
        path = run_dir.stage_dir(self.name) / f"{item}.json"
        write_json(path, {"item": item})
        return Outcome({"item": item}, [path])

    def mark(self, run_dir: RunDir, item_id: str, key: str, outcome: Outcome) -> None:
        super().mark(run_dir, item_id, key, outcome)
        if item_id == "crash":
            os.kill(os.getpid(), self.signum)


@pytest.mark.slow
def test_a_task_marked_before_its_worker_died_counts_as_done(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "out")
    stage = DiesAfterMarking(str(tmp_path / "unused"), signal.SIGKILL)
    items = ["crash", *(f"item{i:02d}" for i in range(6))]

    result = run_stage(stage, items, run, LocalExecutor(2))

    # Its result was lost with the worker, but its outputs and marker are in place: done, not a
    # failure (a re-run would skip it, so a failure record would never be cleared).
    assert "crash" in result.ran and "crash" not in result.failed
    assert "crash" not in run.failures().get("dies_once", [])
    assert result.stats["crash"] == {"item": "crash"}
