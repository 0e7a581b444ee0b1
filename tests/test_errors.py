"""One error root: every error class of the package is a TldError, and `tld` ends each kind
with one line and the exit code the README promises."""

from __future__ import annotations

import errno
import importlib
import inspect
import pkgutil

import pytest

import timelapse_d
from timelapse_d.cli.exit_codes import error_exit
from timelapse_d.errors import (
    AcquireError,
    ConfigError,
    DataError,
    DecodeError,
    EncodeError,
    HostError,
    ProbeError,
    TldError,
)
from timelapse_d.runs import RunLocked
from timelapse_d.shards.tar import FieldMismatch
from timelapse_d.stages.base import StageFailed
from timelapse_d.weights import MissingWeights


def _error_classes() -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for info in pkgutil.walk_packages(timelapse_d.__path__, "timelapse_d."):
        if info.name == "timelapse_d.__main__":  # runs the command line
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional dependency (torch, yt-dlp, ...) is not installed
            continue
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == info.name:
                found.add(obj)
    return found


def test_every_error_class_of_the_package_is_a_tld_error() -> None:
    classes = _error_classes()
    assert {ConfigError, DataError, FieldMismatch, MissingWeights} <= classes
    assert [c.__qualname__ for c in classes if not issubclass(c, TldError)] == []


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (ConfigError("filter.min_height expects a int"), 2, "error: filter.min_height"),
        (RunLocked("another tld command is writing"), 2, "error: another tld command"),
        (DataError("x.parquet is not a readable Parquet file"), 2, "error: x.parquet is not"),
        (FieldMismatch("flow-000000.tar is missing"), 2, "error: flow-000000.tar"),
        (ProbeError("a.mp4", "not_a_video", "not a video"), 2, "error: a.mp4: not a video"),
        (DecodeError("a.mp4", "truncated", "ends early"), 2, "error: a.mp4: ends early"),
        (AcquireError("network", "connection reset"), 1, "error: network: connection reset; "),
        (EncodeError("ffmpeg failed (1)"), 1, "error: ffmpeg failed (1)"),
        (HostError("ffmpeg: No space left on device"), 3, "error: ffmpeg: No space left"),
        (OSError(errno.ENOSPC, "No space left on device"), 3, "error: [Errno 28] No space"),
        (StageFailed("shard: 1 task(s) failed"), 1, "error: shard: 1 task(s) failed"),
        (TldError("something else"), 1, "error: something else"),
    ],
)
def test_each_kind_of_error_ends_with_one_line_and_its_code(
    error: Exception, code: int, text: str
) -> None:
    ending = error_exit(error)
    assert ending is not None
    assert ending[0] == code
    assert ending[1].startswith(text) and "\n" not in ending[1]


@pytest.mark.parametrize("error", [ValueError("a defect"), OSError(errno.ENOENT, "gone")])
def test_other_errors_keep_their_traceback(error: Exception) -> None:
    assert error_exit(error) is None
