"""The Ray executor: the same tasks, placed on a Ray cluster by the resources they declare.

Every task is a Ray task asking its stage's CPUs, GPUs and memory; results stream back as they
finish, with at most two tasks per CPU of the cluster in flight (and no more than a stage's
`concurrency`). `long_lived` tasks (a network to load) run instead on a pool of Ray actors, one
per slot the cluster has for them, each keeping what it loaded for its next task. A worker or
node that dies turns its task into a TaskFailure (recorded, no marker: the re-run retries it);
Ray never retries a task itself, so a task's outputs are written once per attempt we know of.
A failure of the machine or of the configuration raised in a task stops the run here too.

Tasks run where the cluster puts them and read and write the build folder in place, so every
node must see it at the same path (:meth:`RayExecutor.check_storage` proves it before a build).
Shared state (the download rate limit) is a named actor: file locks do not hold across nodes.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from collections.abc import Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

from timelapse_d.acquire.ratelimit import Limiter, TokenBucket, WaitingLimiter
from timelapse_d.errors import ConfigError
from timelapse_d.executors.base import Resources, Task, TaskFailure, run_task
from timelapse_d.executors.progress import Progress

NAMESPACE = "timelapse_d"
PROBE_NAME = ".tld-storage-probe"


def _ray() -> Any:
    """The ray module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "the ray executor needs Ray: pip install 'timelapse-d[ray]' on every node"
        ) from None
    return ray


def _options(resources: Resources) -> dict[str, Any]:
    return {
        "num_cpus": resources.cpus,
        "num_gpus": resources.gpus,
        "memory": resources.memory_mb * 1024 * 1024,
    }


class _TaskRunner:
    """A long-lived worker (a Ray actor): runs one task at a time in its own process."""

    def run(self, task: Task) -> Any:
        return run_task(task)


class RayExecutor:
    """Runs tasks on the Ray cluster at `address` (`auto`: the one this machine belongs to;
    ``HOST:PORT``; None: a cluster of this machine alone, started for this process)."""

    def __init__(self, address: str | None = "auto") -> None:
        self.address = address
        self._limiters: dict[str, ActorLimiter] = {}  # their actors live as long as this

    def connect(self) -> Any:
        """The ray module, connected to the cluster (once per process)."""
        ray = _ray()
        if not ray.is_initialized():
            try:
                _check_reachable(self.address)
                ray.init(
                    address=self.address,
                    namespace=NAMESPACE,
                    log_to_driver=True,
                    configure_logging=False,
                )
            except OSError as exc:  # refused, timed out, unknown host; Ray's ConnectionError
                raise ConfigError(
                    f"no Ray cluster at {self.address!r} ({exc}); start one with "
                    "`ray start --head` or pass --ray-address HOST:PORT"
                ) from None
        return ray

    def map(self, tasks: Sequence[Task], desc: str = "tasks") -> Iterator[tuple[Task, Any]]:
        """Run tasks on the cluster, yielding (task, result or TaskFailure) as each completes."""
        if not tasks:
            return
        ray = self.connect()
        progress = Progress(desc, len(tasks))
        try:
            for resources in dict.fromkeys(t.resources for t in tasks):
                self._check_fits(ray, resources, desc)
            plain = [t for t in tasks if not t.resources.long_lived]
            lasting = [t for t in tasks if t.resources.long_lived]
            for task, result in chain(self._run_tasks(ray, plain), self._run_actors(ray, lasting)):
                yield task, result
                progress.step()
        finally:
            progress.close()

    def _run_tasks(self, ray: Any, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
        """Plain Ray tasks, a bounded number in flight."""
        remote = ray.remote(run_task)
        queue = list(reversed(tasks))
        pending: dict[Any, Task] = {}
        limits = {r: self._in_flight(ray, r) for r in dict.fromkeys(t.resources for t in tasks)}
        try:
            while queue or pending:
                while queue and len(pending) < limits[queue[-1].resources]:
                    task = queue.pop()
                    options = {**_options(task.resources), "max_retries": 0, "name": task.name}
                    pending[remote.options(**options).remote(task)] = task
                finished, _ = ray.wait(list(pending), num_returns=1)
                for ref in finished:
                    task = pending.pop(ref)
                    yield task, _result(ray, task, lambda ref=ref: ray.get(ref))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def _run_actors(self, ray: Any, tasks: list[Task]) -> Iterator[tuple[Task, Any]]:
        """Tasks on a pool of long-lived actors; a dead actor fails its task and is replaced."""
        if not tasks:
            return
        resources = tasks[0].resources
        actor_class = ray.remote(_TaskRunner).options(**_options(resources), max_restarts=0)
        queue = list(reversed(tasks))
        idle = [actor_class.remote() for _ in range(min(len(tasks), self._slots(ray, resources)))]
        pending: dict[Any, tuple[Task, Any]] = {}
        try:
            while queue or pending:
                while queue and idle:
                    task, actor = queue.pop(), idle.pop()
                    pending[actor.run.remote(task)] = (task, actor)
                finished, _ = ray.wait(list(pending), num_returns=1)
                for ref in finished:
                    task, actor = pending.pop(ref)
                    result = _result(ray, task, lambda ref=ref: ray.get(ref))
                    if isinstance(result, TaskFailure) and _died(ray, actor):
                        ray.kill(actor)
                        actor = actor_class.remote()
                    idle.append(actor)
                    yield task, result
        finally:
            for _, actor in pending.values():
                ray.kill(actor)
            for actor in idle:
                ray.kill(actor)

    def _slots(self, ray: Any, resources: Resources) -> int:
        """How many tasks asking `resources` the cluster holds at once (at least 1)."""
        total = ray.cluster_resources()
        fits = [math.floor(total.get("CPU", 0) / resources.cpus)] if resources.cpus else []
        if resources.gpus:
            fits.append(math.floor(total.get("GPU", 0) / resources.gpus))
        slots = max(1, min(fits, default=1))
        return min(slots, resources.concurrency) if resources.concurrency else slots

    def _in_flight(self, ray: Any, resources: Resources) -> int:
        """Two tasks per CPU of the cluster queued ahead, within the stage's concurrency."""
        bound = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        return min(bound, resources.concurrency) if resources.concurrency else bound

    def _check_fits(self, ray: Any, resources: Resources, desc: str) -> None:
        """ConfigError when no node could ever run a task asking `resources` (Ray would wait
        for one forever)."""
        asks = {"CPU": resources.cpus, "GPU": resources.gpus}
        for node in ray.nodes():
            have = node.get("Resources", {}) if node.get("Alive") else {}
            if all(have.get(name, 0) >= amount for name, amount in asks.items() if amount):
                return
        raise ConfigError(
            f"{desc}: no node of the Ray cluster has {resources.cpus:g} CPU and "
            f"{resources.gpus:g} GPU for one task (GPU stages need GPU nodes, or --device cpu)"
        )

    def check_storage(self, folder: Path) -> None:
        """Raise ConfigError unless a task on every alive node reads the probe this process
        just wrote in `folder` (the build folder must be on storage every node mounts at the
        same path)."""
        ray = self.connect()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        token = secrets.token_hex(16)
        probe = folder / f"{PROBE_NAME}-{token[:8]}"
        probe.write_text(token)
        try:
            read = ray.remote(_read_probe)
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            refs = [
                read.options(
                    num_cpus=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                ).remote(str(probe))
                for n in nodes
            ]
            seen = ray.get(refs)
        finally:
            probe.unlink(missing_ok=True)
        blind = [
            n["NodeManagerAddress"] for n, text in zip(nodes, seen, strict=True) if text != token
        ]
        if blind:
            raise ConfigError(
                f"{folder} is not visible at the same path on Ray node(s) {', '.join(blind)}: "
                "put the build folder on storage every node mounts there (NFS, a cluster file "
                "system)"
            )

    def rate_limiter(self, state: Path, calls: int, period_s: float) -> Limiter:
        """The named actor holding the bucket of `state` (one per build folder and limit),
        created by the first caller, found by every other, kept while this executor lives
        (the stream of download waves shares one bucket)."""
        ray = self.connect()
        name = f"tld-ratelimit:{os.path.realpath(state)}:{calls}/{period_s:g}"
        if name not in self._limiters:
            actor = (
                ray.remote(TokenBucket)
                .options(name=name, namespace=NAMESPACE, get_if_exists=True, num_cpus=0)
                .remote(calls, period_s)
            )
            self._limiters[name] = ActorLimiter(actor)
        return self._limiters[name]


class ActorLimiter(WaitingLimiter):
    """A rate limiter whose bucket lives in a Ray actor (picklable: tasks carry it)."""

    def __init__(self, actor: Any) -> None:
        super().__init__()
        self.actor = actor

    def _update(self, *, take: bool, hold_s: float) -> float:
        wait: float = _ray().get(self.actor.update.remote(take, hold_s))
        return wait


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """Raise ConnectionError at once when `address` is a HOST:PORT nobody answers on (Ray
    itself retries for minutes)."""
    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit():
        return  # auto, None or a ray:// client address: Ray finds or refuses it quickly
    with socket.create_connection((host, int(port)), timeout=timeout_s):
        pass


def _read_probe(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _died(ray: Any, actor: Any) -> bool:
    """True when `actor` no longer answers (its process or node died)."""
    try:
        ray.get(actor.__ray_ready__.remote(), timeout=30)
    except ray.exceptions.RayError:
        return True
    return False


def _result(ray: Any, task: Task, get: Any) -> Any:
    """The task's result; a dead worker, node or actor becomes its TaskFailure, and the
    failure of the machine or configuration the task raised is raised here."""
    try:
        return get()
    except ray.exceptions.RayTaskError as exc:
        raise exc.cause from None
    except ray.exceptions.RayError as exc:
        return TaskFailure(task.name, f"worker process died: {type(exc).__name__}: {exc}", "")
