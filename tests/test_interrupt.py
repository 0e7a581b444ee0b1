"""Stopping a build: its worker processes and ffmpeg never outlive it, SIGINT and SIGTERM end
it with one line, and the re-run gives what an uninterrupted build gives."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from small_build import build_command, build_into, last_line, small_input, snapshot, tld

pytestmark = pytest.mark.slow
WAIT_S = 120.0  # generous bound of the waits below; the outcome never depends on it


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_input(tmp_path_factory.mktemp("input"), videos=3)


@pytest.fixture(scope="module")
def reference(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return snapshot(build_into(source, tmp_path_factory.mktemp("reference") / "out"))


def _session(sid: int) -> list[int]:
    """Processes of session `sid` (from /proc; field 6 of stat is the session id)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


def _start(source: Path, out: Path) -> subprocess.Popen[str]:
    """A --workers 2 build in its own session, once its pool workers are running."""
    command = [sys.executable, "-m", "timelapse_d", *build_command(source, out)]
    # The build must meet SIGINT as a terminal's Ctrl-C would, whatever this process inherited
    # (an ignored or blocked SIGINT passes on to children through exec).
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        process = subprocess.Popen(
            command,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        signal.signal(signal.SIGINT, handler)
    # main, forkserver and two workers (plus the resource tracker, ffmpeg)
    _wait_for(lambda: len(_session(process.pid)) >= 4, "the pool workers")
    return process


def _sigint_state() -> str:
    """How this process treats SIGINT, for a failure message."""
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    return f"test process: SIGINT handler {signal.getsignal(signal.SIGINT)}, blocked {blocked}"


def _start_stopped_mid_build(source: Path, out: Path) -> subprocess.Popen[str]:
    """A build started as :func:`_start`, then frozen (SIGSTOP to its session) while it still has
    work left: its summary, written last, does not exist yet. A build that a busy machine let
    finish before the freeze is thrown away and started again."""
    for _ in range(5):
        process = _start(source, out)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGSTOP)
        if process.poll() is None and not (out / "run" / "summary.json").exists():
            return process
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)
        process.communicate()
        shutil.rmtree(out, ignore_errors=True)
    pytest.fail("every build finished before it could be stopped mid-way")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_only_the_main_process_leaves_no_worker(source: Path, tmp_path: Path) -> None:
    process = _start(source, tmp_path / "out")
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    _wait_for(lambda: not _session(process.pid), "the workers to exit")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_stop_with_one_line_and_the_rerun_completes(
    source: Path, reference: dict, tmp_path: Path, sig: int, code: int
) -> None:
    out = tmp_path / "out"
    process = _start_stopped_mid_build(source, out)
    # SIGINT goes to the whole group, as a Ctrl-C in a terminal does; SIGTERM to the main only.
    # Both wait, pending, until the frozen build continues.
    (os.killpg if sig == signal.SIGINT else os.kill)(process.pid, sig)
    os.killpg(process.pid, signal.SIGCONT)
    _, stderr = process.communicate()
    assert process.returncode == code, f"{_sigint_state()}\n{stderr}"
    assert last_line(stderr) == "interrupted: re-run the same command to resume"
    assert "Traceback" not in stderr
    _wait_for(lambda: not _session(process.pid), "the workers to exit")
    assert tld(*build_command(source, out)).returncode == 0
    assert snapshot(out) == reference
