"""What every executor shares: the task, its failure record, and how a task is called."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from timelapse_d.errors import ConfigError, HostError
from timelapse_d.runs import is_host_failure

if TYPE_CHECKING:
    from timelapse_d.acquire.ratelimit import Limiter


@dataclass(frozen=True)
class Resources:
    """What one task needs, for executors that place tasks (a cluster); the local one runs
    `workers` tasks at a time whatever they ask for.

    `concurrency` caps how many of a stage's tasks run at once (0: as many as fit), for work
    bounded by something other than the machines (downloads from one host). `long_lived`
    tasks run in workers that outlive them, so what a task loads (a network) serves the next.
    """

    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int = 1024
    concurrency: int = 0
    long_lived: bool = False


@dataclass(frozen=True)
class Task:
    """A named unit of work: `fn(*args)` in a worker (picklable for a process pool)."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    resources: Resources = Resources()


@dataclass(frozen=True)
class TaskFailure:
    """An unexpected exception raised by a task."""

    name: str
    error: str
    traceback: str


class Executor(Protocol):
    """Runs tasks and yields each with its result (or TaskFailure) as it completes."""

    def map(self, tasks: Sequence[Task], desc: str = "tasks") -> Iterator[tuple[Task, Any]]:
        """Run `tasks`; `desc` names them in progress lines. Order of completion, not input."""
        ...

    def check_storage(self, folder: Path) -> None:
        """Raise ConfigError unless every machine that runs tasks sees `folder` as this one
        does (tasks read and write the build folder in place)."""
        ...

    def rate_limiter(self, state: Path, calls: int, period_s: float) -> Limiter:
        """A limiter of at most `calls` calls per `period_s` shared by every task of this
        executor, wherever it runs; `state` names it (a file on one machine)."""
        ...


def run_task(task: Task) -> Any:
    """`task`'s result, or a TaskFailure; HostError (a failure of the machine) and ConfigError
    (a wrong setting, true of every task) are raised: they stop the run."""
    try:
        return task.fn(*task.args)
    except Exception as exc:  # noqa: BLE001 - every task failure is reported, none stops the run
        if isinstance(exc, HostError | ConfigError):
            raise
        if is_host_failure(exc):
            raise HostError(f"{task.name}: {exc}") from None
        return TaskFailure(task.name, f"{type(exc).__name__}: {exc}", traceback.format_exc())
