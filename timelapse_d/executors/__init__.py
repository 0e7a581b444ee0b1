"""How tasks run: an :class:`Executor` maps tasks to (task, result or TaskFailure) pairs.

An executor changes how the work runs (in this process, a local process pool, later a
cluster), never what it produces: every task writes the same outputs wherever it runs. A
task's unexpected exception comes back as a :class:`TaskFailure`; a failure of the machine
(:class:`timelapse_d.runs.HostError`, a full disk) or of the configuration (ConfigError)
stops the run.

`make_executor(name, workers, ray_address)` gives the executor the `executor` config key names
(`local`, or `ray`: :mod:`timelapse_d.executors.ray_cluster`).
"""

from __future__ import annotations

from timelapse_d.errors import ConfigError
from timelapse_d.executors.base import Executor, Resources, Task, TaskFailure, run_task
from timelapse_d.executors.local import LocalExecutor

EXECUTORS = ("local", "ray")

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "Resources",
    "Task",
    "TaskFailure",
    "make_executor",
    "run_task",
]


def make_executor(name: str, workers: int, ray_address: str | None = "auto") -> Executor:
    """The executor called `name`: `local` runs `workers` tasks at a time on this machine,
    `ray` places tasks on the Ray cluster at `ray_address` by the resources they ask."""
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        from timelapse_d.executors.ray_cluster import RayExecutor

        return RayExecutor(ray_address)
    raise ConfigError(f"unknown executor {name!r}; available: {', '.join(EXECUTORS)}")
