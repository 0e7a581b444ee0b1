"""The run directory: completion markers, stats, logs and the resolved config.

Layout under ``OUT/run/``::

    config.yaml                 resolved config of the latest run
    build.log                   log lines of every run, appended
    <stage>/<task>.done.json    completion marker, written last, with the task's fingerprint
                                and the names and sizes of the outputs it promises
    <stage>/<task>.*            the task's outputs, named from stage and task (retries overwrite)
    failures/<stage>/<task>.txt traceback of a task that failed unexpectedly (no marker)

A task is complete when its marker reads, carries the fingerprint the current run computes and
every output it lists exists with its recorded size; any other state (no marker, a damaged
one, another fingerprint, an output removed or cut short) means the task runs again.

Failures of the machine rather than of the input (a full disk, an I/O error, a killed helper
process) raise :class:`HostError`: they are never recorded as a property of an item, the
command stops with one line, and a re-run does the work again.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from timelapse_d.errors import ConfigError, HostError

LOG = logging.getLogger("timelapse_d")
# Suffix of the tool's own temporary files: taking the lock removes these, and no others.
TEMP_SUFFIX = ".tld-part"
# Folders under OUT the tool writes into (besides OUT itself).
TOOL_FOLDERS = ("run", "shards", "sources", "annotations", "previews")
# errno values that say the machine failed, not the item being processed.
HOST_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM})


class RunLocked(ConfigError):
    """Another process holds this output directory."""


def host_error_text(text: str | None) -> bool:
    """True when a tool's message (ffmpeg's stderr) reports a failure of the machine."""
    return text is not None and any(os.strerror(code) in text for code in HOST_ERRNOS)


def is_host_failure(exc: BaseException) -> bool:
    """HostError, or an OSError of the machine (by errno, or by message where a library such
    as pyarrow leaves the errno out)."""
    if isinstance(exc, HostError):
        return True
    return isinstance(exc, OSError) and (exc.errno in HOST_ERRNOS or host_error_text(str(exc)))


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (setting it to read it
    would briefly change it for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    The file gets the mode a plain `open` would give it (0666 less the umask).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, write: Callable[[IO[bytes]], object]) -> None:
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


def file_identity(path: str | Path) -> list[int]:
    """[size, modification time in ns] of a file: what a task key holds of an input file."""
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime_ns]


def file_sizes(out: Path, paths: Sequence[Path]) -> dict[str, int]:
    """{path relative to `out`: size} of files a marker promises."""
    return {p.relative_to(out).as_posix(): p.stat().st_size for p in paths}


def outputs_present(out: Path, sizes: Any) -> bool:
    """True when `sizes` ({path under `out`: size}, as a marker lists them) all hold."""
    if not isinstance(sizes, dict):
        return False
    for name, size in sizes.items():
        try:
            if (out / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


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

    def matching_marker(self, stage: str, task: str, fingerprint: str) -> dict[str, Any] | None:
        """The marker of a task completed with this fingerprint, its outputs unchecked; None
        when there is none (a damaged marker counts as none)."""
        try:
            marker = read_json(self.marker(stage, task))
        except (OSError, ValueError):
            return None
        if not isinstance(marker, dict) or marker.get("fingerprint") != fingerprint:
            return None
        if not isinstance(marker.get("stats", {}), dict):
            return None
        return marker

    def done_stats(self, stage: str, task: str, fingerprint: str) -> dict[str, Any] | None:
        """The stats of a task completed with this fingerprint whose outputs are all in place;
        None when it is not (a damaged marker counts as none)."""
        marker = self.matching_marker(stage, task, fingerprint)
        if marker is None:
            return None
        if not outputs_present(self.out, marker.get("outputs", {})):
            LOG.info("%s %s: its outputs are missing or changed; doing it again", stage, task)
            return None
        stats: dict[str, Any] = marker.get("stats", {})
        return stats

    def is_done(self, stage: str, task: str, fingerprint: str) -> bool:
        return self.done_stats(stage, task, fingerprint) is not None

    def mark_done(
        self,
        stage: str,
        task: str,
        fingerprint: str,
        stats: dict[str, Any] | None = None,
        outputs: Sequence[Path] = (),
    ) -> None:
        """Record the task as done; `outputs` are files under OUT whose size a re-run checks."""
        marker = {
            "fingerprint": fingerprint,
            "stats": stats or {},
            "outputs": file_sizes(self.out, outputs),
        }
        write_json(self.marker(stage, task), marker)
        self.failure_path(stage, task).unlink(missing_ok=True)

    def check_space(self, min_free_mb: int, stage: str) -> None:
        """Raise HostError when OUT's disk has less than `min_free_mb` MB free."""
        free = shutil.disk_usage(self.out).free
        if free < min_free_mb * 1e6:
            raise HostError(
                f"only {free / 1e6:.0f} MB free on the disk of {self.out} before {stage} "
                f"(min_free_mb is {min_free_mb}): free some space"
            )

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
        """Hold the run's lock: one command writing into the output directory at a time.

        The tool's own temporary files left by a killed command are removed once it is held.
        """
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"{self.out} is a file; --out must name a folder")
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise RunLocked(
                    f"another tld command is writing to {self.out} (lock {self.root / 'lock'}); "
                    "wait for it or stop it first"
                ) from exc
            self._remove_temporary_files()
            yield

    def _remove_temporary_files(self) -> None:
        pattern = f".*{TEMP_SUFFIX}"
        leftovers = list(self.out.glob(pattern))
        for folder in TOOL_FOLDERS:
            leftovers += (self.out / folder).rglob(pattern)
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)

    def start_logging(self) -> logging.Handler:
        """Append this run's log lines to OUT/run/build.log."""
        self.root.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.root / "build.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        return handler
