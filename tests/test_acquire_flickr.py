"""The real flickrapi and yt-dlp clients against the Flickr stand-in on 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from pathlib import Path

import flickrapi
import pytest
from standins.clips import clip
from standins.flickr_server import REST_PATH, FlickrStandIn, StandInVideo
from standins.host import Fault

from timelapse_d.acquire.credentials import FlickrCredentials
from timelapse_d.acquire.download import download_all
from timelapse_d.acquire.flickr import FlickrClient, search_flickr
from timelapse_d.acquire.provenance import load_records
from timelapse_d.acquire.ratelimit import RateLimiter
from timelapse_d.acquire.settings import (
    FLICKR_REST_URL,
    DownloadConfig,
    FlickrConfig,
    RetryConfig,
)
from timelapse_d.errors import ConfigError
from timelapse_d.runs import RunDir

KEY, SECRET = "standin-key-5f1e0c9a77d3", "standin-secret-b48e21c6"
CREDENTIALS = FlickrCredentials(KEY, SECRET)
FAST_RETRY = RetryConfig(attempts=10, base_delay_s=0.005, max_delay_s=0.05)
T0 = 1_500_000_000  # upload times of the catalogue start here (July 2017)


def catalogue(count: int, **overrides) -> list[StandInVideo]:
    """`count` cloud videos uploaded an hour apart; every 4th under a NonCommercial licence."""
    return [
        StandInVideo(
            id=str(5000 + i),
            title=f"clouds over the ridge {i}",
            dateupload=T0 + 3600 * i,
            license=1 if i % 4 == 3 else (4, 5, 11)[i % 3],
            **overrides,
        )
        for i in range(count)
    ]


def flickr_config(server: FlickrStandIn, **overrides) -> FlickrConfig:
    values = {
        "rest_url": server.rest_url,
        "query": "clouds",
        "per_page": 5,
        "result_cap": 10,
        "min_upload_date": "2017-07-01",
        "max_upload_date": "2017-08-01",
        "calls_per_period": 100_000,
        "period_s": 1.0,
        "retry": FAST_RETRY,
    }
    return FlickrConfig(**{**values, **overrides})


def stand_in(videos: list[StandInVideo], **options) -> FlickrStandIn:
    files = {"Mobile MP4": clip(96, 64), "HD MP4": clip(160, 96), "1080p": clip(192, 112)}
    return FlickrStandIn(videos, files, api_key=KEY, api_secret=SECRET, cap=10, **options)


def search_calls(server: FlickrStandIn) -> Counter:
    """How often each distinct search page (window and page number) was answered."""
    return Counter(
        (p["min_upload_date"], p["max_upload_date"], p["page"])
        for h in server.rest_hits("flickr.photos.search")
        if h.status == 200
        for p in [dict(h.params)]
    )


def test_search_splits_windows_over_the_cap_and_pages_each(tmp_path: Path) -> None:
    videos = catalogue(24)
    with stand_in(videos) as server:
        found = search_flickr(flickr_config(server), tmp_path / "state", CREDENTIALS)
        calls = search_calls(server)
    accepted = [v for v in videos if v.license != 1]
    assert [c.meta.title for c in found] == [v.title for v in accepted]  # upload order
    assert all(count == 1 for count in calls.values())
    windows = {(lo, hi) for lo, hi, _ in calls}
    assert len(windows) > 1  # 18 results over a cap of 10: split
    first = found[0]
    assert first.meta.license_name == "Attribution License" and first.meta.duration_s == 3.0
    assert first.meta.page_url == f"https://www.flickr.com/photos/12345678@N00/{videos[0].id}/"
    assert first.meta.upload_date == "2017-07-14T02:40:00Z"
    assert [f.label for f in first.formats] == ["Mobile MP4", "HD MP4", "1080p"]

    with stand_in(videos) as again:  # a re-run reads every answer back, calling nothing
        search_flickr(flickr_config(again), tmp_path / "state", CREDENTIALS)
        assert again.rest_hits() == []


def test_transient_failures_recover_and_permanent_ones_are_listed(tmp_path: Path) -> None:
    videos = catalogue(20)
    videos[0].state = "removed"  # photos.getInfo: Photo not found
    videos[1].state = "private"  # photos.getSizes: Permission denied
    with stand_in(videos, failure_rate=0.2, seed=3) as server:
        server.faults[server.play_path(videos[2].id, "HD MP4")] = Fault(status=410)
        found = search_flickr(flickr_config(server), tmp_path / "state", CREDENTIALS)
        config = DownloadConfig(max_height=720, workers=2, retry=FAST_RETRY)
        report = download_all(found, config, tmp_path / "out", tmp_path / "state", RunDir(tmp_path))
        hits = server.hits()
    refused = [h.path for h in hits if h.status in (429, 500, 503)]  # API calls and files
    assert refused.count(REST_PATH) >= 3 and len(refused) - refused.count(REST_PATH) >= 3
    accepted = [v for v in videos if v.license != 1]
    assert sorted(r.title for r in report.records) == sorted(v.title for v in accepted)
    by_title = {r.title: r for r in report.records}
    failed = {r.title: r.error_class for r in report.records if not r.ok}
    assert failed == {videos[0].title: "removed", videos[1].title: "private",
                      videos[2].title: "removed"}  # fmt: skip
    assert not report.crashed
    recoverable = accepted[3:]
    assert all(by_title[v.title].ok for v in recoverable)
    # No duplicates: one file per video, each file served in full once, HD (<= 720) chosen.
    files = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file())
    assert files == sorted(r.path for r in report.records if r.ok)
    assert list((tmp_path / "out" / ".incoming").iterdir()) == []
    for video in recoverable:
        record = by_title[video.title]
        assert (record.height, record.format_id) == (96, "hd-mp4")
        assert record.sha256 == hashlib.sha256(clip(160, 96)).hexdigest()
        served = [h for h in hits if h.path == f"/files/{video.id}-hd-mp4.mp4" and h.status == 200]
        assert len(served) == 1
    assert len(load_records(tmp_path / "state")) == len(report.records)


def test_api_rate_limit_holds_at_the_server_retries_included(tmp_path: Path) -> None:
    calls, period = 4, 0.5
    with stand_in(catalogue(5), failure_rate=0.2, seed=1) as server:
        config = flickr_config(server, calls_per_period=calls, period_s=period)
        found = search_flickr(config, tmp_path / "state", CREDENTIALS)
        hits = server.rest_hits()
        most = server.max_in_window(period, REST_PATH)
    assert len(found) == 4 and not any(c.failure for c in found)
    assert len(hits) > 2 * calls  # enough calls for the limit to matter
    assert any(h.status != 200 for h in hits)  # retried calls were among them
    assert most <= calls


@pytest.mark.slow
def test_download_rate_limit_is_shared_by_worker_processes(tmp_path: Path) -> None:
    """Three worker processes under one limit of 3 download starts per second share one bucket:
    however the machine schedules them, the starts (requests to a play URL, retries included)
    number at most the full bucket plus what it refills while the downloads run. Separate
    buckets would allow three times that. (The host's arrival stamps are not compared: a busy
    machine delays some requests and bunches them.)"""
    calls, period = 3, 1.0
    with stand_in(catalogue(12), failure_rate=0.2, seed=2) as server:
        found = search_flickr(flickr_config(server, result_cap=20), tmp_path / "state", CREDENTIALS)
        config = DownloadConfig(
            max_height=720, workers=3, calls_per_period=calls, period_s=period, retry=FAST_RETRY
        )
        started = time.monotonic()
        report = download_all(found, config, tmp_path / "out", tmp_path / "state", RunDir(tmp_path))
        elapsed = time.monotonic() - started
        starts = [h for h in server.hits() if h.path.startswith("/play/")]
    assert report.counts() == {"ok": len(found)} and len(found) == 9
    assert len(starts) > 2 * calls  # enough starts for the limit to matter
    assert len(starts) <= 1 + (calls - 1) / period * elapsed


def test_keys_never_reach_files_or_logs(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLICKR_API_KEY", KEY)
    monkeypatch.setenv("FLICKR_API_SECRET", SECRET)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="timelapse_d")  # a build run earlier may have set it
    videos = catalogue(6)
    videos[0].state = "private"
    with stand_in(videos, failure_rate=0.1) as server:
        found = search_flickr(flickr_config(server), tmp_path / "state", None)
        config = DownloadConfig(max_height=720, workers=1, retry=FAST_RETRY)
        report = download_all(found, config, tmp_path / "out", tmp_path / "state", RunDir(tmp_path))
    assert sum(r.ok for r in report.records) == 4  # the signed calls were accepted
    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # debug logs were captured
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 20
    for path in written:
        data = path.read_bytes()
        assert KEY.encode() not in data and SECRET.encode() not in data, path
    assert KEY not in caplog.text and SECRET not in caplog.text


def test_the_client_points_only_its_own_instance_elsewhere(tmp_path: Path) -> None:
    config = FlickrConfig(rest_url="http://127.0.0.1:9/services/rest/")
    client = FlickrClient(config, CREDENTIALS, RateLimiter(tmp_path / "r.json", 10, 1.0))
    other = flickrapi.FlickrAPI("k", "s", store_token=False)
    assert config.rest_url == client._api.REST_URL
    assert other.REST_URL == flickrapi.FlickrAPI.REST_URL == FLICKR_REST_URL
    assert client._api.flickr_oauth.session is not other.flickr_oauth.session


def test_refused_credentials_fail_at_start(tmp_path: Path) -> None:
    with stand_in(catalogue(2)) as server, pytest.raises(ConfigError, match="refused"):
        search_flickr(
            flickr_config(server), tmp_path / "state", FlickrCredentials(KEY, "wrong-secret")
        )


def test_retry_after_from_flickr_holds_the_next_call(tmp_path: Path) -> None:
    with stand_in(catalogue(3)) as server:
        server.faults[REST_PATH] = Fault(status=429, retry_after="1", times=1, after=1)
        start = time.monotonic()
        search_flickr(flickr_config(server), tmp_path / "state", CREDENTIALS)
        hits = server.rest_hits()
    refused = next(i for i, h in enumerate(hits) if h.status == 429)
    assert hits[refused + 1].time - hits[refused].time >= 1.0
    assert time.monotonic() - start < 5
