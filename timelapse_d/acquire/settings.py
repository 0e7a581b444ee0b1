"""Typed settings of acquisition: the Flickr search, YouTube listing, downloads and retries.

Each section is a plain dataclass so it can hang under the build config (``flickr.query``,
``download.max_height``, ``download.retry.attempts``); this module imports nothing of the
project, so the build config can import it. :mod:`timelapse_d.acquire.checks` validates them.
Secrets never live here (see :mod:`timelapse_d.acquire.credentials`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

FLICKR_REST_URL = "https://api.flickr.com/services/rest/"
# Licence kinds (see licenses.py) that allow redistributing cut and re-encoded clips with
# attribution: CC BY and BY-SA, and works without copyright restrictions. NonCommercial and
# NoDerivs licences are left out by default; add "by-nc", "by-nd"... to accept them.
DEFAULT_LICENSE_KINDS = ["by", "by-sa", "cc0", "pdm", "nkcr", "usgov"]
FLICKR_MAX_PER_PAGE = 500


@dataclass
class RetryConfig:
    """Exponential backoff with full jitter for transient errors (5xx, 429, timeouts)."""

    attempts: int = 5  # tries per call or download, the first included
    base_delay_s: float = 1.0  # the wait before retry k is uniform in [0, base * 2**k]
    max_delay_s: float = 60.0  # ... capped here
    # A server asking to wait longer than this ends the item as rate_limited (the next run
    # retries it) instead of holding a worker.
    max_retry_after_s: float = 900.0


@dataclass
class FlickrConfig:
    """`--source flickr`: which videos to find and how hard to call the API."""

    rest_url: str = FLICKR_REST_URL  # a mirror or a test stand-in may answer instead
    query: str = ""  # free text (title, description, tags)
    tags: list[str] = field(default_factory=list)
    tag_mode: str = "any"  # "any" or "all" of the tags
    licenses: list[str] = field(default_factory=lambda: list(DEFAULT_LICENSE_KINDS))
    min_upload_date: str = "2004-01-01"  # YYYY-MM-DD or ISO date-time, UTC
    max_upload_date: str | None = None  # None: the time of the first run, kept for resumes
    max_videos: int = 0  # videos taken from the search (available or not); 0: every match
    per_page: int = FLICKR_MAX_PER_PAGE
    result_cap: int = 4000  # results Flickr serves per query; larger windows are split
    calls_per_period: int = 3600  # API calls allowed per period, shared by all processes
    period_s: float = 3600.0
    timeout_s: float = 30.0
    credentials_file: str | None = None  # default ~/.config/timelapse-d/credentials.yaml
    retry: RetryConfig = field(default_factory=RetryConfig)


@dataclass
class YoutubeConfig:
    """`--source youtube`: one search, playlist or channel, listed into single videos."""

    query: str | None = None
    playlist: str | None = None  # URL or id
    channel: str | None = None  # URL
    max_videos: int = 100  # search results to list; playlists and channels: 0 = all


@dataclass
class DownloadConfig:
    """How every source's videos are fetched (yt-dlp) and checked."""

    max_height: int = 1080  # the tallest video stream picked; H.264 MP4 preferred
    format: str | None = None  # a yt-dlp format selector replacing the default choice
    proxy: str | None = None  # credentials belong in HTTPS_PROXY, which yt-dlp also reads
    cookies: str | None = None  # Netscape cookies file (sign-in for bot checks)
    workers: int = 4  # downloads in flight
    timeout_s: float = 30.0  # socket timeout
    # Largest file fetched, in bytes; 0: sized for max_height (2 GiB at 1080p, in proportion
    # to the picture area: 0.9 GiB at 720p, 8 GiB at 2160p). A larger announced size is
    # refused before the transfer, a stream passing it is stopped: `unsupported`.
    max_bytes: int = 0
    # Wall-clock limit of one download attempt, in seconds (a server dripping bytes slower
    # than the socket timeout notices): `network`, retried like other network errors.
    attempt_timeout_s: float = 3600.0
    calls_per_period: int = 0  # download starts per period over all workers; 0: no limit
    period_s: float = 60.0
    retry_failed: bool = False  # also retry failures recorded as permanent
    # False: stream the videos, `videos_in_flight` at a time (download, analyse, encode the
    # clips that may be kept, delete the files), so the disk holds one wave of sources.
    keep_sources: bool = False
    videos_in_flight: int = 8
    retry: RetryConfig = field(default_factory=RetryConfig)

    def byte_cap(self) -> int:
        """`max_bytes`, or the default sized for `max_height`."""
        return self.max_bytes or int(2 * 2**30 * (self.max_height / 1080) ** 2)
