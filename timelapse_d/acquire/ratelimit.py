"""A rate limiter shared by every process of a build through a small state file.

The limiter is a token bucket holding at most one token, refilled at ``(calls - 1) / period``
tokens per second: two calls are never closer than ``period / (calls - 1)``, so any window of
``period`` seconds, closed or open, holds at most ``calls`` calls, with one refill interval of
slack against network jitter. The state (tokens, time of the last refill, in wall-clock seconds
so processes agree) lives in a JSON file guarded by ``fcntl.flock``; a lost or damaged file
starts a full bucket.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path


class RateLimiter:
    """At most `calls` calls in any `period_s` window over all processes sharing `path`."""

    def __init__(
        self,
        path: Path,
        calls: int,
        period_s: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls < 2 or period_s <= 0:
            raise ValueError(
                f"a rate limit needs at least 2 calls per positive period, got {calls}"
            )
        self.path = path
        self.rate = (calls - 1) / period_s
        self._clock = clock
        self._sleep = sleep
        path.parent.mkdir(parents=True, exist_ok=True)

    def acquire(self) -> float:
        """Block until a call may start; return the seconds waited."""
        waited = 0.0
        while True:
            wait = self._update(take=True)
            if wait <= 0.0:
                return waited
            self._sleep(wait)
            waited += wait

    def defer(self, seconds: float) -> None:
        """Hold every caller for `seconds` from now (a server asked everyone to wait)."""
        self._update(take=False, hold_s=seconds)

    def _update(self, *, take: bool, hold_s: float = 0.0) -> float:
        """Under the lock: refill, then take a token (0.0 returned) or return the wait."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            tokens, updated = _read_state(fd)
            now = self._clock()
            if now > updated:
                tokens, updated = min(1.0, tokens + (now - updated) * self.rate), now
            updated = max(updated, now + hold_s)
            if take:
                wait = (updated - now) + max(0.0, 1.0 - tokens) / self.rate
                if wait > 0.0:
                    return wait
                tokens -= 1.0
            _write_state(fd, tokens, updated)
            return 0.0
        finally:
            os.close(fd)  # closing releases the lock


def _read_state(fd: int) -> tuple[float, float]:
    raw = os.pread(fd, 4096, 0)
    try:
        state = json.loads(raw)
        return float(state["tokens"]), float(state["updated"])
    except (ValueError, KeyError, TypeError):
        return 1.0, 0.0


def _write_state(fd: int, tokens: float, updated: float) -> None:
    payload = json.dumps({"tokens": tokens, "updated": updated}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, payload, 0)
