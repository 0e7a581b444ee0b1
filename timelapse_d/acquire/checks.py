"""Validation of the acquisition settings: ConfigError at start, saying what to change."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from timelapse_d.acquire.settings import (
    FLICKR_MAX_PER_PAGE,
    DownloadConfig,
    FlickrConfig,
    RetryConfig,
    YoutubeConfig,
)
from timelapse_d.errors import ConfigError


def check_flickr(config: FlickrConfig) -> None:
    if not config.query and not config.tags:
        raise ConfigError("--source flickr needs a query or tags (flickr.query, flickr.tags)")
    if config.tag_mode not in ("any", "all"):
        raise ConfigError(f"flickr.tag_mode must be 'any' or 'all', got {config.tag_mode!r}")
    if not 1 <= config.per_page <= FLICKR_MAX_PER_PAGE:
        raise ConfigError(f"flickr.per_page must be 1 to {FLICKR_MAX_PER_PAGE}")
    if config.result_cap < config.per_page:
        raise ConfigError("flickr.result_cap must be at least flickr.per_page")
    if config.max_videos < 0:
        raise ConfigError("flickr.max_videos must be 0 (no limit) or more")
    check_rate("flickr", config.calls_per_period, config.period_s)
    start = parse_date(config.min_upload_date, "flickr.min_upload_date")
    if config.max_upload_date is not None:
        end = parse_date(config.max_upload_date, "flickr.max_upload_date")
        if end < start:
            raise ConfigError("flickr.max_upload_date is before flickr.min_upload_date")
    check_retry(config.retry, "flickr")


def check_youtube(config: YoutubeConfig) -> None:
    given = [name for name in ("query", "playlist", "channel") if getattr(config, name)]
    if len(given) != 1:
        raise ConfigError(
            "--source youtube needs exactly one of youtube.query, youtube.playlist or "
            f"youtube.channel (given: {', '.join(given) or 'none'})"
        )
    if config.max_videos < 0 or (config.query and config.max_videos == 0):
        raise ConfigError("youtube.max_videos must be positive for a search")


def check_download(config: DownloadConfig) -> None:
    if config.max_height < 1:
        raise ConfigError("download.max_height must be positive")
    if config.workers < 1 or config.videos_in_flight < 1:
        raise ConfigError("download.workers and download.videos_in_flight must be at least 1")
    if config.max_bytes < 0 or config.attempt_timeout_s <= 0 or config.timeout_s <= 0:
        raise ConfigError(
            "download.max_bytes must be 0 (sized for max_height) or more, "
            "download.attempt_timeout_s and download.timeout_s positive"
        )
    if config.calls_per_period:
        check_rate("download", config.calls_per_period, config.period_s)
    if config.cookies and not Path(config.cookies).expanduser().is_file():
        raise ConfigError(f"download.cookies: no such file {config.cookies}")
    check_retry(config.retry, "download")


def check_retry(config: RetryConfig, section: str) -> None:
    if config.attempts < 1:
        raise ConfigError(f"{section}.retry.attempts must be at least 1")
    if min(config.base_delay_s, config.max_delay_s, config.max_retry_after_s) < 0:
        raise ConfigError(f"{section}.retry delays must not be negative")


def check_rate(section: str, calls: int, period_s: float) -> None:
    """A limit of `calls` per `period_s` needs at least 2 calls and a positive period."""
    if calls < 2 or period_s <= 0:
        raise ConfigError(
            f"{section}.calls_per_period must be at least 2 and {section}.period_s positive"
        )


def parse_date(value: str, key: str) -> int:
    """Unix time of a YYYY-MM-DD or ISO 8601 date-time (UTC unless it names an offset)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{key} must be YYYY-MM-DD or an ISO date-time, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
