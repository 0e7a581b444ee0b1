"""What every executor shares: the task, its failure record, and how a task is called."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from timelapse_d.errors import ConfigError, HostError
from timelapse_d.runs import is_host_failure


@dataclass(frozen=True)
class Resources:
    """What one task needs, for executors that place tasks (a cluster); the local one runs
    `workers` tasks at a time whatever they ask for."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int = 1024


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
