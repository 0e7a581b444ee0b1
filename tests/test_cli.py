"""The `tld` command line: help everywhere, clear errors at start, one build per directory."""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TLD = [shutil.which("tld") or "tld"]


def tld(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TLD, *args], capture_output=True, text=True, timeout=120)


README_COMMANDS = sorted(
    set(re.findall(r"^tld ([a-z]+)", (Path(__file__).parents[1] / "README.md").read_text(), re.M))
)


@pytest.mark.parametrize("command", [[], *([c] for c in README_COMMANDS)])
def test_every_command_the_readme_shows_has_help(command: list[str]) -> None:
    result = tld(*command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout, result.stderr


def test_python_m_runs_the_same_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "timelapse_d", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("Options:")[1] == tld("--help").stdout.split("Options:")[1]


def test_the_readme_shows_every_command() -> None:
    assert {"build", "precompute", "rehydrate", "split", "train", "weights"} <= set(README_COMMANDS)


def test_schema_prints_the_manifest_docs() -> None:
    readme = Path(__file__).resolve().parents[1] / "manifests" / "README.md"
    assert tld("schema").stdout == readme.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "local"], "--source local needs --input"),
        (["--source", "local", "--input", "/no/such/dir"], "input not found"),
        (["--set", "filter.nope=1"], "unknown config key 'filter.nope'"),
        (["--set", "filter.min_height=abc"], "filter.min_height expects an int"),
    ],
)
def test_configuration_errors_fail_at_start_with_how_to_fix(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = tld("build", "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_build_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "run").mkdir(parents=True)
    with open(out / "run" / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = tld("build", "--out", str(out))
    assert result.returncode == 2 and "another tld command is writing" in result.stderr


def test_status_of_an_empty_run_says_incomplete(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "timelapse_d", "status", str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "INCOMPLETE" in result.stdout
