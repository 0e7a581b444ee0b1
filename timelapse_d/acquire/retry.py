"""Classes of acquisition errors, and retries with exponential backoff and full jitter.

Every expected failure of a remote call or a download becomes an :class:`AcquireError` of one
class. Classes marked ``backoff`` (rate_limited, network) are retried within the run; the
others end the item at once. ``permanent`` classes are not retried by a later run either,
unless asked (``download.retry_failed``); ``bot_check`` is neither (new cookies or another
address may fix it, hammering will not).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

from timelapse_d.acquire.settings import RetryConfig
from timelapse_d.errors import AcquireError

LOG = logging.getLogger("timelapse_d")
T = TypeVar("T")


def status_class(status: int) -> str:
    """The error class of an HTTP status that is not a success."""
    if status in (404, 410):
        return "removed"
    if status in (401, 403):
        return "private"
    if status == 451:
        return "geo_blocked"
    if status == 429:
        return "rate_limited"
    if status == 408 or status >= 500:
        return "network"
    return "unsupported"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay seconds or an HTTP date); None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, config: RetryConfig, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(max_delay, base * 2**attempt)]; `attempt` counts from 0."""
    ceiling = min(config.max_delay_s, config.base_delay_s * 2.0**attempt)
    return (rng or random).uniform(0.0, ceiling)


def call_with_retry(
    fn: Callable[[], T],
    config: RetryConfig,
    *,
    what: str,
    on_server_wait: Callable[[float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> tuple[T, int]:
    """Call `fn` until it returns; return its value and the attempts made.

    An AcquireError of a backoff class is retried after a jittered exponential delay, or after
    the server's Retry-After when that is longer (reported to `on_server_wait` first, so a shared
    rate limiter can hold every worker). Other errors, the last attempt's error and a
    Retry-After above ``max_retry_after_s`` are raised with ``attempts`` set.
    """
    attempt = 0
    while True:
        try:
            return fn(), attempt + 1
        except AcquireError as exc:
            exc.attempts = attempt + 1
            server_wait = exc.retry_after_s
            if (
                not exc.kind.backoff
                or exc.attempts >= config.attempts
                or (server_wait or 0.0) > config.max_retry_after_s
            ):
                raise
            delay = backoff_delay(attempt, config, rng)
            if server_wait is not None:
                delay = max(delay, server_wait)
                if on_server_wait is not None:
                    on_server_wait(server_wait)
            LOG.info(
                "%s: %s (%s), retry %d of %d in %.2f s",
                what,
                exc.error_class,
                exc.message,
                exc.attempts,
                config.attempts - 1,
                delay,
            )
            sleep(delay)
            attempt += 1
