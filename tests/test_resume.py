"""Kill -9 at any moment, re-run: the outputs equal an uninterrupted build's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from small_build import snapshot

pytestmark = pytest.mark.slow

SMALL = [
    "--set",
    "synthetic.num_videos=2",
    "--set",
    "synthetic.width=256",
    "--set",
    "synthetic.height=144",
    "--set",
    "shard.max_bytes=400000",
]


def _tld_build(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "timelapse_d",
        "build",
        "--source",
        "synthetic",
        "--out",
        str(out),
        "--workers",
        "2",
        *SMALL,
    ]


def test_kill_nine_at_any_moment_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    subprocess.run(_tld_build(reference), check=True, capture_output=True)
    expected = snapshot(reference)
    assert expected["manifest"] and expected["shards"]

    out = tmp_path / "killed"
    kills = 0
    for delay in (0.8, 2.0, 3.5, 5.0, 7.0, 9.0):
        process = subprocess.Popen(
            _tld_build(out),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 3, "the build finished too fast for the kill points to land"
    status = subprocess.run(
        [sys.executable, "-m", "timelapse_d", "status", str(out)], capture_output=True, text=True
    )
    assert status.returncode == 0
    final = subprocess.run(_tld_build(out), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert snapshot(out) == expected
    assert not list(out.rglob("*.part"))
