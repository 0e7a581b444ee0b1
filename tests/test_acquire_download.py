"""yt-dlp downloads from a video host on 127.0.0.1 with faults: every outcome classified,
only verified files counted, nothing fetched twice."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest
from standins.clips import clip, truncated_clip
from standins.host import Fault, VideoHost

from timelapse_d.acquire.download import download_all
from timelapse_d.acquire.provenance import to_source_videos
from timelapse_d.acquire.settings import DownloadConfig, RetryConfig, YoutubeConfig
from timelapse_d.acquire.urls import expand_youtube, read_url_list
from timelapse_d.runs import RunDir

FAST = DownloadConfig(workers=1, retry=RetryConfig(attempts=6, base_delay_s=0.01))
GOOD = ["/v/a.mp4", "/v/b.mp4", "/v/c.mp4", "/v/short.mp4", "/v/busy.mp4"]
EXPECTED_FAILURES = {
    "/v/gone.mp4": "removed",  # 410
    "/v/missing.mp4": "removed",  # 404
    "/v/members.mp4": "private",  # 403
    "/v/login.mp4": "unsupported",  # an HTML sign-in page in place of the video
    "/v/cut.mp4": "corrupt",  # an MP4 cut short at the source, its index lost
}


@pytest.fixture
def host():
    with VideoHost() as server:
        for path in GOOD + ["/v/gone.mp4", "/v/members.mp4", "/v/login.mp4"]:
            server.files[path] = clip()
        server.files["/v/cut.mp4"] = truncated_clip()
        server.faults["/v/gone.mp4"] = Fault(status=410)
        server.faults["/v/members.mp4"] = Fault(status=403)
        server.faults["/v/login.mp4"] = Fault(html=True)
        # The page read succeeds, then the file transfer drops half way, once.
        server.faults["/v/short.mp4"] = Fault(truncate=0.5, times=1, after=1)
        server.faults["/v/busy.mp4"] = Fault(status=429, retry_after="1", times=1)
        yield server


def url_list(host: VideoHost, folder: Path) -> Path:
    path = folder / "urls.txt"
    lines = ["# test list"] + [host.url(p) for p in GOOD + list(EXPECTED_FAILURES)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_outcome_is_classified_and_only_verified_files_count(
    host: VideoHost, tmp_path: Path
) -> None:
    candidates = read_url_list(url_list(host, tmp_path))
    report = download_all(candidates, FAST, tmp_path / "out", tmp_path / "state", RunDir(tmp_path))
    by_path = {r.url.removeprefix(host.base_url): r for r in report.records}
    assert {p: r.error_class for p, r in by_path.items() if not r.ok} == EXPECTED_FAILURES
    digest = hashlib.sha256(clip()).hexdigest()
    assert all(by_path[p].ok and by_path[p].sha256 == digest for p in GOOD)
    assert by_path["/v/busy.mp4"].attempts == 2 and by_path["/v/short.mp4"].attempts == 2
    busy = host.hits("/v/busy.mp4")
    assert busy[0].status == 429 and busy[1].time - busy[0].time >= 1.0  # Retry-After honoured
    files = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file())
    assert files == sorted(by_path[p].path for p in GOOD)
    assert not any((tmp_path / "out" / ".incoming").iterdir())
    videos = to_source_videos(report.records, tmp_path / "out")
    assert [Path(v.path).name for v in videos] == sorted(by_path[p].path for p in GOOD)

    # A re-run fetches nothing; --retry-failed fetches the failures only.
    before = len(host.hits())
    download_all(candidates, FAST, tmp_path / "out", tmp_path / "state", RunDir(tmp_path))
    assert len(host.hits()) == before
    retry = DownloadConfig(workers=1, retry_failed=True, retry=FAST.retry)
    download_all(candidates, retry, tmp_path / "out", tmp_path / "state", RunDir(tmp_path))
    assert {h.path for h in host.hits()[before:]} == set(EXPECTED_FAILURES)


def test_transient_failures_exhausted_stay_retryable(host: VideoHost, tmp_path: Path) -> None:
    host.faults["/v/a.mp4"] = Fault(status=503)
    candidates = read_url_list(url_list(host, tmp_path))[:1]
    config = DownloadConfig(workers=1, retry=RetryConfig(attempts=3, base_delay_s=0.01))
    (record,) = download_all(
        candidates, config, tmp_path / "out", tmp_path / "state", RunDir(tmp_path)
    ).records
    assert (record.error_class, record.attempts) == ("network", 3)
    assert len(host.hits("/v/a.mp4")) == 3
    del host.faults["/v/a.mp4"]
    (record,) = download_all(
        candidates, config, tmp_path / "out", tmp_path / "state", RunDir(tmp_path)
    ).records
    assert record.ok  # a transient class is tried again by the next run


def test_a_complete_partial_file_left_by_a_kill_is_fetched_anew(
    host: VideoHost, tmp_path: Path
) -> None:
    """A kill between the last byte and yt-dlp's rename leaves a whole .part: resuming it asks
    for bytes past the end (416), which must not mark the video unsupported."""
    candidates = read_url_list(url_list(host, tmp_path))[:1]
    incoming = tmp_path / "out" / ".incoming"
    incoming.mkdir(parents=True)
    (incoming / f"{candidates[0].video_id}.mp4.part").write_bytes(clip())
    report = download_all(candidates, FAST, tmp_path / "out", tmp_path / "state", RunDir(tmp_path))
    assert report.counts() == {"ok": 1}
    assert report.records[0].sha256 == hashlib.sha256(clip()).hexdigest()
    assert 416 in [h.status for h in host.hits(GOOD[0])]  # the case under test did happen
    assert not any(incoming.iterdir())


def test_a_stalled_server_times_out_and_is_retried(host: VideoHost, tmp_path: Path) -> None:
    host.faults["/v/a.mp4"] = Fault(delay_s=1.5, times=1)
    candidates = read_url_list(url_list(host, tmp_path))[:1]
    config = DownloadConfig(workers=1, timeout_s=0.5, retry=FAST.retry)
    (record,) = download_all(
        candidates, config, tmp_path / "out", tmp_path / "state", RunDir(tmp_path)
    ).records
    assert record.ok and record.attempts == 2


def test_proxy_and_cookies_pass_through_and_no_cookie_copy_stays(
    host: VideoHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "cookie-value-5b81e0"
    cookies = tmp_path / "cookies.txt"
    line = "\t".join(["127.0.0.1", "FALSE", "/", "FALSE", "0", "sid", secret])
    cookies.write_text(f"# Netscape HTTP Cookie File\n{line}\n")
    original = cookies.read_bytes()
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the copy goes
    candidates = read_url_list(url_list(host, tmp_path))[:1]
    with VideoHost() as proxy:
        proxy.files.update(host.files)
        config = DownloadConfig(
            workers=1, proxy=proxy.base_url, cookies=str(cookies), retry=FAST.retry
        )
        (record,) = download_all(
            candidates, config, tmp_path / "out", tmp_path / "state", RunDir(tmp_path)
        ).records
        through = proxy.hits()
    assert record.ok and host.hits() == []  # every request went through the proxy
    assert through and all(h.cookie == f"sid={secret}" for h in through)
    assert cookies.read_bytes() == original and not any((tmp_path / "tmp").iterdir())
    for path in [*(tmp_path / "out").rglob("*"), *(tmp_path / "state").rglob("*")]:
        assert not path.is_file() or secret.encode() not in path.read_bytes(), path


def test_playlist_listing_expands_into_videos(host: VideoHost, tmp_path: Path) -> None:
    items = "".join(
        f"<item><title>Clip {name}</title><link>{host.url(f'/v/{name}.mp4')}</link>"
        f"<guid>{name}</guid></item>"
        for name in ("a", "b", "c")
    )
    feed = f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed</title>{items}'
    host.files["/feed.xml"] = (feed + "</channel></rss>").encode()
    found = expand_youtube(YoutubeConfig(playlist=host.url("/feed.xml"), max_videos=0), FAST)
    assert [c.meta.url for c in found] == [host.url(f"/v/{n}.mp4") for n in ("a", "b", "c")]
    assert [c.meta.title for c in found] == ["Clip a", "Clip b", "Clip c"]
    assert [h.path for h in host.hits()] == ["/feed.xml"]  # flat: no video page read
    report = download_all(found[:1], FAST, tmp_path / "out", tmp_path / "state", RunDir(tmp_path))
    assert report.records[0].ok and report.records[0].title == "Clip a"


TOO_LARGE = "larger than download.max_bytes"


@pytest.mark.parametrize(
    ("fault", "error_class", "message"),
    [
        (Fault(endless=True, after=1), "unsupported", TOO_LARGE),
        (Fault(announce_bytes=10 * 2**30, after=1), "unsupported", TOO_LARGE),
        (Fault(drip_s=0.2, after=1), "network", "took longer than download.attempt_timeout_s"),
    ],
)
def test_a_download_is_bounded_in_size_and_time(
    host: VideoHost, tmp_path: Path, fault: Fault, error_class: str, message: str
) -> None:
    """An endless body, a 10 GiB Content-Length and a drip each end the attempt early."""
    host.faults["/v/a.mp4"] = fault
    candidates = read_url_list(url_list(host, tmp_path))[:1]
    config = DownloadConfig(
        workers=1,
        max_bytes=2_000_000,
        attempt_timeout_s=2.0,
        retry=RetryConfig(attempts=1),
    )
    (record,) = download_all(
        candidates, config, tmp_path / "out", tmp_path / "state", RunDir(tmp_path)
    ).records
    assert (record.error_class, record.ok) == (error_class, False)
    assert message in record.error_message
    kept = [p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert sum(kept) <= 2_000_000 + 1_048_576  # what passed the cap by one block at most


def test_the_default_byte_cap_follows_max_height() -> None:
    assert DownloadConfig().byte_cap() == 2 * 2**30
    assert DownloadConfig(max_height=2160).byte_cap() == 8 * 2**30
    assert DownloadConfig(max_height=720, max_bytes=5).byte_cap() == 5


def test_a_verified_file_removed_after_its_record_is_fetched_again(
    host: VideoHost, tmp_path: Path
) -> None:
    candidates = read_url_list(url_list(host, tmp_path))[:1]
    out, state = tmp_path / "out", tmp_path / "state"
    (first,) = download_all(candidates, FAST, out, state, RunDir(tmp_path)).records
    (out / first.path).unlink()
    (again,) = download_all(candidates, FAST, out, state, RunDir(tmp_path)).records
    assert again.ok and (out / again.path).stat().st_size == first.bytes
    assert len([h for h in host.hits(GOOD[0]) if h.status == 200]) >= 2


def test_a_crashed_download_is_recorded_and_the_re_run_completes_it(
    host: VideoHost, tmp_path: Path
) -> None:
    candidates = read_url_list(url_list(host, tmp_path))[:1]
    out, state, run = tmp_path / "out", tmp_path / "state", RunDir(tmp_path)
    blocked = state / "download" / f"{candidates[0].video_id}.json"
    (blocked / "in-the-way").mkdir(parents=True)  # its record cannot be written: a crash
    report = download_all(candidates, FAST, out, state, run)
    assert report.records == [] and [f.name for f in report.crashed] == [candidates[0].video_id]
    assert run.failures() == {"acquire": [candidates[0].video_id]}
    (blocked / "in-the-way").rmdir()
    blocked.rmdir()
    (record,) = download_all(candidates, FAST, out, state, run).records
    assert record.ok and (out / record.path).is_file()
    assert run.failures() == {}  # the stale crash report went with the record
