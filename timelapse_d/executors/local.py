"""The local executor: in-process (workers=1) or a process pool on this machine.

A task's unexpected exception never stops the others: it is returned as a
:class:`~timelapse_d.executors.base.TaskFailure` carrying the traceback, and the stage records
it (no completion marker) so `tld status` shows it and a re-run retries it. A failure of the
machine (:class:`timelapse_d.runs.HostError`, or an OSError such as a full disk) is no task's
failure: it stops the run. A worker killed by a native crash (SIGSEGV, SIGKILL) turns the tasks
in flight into failures and the rest of the queue goes on in a fresh pool.

Pool workers die with the command: they ignore SIGINT (the command stops them), the command
terminates them when it stops early, and each exits by itself when the command's process ends
(killed with SIGKILL, say); the forkserver then exits as its last worker does.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timelapse_d.executors.base import Task, TaskFailure, run_task
from timelapse_d.executors.progress import Progress

if TYPE_CHECKING:
    from timelapse_d.acquire.ratelimit import Limiter


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Have Linux send `sig` to this process when its parent exits (no-op elsewhere).

    Also usable as a subprocess `preexec_fn`, so helper programs do not outlive their caller.
    """
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent exited before the request took effect
        os._exit(1)


def _exit_when_gone(pid: int) -> None:
    """Block until process `pid` ends, then end this process (children get SIGKILL through
    `die_with_parent`)."""
    try:
        handle = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (not Linux 5.3+): poll
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
    select.select([handle], [], [])
    os._exit(1)


def _init_worker(command_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_gone, args=(command_pid,), daemon=True).start()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's processes now (an interrupt or a failure of the machine)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


class _Pool:
    """A process pool kept across a command's stages (workers import their modules once)."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("forkserver")
        self.workers = workers
        self.executor = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)
        )
        self.broken = False


def _run_pool(queue: list[Task], pool: _Pool) -> Iterator[tuple[Task, Any]]:
    """Drain `queue` (last item first) through `pool` until done or the pool breaks.

    A worker killed by a native crash breaks the whole pool: the tasks in flight are reported
    as failures, the pool is marked broken, and the caller goes on with a fresh one.
    """
    pending: dict[Future[Any], Task] = {}
    while queue or pending:
        while queue and len(pending) < 2 * pool.workers:
            task = queue.pop()
            pending[pool.executor.submit(run_task, task)] = task
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            task = pending.pop(future)
            try:
                result = future.result()
            except BrokenProcessPool as exc:
                pool.broken = True
                for lost in [task, *pending.values()]:
                    yield lost, TaskFailure(lost.name, f"worker process died: {exc}", "")
                return
            yield task, result


class LocalExecutor:
    """Runs tasks in this process (workers <= 1) or in a pool of `workers` processes.

    The pool keeps at most 2 x workers tasks in flight, so arguments are not all pickled up
    front; a single task runs in this process. The pool serves every stage the executor runs
    (a streamed build's waves included) until the executor is dropped.
    """

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pools: dict[int, _Pool] = {}  # by size; shut down when this executor goes

    def map(self, tasks: Sequence[Task], desc: str = "tasks") -> Iterator[tuple[Task, Any]]:
        """Run tasks, yielding (task, result or TaskFailure) as each completes: `workers` at a
        time, or as many as the tasks' `concurrency` asks (a download pool)."""
        progress = Progress(desc, len(tasks))
        workers = max((t.resources.concurrency for t in tasks), default=0) or self.workers
        try:
            if workers <= 1 or len(tasks) <= 1:
                for task in tasks:
                    yield task, run_task(task)
                    progress.step()
                return
            queue = list(reversed(tasks))
            while queue:
                pool = self._pools.get(workers)
                if pool is None or pool.broken:
                    if pool is not None:
                        pool.executor.shutdown()
                    pool = self._pools[workers] = _Pool(workers)
                try:
                    for task, result in _run_pool(queue, pool):
                        yield task, result
                        progress.step()
                except BaseException:  # an interrupt, a failure of the machine: stop now
                    del self._pools[workers]
                    _stop_workers(pool.executor)
                    raise
        finally:
            progress.close()

    def check_storage(self, folder: Path) -> None:
        """Nothing to check: every task runs on this machine."""

    def rate_limiter(self, state: Path, calls: int, period_s: float) -> Limiter:
        """A limiter kept in the file `state`, shared by this machine's processes."""
        from timelapse_d.acquire.ratelimit import RateLimiter

        return RateLimiter(state, calls, period_s)
