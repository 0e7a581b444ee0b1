"""The run directory: completion markers, stats, logs and the resolved config.

Layout under ``OUT/run/``::

    config.yaml                 resolved config of the latest run
    build.log                   log lines of every run, appended
    <stage>/<task>.done.json    completion marker, written last, with the task's fingerprint
    <stage>/<task>.*            the task's outputs, named from stage and task (retries overwrite)
    failures/<stage>/<task>.txt traceback of a task that failed unexpectedly (no marker)

A task is complete when its marker exists and carries the fingerprint the current run computes;
any other state (no marker, other fingerprint) means the task runs again and overwrites.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from timelapse_d.config import ConfigError

LOG = logging.getLogger("timelapse_d")


class RunLocked(ConfigError):
    """Another process holds this output directory."""


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file through `write(fileobj)` so readers never see a partial file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def write_json(path: Path, data: Any) -> None:
    payload = json.dumps(data, indent=2, sort_keys=True, default=str).encode()
    write_atomic(path, lambda fh: fh.write(payload))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class RunDir:
    """Markers and bookkeeping for one build output directory."""

    out: Path

    @property
    def root(self) -> Path:
        return self.out / "run"

    @property
    def summary_path(self) -> Path:
        """Written last by a build that ran to its end; removed when a build starts."""
        return self.root / "summary.json"

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def marker(self, stage: str, task: str) -> Path:
        return self.stage_dir(stage) / f"{task}.done.json"

    def done_stats(self, stage: str, task: str, fingerprint: str) -> dict[str, Any] | None:
        """The stats of a task completed with this fingerprint; None when it is not."""
        try:
            marker = read_json(self.marker(stage, task))
        except (OSError, ValueError):
            return None
        return marker.get("stats", {}) if marker.get("fingerprint") == fingerprint else None

    def is_done(self, stage: str, task: str, fingerprint: str) -> bool:
        return self.done_stats(stage, task, fingerprint) is not None

    def mark_done(
        self, stage: str, task: str, fingerprint: str, stats: dict[str, Any] | None = None
    ) -> None:
        write_json(self.marker(stage, task), {"fingerprint": fingerprint, "stats": stats or {}})
        self.failure_path(stage, task).unlink(missing_ok=True)

    def failure_path(self, stage: str, task: str) -> Path:
        return self.root / "failures" / stage / f"{task}.txt"

    def record_failure(self, stage: str, task: str, text: str) -> None:
        path = self.failure_path(stage, task)
        write_atomic(path, lambda fh: fh.write(text.encode()))

    def failures(self) -> dict[str, list[str]]:
        """Tasks that failed unexpectedly in the latest attempt, by stage."""
        found: dict[str, list[str]] = {}
        base = self.root / "failures"
        for path in sorted(base.glob("*/*.txt")) if base.exists() else []:
            found.setdefault(path.parent.name, []).append(path.stem)
        return found

    def save_config(self, config: dict[str, Any]) -> None:
        text = yaml.safe_dump(config, sort_keys=True).encode()
        write_atomic(self.root / "config.yaml", lambda fh: fh.write(text))

    @contextmanager
    def exclusive(self):
        """Hold the run's lock: one build per output directory at a time.

        Temporary files left by a killed build are removed once the lock is held.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise RunLocked(
                    f"another build is running on {self.out} (lock {self.root / 'lock'}); "
                    "wait for it or stop it first"
                ) from exc
            for leftover in self.out.rglob(".*.part"):
                leftover.unlink(missing_ok=True)
            yield

    def start_logging(self) -> logging.Handler:
        """Append this run's log lines to OUT/run/build.log."""
        self.root.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.root / "build.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        return handler
