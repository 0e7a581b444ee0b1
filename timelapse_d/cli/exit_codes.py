"""How `tld` ends: the exit code of each kind of error and the one line it prints.

Exit codes (README "Exit codes"): 0 done; 1 an incomplete build, or work that failed (a source
unreachable after its retries, an encode); 2 a configuration, input or data error; 3 a failure
of the machine (disk full, I/O error); 130/143 interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

from timelapse_d.errors import (
    AcquireError,
    ConfigError,
    DataError,
    EncodeError,
    HostError,
    MediaError,
    TldError,
)
from timelapse_d.runs import is_host_failure

INCOMPLETE = 1
INPUT = 2
HOST = 3
SIGINT = 130
SIGTERM = 143

# The most specific class of an error picks its code (a RunLocked is a ConfigError: 2).
EXIT_CODES: dict[type[TldError], int] = {
    TldError: INCOMPLETE,
    AcquireError: INCOMPLETE,
    EncodeError: INCOMPLETE,
    ConfigError: INPUT,
    DataError: INPUT,
    MediaError: INPUT,
    HostError: HOST,
}
RESUME = "finished work is kept: run the same command again to go on from here"


def exit_code(exc: TldError) -> int:
    """The code of the nearest class of ``exc`` in :data:`EXIT_CODES`."""
    return next(EXIT_CODES[kind] for kind in type(exc).__mro__ if kind in EXIT_CODES)


def error_exit(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, the one line to print) for an error of timelapse-d or of the machine; None
    for anything else (a defect: its traceback is shown)."""
    if is_host_failure(exc):
        return HOST, f"error: {exc}; {RESUME}"
    if isinstance(exc, AcquireError):  # a source that stayed unreachable after every retry
        return exit_code(exc), f"error: {exc.error_class}: {exc.message}; {RESUME}"
    if isinstance(exc, TldError):
        return exit_code(exc), f"error: {exc}"
    return None
