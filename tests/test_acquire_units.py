"""Acquisition building blocks: retries, the shared rate limiter, licences, credentials, error
classes, URL lists and attribution."""

from __future__ import annotations

import multiprocessing
import random
import sys
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from standins.flickr_server import LICENSES
from standins.host import most_in_window
from yt_dlp.networking.common import Response
from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.utils import DownloadError

from timelapse_d.acquire.checks import check_flickr
from timelapse_d.acquire.credentials import flickr_credentials
from timelapse_d.acquire.download import classify_error
from timelapse_d.acquire.licenses import License, accepted, license_kind
from timelapse_d.acquire.provenance import ProvenanceRecord, attribution_lines
from timelapse_d.acquire.ratelimit import RateLimiter
from timelapse_d.acquire.retry import backoff_delay, call_with_retry, parse_retry_after
from timelapse_d.acquire.settings import DEFAULT_LICENSE_KINDS, FlickrConfig, RetryConfig
from timelapse_d.acquire.urls import read_url_list
from timelapse_d.errors import AcquireError, ConfigError, DataError

# -- retries -----------------------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    later = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(later, now) == pytest.approx(30.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_is_full_jitter_under_a_growing_cap() -> None:
    config = RetryConfig(base_delay_s=1.0, max_delay_s=10.0)
    rng = random.Random(1)
    for attempt, cap in ((0, 1.0), (2, 4.0), (6, 10.0)):
        delays = [backoff_delay(attempt, config, rng) for _ in range(300)]
        assert min(delays) >= 0.0 and max(delays) <= cap
        assert max(delays) > 0.8 * cap and min(delays) < 0.2 * cap  # spread over [0, cap]


def _flaky(errors: list[AcquireError]):
    calls = []

    def fn() -> str:
        calls.append(time.monotonic())
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "done"

    return fn, calls


def test_retry_waits_at_least_retry_after_and_tells_the_limiter() -> None:
    slept, deferred = [], []
    fn, calls = _flaky(
        [AcquireError("rate_limited", "429", retry_after_s=12.0), AcquireError("network", "503")]
    )
    config = RetryConfig(attempts=3, base_delay_s=0.5, max_delay_s=1.0)
    value, attempts = call_with_retry(
        fn, config, what="t", sleep=slept.append, on_server_wait=deferred.append
    )
    assert (value, attempts, len(calls)) == ("done", 3, 3)
    assert slept[0] == 12.0 and 0.0 <= slept[1] <= 1.0
    assert deferred == [12.0]


def test_retry_stops_at_permanent_errors_and_after_the_last_attempt() -> None:
    fn, calls = _flaky([AcquireError("removed", "404")])
    with pytest.raises(AcquireError) as removed:
        call_with_retry(fn, RetryConfig(attempts=5), what="t", sleep=lambda s: None)
    assert len(calls) == 1 and removed.value.attempts == 1

    fn, calls = _flaky([AcquireError("network", "reset")] * 9)
    with pytest.raises(AcquireError) as network:
        call_with_retry(fn, RetryConfig(attempts=4), what="t", sleep=lambda s: None)
    assert len(calls) == 4 and network.value.attempts == 4

    fn, calls = _flaky([AcquireError("rate_limited", "429", retry_after_s=5000.0)])
    with pytest.raises(AcquireError):
        call_with_retry(fn, RetryConfig(max_retry_after_s=600), what="t", sleep=lambda s: None)
    assert len(calls) == 1  # a wait that long ends the item for a later run


# -- rate limiter ------------------------------------------------------------------------------


def _take(path: str, calls: int, period: float, count: int, out) -> None:
    limiter = RateLimiter(Path(path), calls, period)
    for _ in range(count):
        limiter.acquire()
        out.put(time.time())


def test_rate_limiter_holds_across_processes(tmp_path: Path) -> None:
    calls, period = 4, 0.5
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    args = (str(tmp_path / "bucket.json"), calls, period, 4, out)
    workers = [context.Process(target=_take, args=args) for _ in range(3)]
    for worker in workers:
        worker.start()
    times = [out.get(timeout=20) for _ in range(12)]
    for worker in workers:
        worker.join(timeout=10)
    assert most_in_window(times, period) <= calls
    # Not slower than the limit needs: 12 calls at (calls - 1) per period take ~1.8 s.
    assert max(times) - min(times) < 12 / ((calls - 1) / period) + 0.5


def test_rate_limiter_defer_holds_every_caller(tmp_path: Path) -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(tmp_path / "b.json", 3, 2.0, clock=lambda: now[0], sleep=sleep)
    other = RateLimiter(tmp_path / "b.json", 3, 2.0, clock=lambda: now[0], sleep=sleep)
    assert limiter.acquire() == 0.0
    assert other.acquire() == pytest.approx(1.0)  # (3 - 1) calls per 2 s: one per second
    limiter.defer(30.0)
    assert other.acquire() == pytest.approx(31.0)
    assert RateLimiter(tmp_path / "fresh.json", 2, 1.0).acquire() == 0.0


# -- licences ----------------------------------------------------------------------------------


def test_licence_kinds_come_from_urls_and_names() -> None:
    kinds = {lic_id: license_kind(name, url) for lic_id, name, url in LICENSES}
    assert kinds == {
        0: "arr", 1: "by-nc-sa", 2: "by-nc", 3: "by-nc-nd", 4: "by", 5: "by-sa", 6: "by-nd",
        7: "nkcr", 8: "usgov", 9: "cc0", 10: "pdm", 11: "by",
    }  # fmt: skip
    assert license_kind("Attribution-NonCommercial-NoDerivs License", "") == "by-nc-nd"
    assert license_kind("CC BY-SA 4.0", "") == "by-sa"
    assert license_kind("Some custom terms", "https://example.org/terms") == "unknown"


def test_licence_policy_defaults_to_redistribution_with_attribution() -> None:
    catalogue = [License(str(i), name, url) for i, name, url in LICENSES]
    assert [lic.id for lic in accepted(catalogue, DEFAULT_LICENSE_KINDS)] == [
        "4", "5", "7", "8", "9", "10", "11",
    ]  # fmt: skip
    assert [lic.id for lic in accepted(catalogue, ["by-nc", "6"])] == ["2", "6"]
    with pytest.raises(ConfigError, match="unknown licence"):
        accepted(catalogue, ["cc-by"])


# -- credentials -------------------------------------------------------------------------------


def test_missing_flickr_key_says_how_to_set_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    monkeypatch.delenv("FLICKR_API_SECRET", raising=False)
    with pytest.raises(ConfigError) as missing:
        flickr_credentials(tmp_path / "none.yaml")
    text = str(missing.value)
    assert "FLICKR_API_KEY and FLICKR_API_SECRET" in text
    assert "export FLICKR_API_KEY=" in text and str(tmp_path / "none.yaml") in text

    monkeypatch.setenv("FLICKR_API_KEY", "only-the-key")
    with pytest.raises(ConfigError, match=r"missing \(FLICKR_API_SECRET\)"):
        flickr_credentials(tmp_path / "none.yaml")


def test_credentials_file_and_masked_repr(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    monkeypatch.delenv("FLICKR_API_SECRET", raising=False)
    file = tmp_path / "credentials.yaml"
    file.write_text("flickr:\n  api_key: file-key-123\n  api_secret: file-secret-456\n")
    credentials = flickr_credentials(file)
    assert (credentials.key, credentials.secret) == ("file-key-123", "file-secret-456")
    assert "file-key" not in repr(credentials) and "file-secret" not in repr(credentials)
    file.write_text("flickr:\n  api_key: [file-secret-456\n")
    with pytest.raises(ConfigError) as broken:
        flickr_credentials(file)
    assert "not valid YAML" in str(broken.value) and "file-secret" not in str(broken.value)


def test_flickr_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="query or tags"):
        check_flickr(FlickrConfig())
    with pytest.raises(ConfigError, match="at least 2"):
        check_flickr(FlickrConfig(query="x", calls_per_period=1))
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        check_flickr(FlickrConfig(query="x", min_upload_date="last year"))


# -- yt-dlp error classes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("ERROR: [youtube] abc: Video unavailable", "removed"),
        ("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader",
         "removed"),
        ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this "
         "video", "private"),
        ("ERROR: [youtube] abc: Video unavailable. The uploader has not made this video "
         "available in your country", "geo_blocked"),
        ("ERROR: [youtube] abc: Sign in to confirm you're not a bot. Use --cookies-from-browser "
         "or --cookies for the authentication.", "bot_check"),
        ("ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate "
         "for some users.", "private"),
        ("ERROR: unable to download video data: HTTP Error 429: Too Many Requests",
         "rate_limited"),
        ("ERROR: [download] Got error: HTTP Error 503: Service Unavailable", "network"),
        ("ERROR: [download] Got error: The read operation timed out", "network"),
        ("ERROR: Unsupported URL: https://example.org/", "unsupported"),
        ("ERROR: [youtube] abc: Requested format is not available", "unsupported"),
    ],
)  # fmt: skip
def test_ytdlp_messages_map_to_error_classes(message: str, expected: str) -> None:
    assert classify_error(DownloadError(message)).error_class == expected


def test_ytdlp_http_errors_carry_status_and_retry_after() -> None:
    response = Response(None, "http://h/v.mp4", {"Retry-After": "3"}, status=429)
    try:
        raise HTTPError(response)
    except HTTPError:
        wrapped = DownloadError("ERROR: unable to download video data", sys.exc_info())
    error = classify_error(wrapped)
    assert (error.error_class, error.retry_after_s) == ("rate_limited", 3.0)


# -- URL lists and attribution -----------------------------------------------------------------


def test_url_lists_from_text_and_parquet(tmp_path: Path) -> None:
    text = tmp_path / "urls.txt"
    text.write_text(
        "# time-lapse sources\nhttps://h/a.mp4\n\n  https://h/b.mp4  \nhttps://h/a.mp4\n"
    )
    found = read_url_list(text)
    assert [c.meta.url for c in found] == ["https://h/a.mp4", "https://h/b.mp4"]
    assert len({c.video_id for c in found}) == 2 and all(c.meta.source == "urls" for c in found)

    table = pa.table(
        {
            "url": ["https://h/c.mp4", "https://h/d.mp4"],
            "video_id": ["flickr-0123456789abcdef", None],
            "license_name": ["Attribution License", None],
            "tags": [["sky", "clouds"], []],
        }
    )
    pq.write_table(table, tmp_path / "urls.parquet")
    first, second = read_url_list(tmp_path / "urls.parquet")
    assert first.video_id == "flickr-0123456789abcdef"  # a published id is kept
    assert first.meta.license_name == "Attribution License" and first.meta.tags == ("sky", "clouds")
    assert second.video_id.startswith("urls-")

    bad = tmp_path / "bad.txt"
    bad.write_text("https://h/a.mp4\nftp://h/b.mp4\n")
    with pytest.raises(DataError, match="entry 2"):
        read_url_list(bad)
    pq.write_table(pa.table({"link": ["https://h/a.mp4"]}), tmp_path / "nourl.parquet")
    with pytest.raises(DataError, match="no 'url' column"):
        read_url_list(tmp_path / "nourl.parquet")


def test_attribution_lines_credit_every_downloaded_video() -> None:
    def record(video_id: str, owner: str, title: str, status: str) -> ProvenanceRecord:
        page = f"https://f/{video_id}/"
        return ProvenanceRecord(
            video_id, "flickr", page, page, owner_name=owner, title=title, status=status,
            license_name="Attribution License",
            license_url="https://creativecommons.org/licenses/by/2.0/",
        )  # fmt: skip

    lines = attribution_lines(
        [
            record("b", "Zoe", "Fog", "ok"),
            record("a", "anna", "", "ok"),
            record("c", "Bob", "Gone", "failed"),
        ]
    )
    assert lines == [
        "Untitled video by anna, https://f/a/, licence: Attribution License "
        "(https://creativecommons.org/licenses/by/2.0/)",
        '"Fog" by Zoe, https://f/b/, licence: Attribution License '
        "(https://creativecommons.org/licenses/by/2.0/)",
    ]
