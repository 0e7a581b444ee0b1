"""Rate limiters shared by every process of a build: a state file on one machine, or the state
of one actor on a cluster (file locks do not hold across machines or on NFS).

A limiter is a token bucket holding at most one token, refilled at ``(calls - 1) / period``
tokens per second: two calls are never closer than ``period / (calls - 1)``, so any window of
``period`` seconds, closed or open, holds at most ``calls`` calls, with one refill interval of
slack against network jitter. The state is (tokens, time of the last refill) in wall-clock
seconds, so processes agree. :class:`RateLimiter` keeps it in a JSON file guarded by
``fcntl.flock`` (a lost or damaged file starts a full bucket); :class:`TokenBucket` keeps it in
memory, for one process (a Ray actor) that every caller asks.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


class Limiter(Protocol):
    """What a download or an API client needs of a rate limiter."""

    def acquire(self) -> float:
        """Block until a call may start; return the seconds waited."""
        ...

    def defer(self, seconds: float) -> None:
        """Hold every caller for `seconds` from now (a server asked everyone to wait)."""
        ...


def refill_rate(calls: int, period_s: float) -> float:
    """Tokens per second of a limit of `calls` per `period_s` (ValueError when impossible)."""
    if calls < 2 or period_s <= 0:
        raise ValueError(f"a rate limit needs at least 2 calls per positive period, got {calls}")
    return (calls - 1) / period_s


def bucket_step(
    state: tuple[float, float], now: float, rate: float, *, take: bool, hold_s: float = 0.0
) -> tuple[tuple[float, float], float]:
    """Refill the bucket `state` (tokens, updated) to `now`, hold it `hold_s`, then take a token.

    Returns the new state and 0.0 when a token was taken (or none was asked), else the
    unchanged-but-refilled state and the seconds to wait before asking again.
    """
    tokens, updated = state
    if now > updated:
        tokens, updated = min(1.0, tokens + (now - updated) * rate), now
    updated = max(updated, now + hold_s)
    if take:
        wait = (updated - now) + max(0.0, 1.0 - tokens) / rate
        if wait > 0.0:
            return (tokens, updated), wait
        tokens -= 1.0
    return (tokens, updated), 0.0


class WaitingLimiter:
    """acquire() and defer() over one `_update` of the shared state (which subclasses keep)."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._sleep = sleep

    def acquire(self) -> float:
        """Block until a call may start; return the seconds waited."""
        waited = 0.0
        while True:
            wait = self._update(take=True, hold_s=0.0)
            if wait <= 0.0:
                return waited
            self._sleep(wait)
            waited += wait

    def defer(self, seconds: float) -> None:
        """Hold every caller for `seconds` from now (a server asked everyone to wait)."""
        self._update(take=False, hold_s=seconds)

    def _update(self, *, take: bool, hold_s: float) -> float:
        raise NotImplementedError


class RateLimiter(WaitingLimiter):
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
        super().__init__(sleep)
        self.path = path
        self.rate = refill_rate(calls, period_s)
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)

    def _update(self, *, take: bool, hold_s: float) -> float:
        """Under the lock: refill, then take a token (0.0 returned) or return the wait."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state, wait = bucket_step(
                _read_state(fd), self._clock(), self.rate, take=take, hold_s=hold_s
            )
            if wait <= 0.0:
                _write_state(fd, *state)
            return wait
        finally:
            os.close(fd)  # closing releases the lock


class TokenBucket:
    """The bucket's state in this process: a Ray actor holding it serves a whole cluster."""

    def __init__(self, calls: int, period_s: float) -> None:
        self.rate = refill_rate(calls, period_s)
        self.state = (1.0, 0.0)

    def update(self, take: bool, hold_s: float) -> float:
        """One `bucket_step` at the current time: 0.0 when a token was taken, else the wait."""
        self.state, wait = bucket_step(self.state, time.time(), self.rate, take=take, hold_s=hold_s)
        return wait


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
