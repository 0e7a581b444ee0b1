"""Kill -9 during the Flickr search and during the downloads, run again: the run completes and
the stand-in's request log shows no finished call or download repeated."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from standins.clips import clip
from standins.flickr_server import REST_PATH, FlickrStandIn, StandInVideo

from timelapse_d.acquire.provenance import load_records
from timelapse_d.acquire.settings import DownloadConfig, FlickrConfig, RetryConfig

pytestmark = pytest.mark.slow

CHILD = Path(__file__).parent / "standins" / "acquire_child.py"
KEY, SECRET = "resume-key-0c2d9e", "resume-secret-71ab34"
VIDEOS = [
    StandInVideo(
        id=str(7000 + i), title=f"fog in the valley {i}", dateupload=1_600_000_000 + 60 * i
    )
    for i in range(10)
]


def _stand_in(**options) -> FlickrStandIn:
    files = {"HD MP4": clip(160, 96, 40)}
    return FlickrStandIn(VIDEOS, files, api_key=KEY, api_secret=SECRET, cap=4, **options)


def _run(server: FlickrStandIn, tmp_path: Path) -> subprocess.Popen:
    flickr = FlickrConfig(
        rest_url=server.rest_url,
        query="fog",
        per_page=2,
        result_cap=4,
        min_upload_date="2020-09-13",
        max_upload_date="2020-09-14",
        calls_per_period=100_000,
        period_s=1.0,
        retry=RetryConfig(base_delay_s=0.01),
    )
    download = DownloadConfig(max_height=720, workers=2, retry=RetryConfig(base_delay_s=0.01))
    settings = {"flickr": dataclasses.asdict(flickr), "download": dataclasses.asdict(download)}
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(tmp_path / "state"), str(tmp_path / "out"),
         json.dumps(settings)],
        env={**os.environ, "FLICKR_API_KEY": KEY, "FLICKR_API_SECRET": SECRET},
        start_new_session=True,  # the kill reaches the download workers too
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _kill_when(process: subprocess.Popen, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _call_counts(server: FlickrStandIn) -> Counter:
    """Answered API calls by their parameters (OAuth nonces aside)."""
    return Counter(
        tuple(sorted((k, v) for k, v in h.params if not k.startswith("oauth_")))
        for h in server.hits(REST_PATH)
        if h.status == 200
    )


def test_kill_during_search_then_rerun_repeats_at_most_the_call_in_flight(
    tmp_path: Path,
) -> None:
    with _stand_in(rest_delay_s=0.05) as server:
        first = _run(server, tmp_path)
        _kill_when(first, lambda: len(server.rest_hits("flickr.photos.search")) >= 4)
        calls_before = sum(_call_counts(server).values())
        assert calls_before < 10  # killed well before the search ended
        counts = _finish(_run(server, tmp_path))
        calls = _call_counts(server)
    assert counts == {"ok": len(VIDEOS)}
    repeated = [call for call, n in calls.items() if n > 1]
    assert len(repeated) <= 1 and all(n <= 2 for n in calls.values())
    assert len(calls) > calls_before  # the re-run went on where the first stopped


def test_kill_during_downloads_then_rerun_fetches_no_finished_video(tmp_path: Path) -> None:
    with _stand_in(chunk_delay_s=0.05) as server:
        first = _run(server, tmp_path)
        _kill_when(first, lambda: sum(r.ok for r in load_records(tmp_path / "state")) >= 3)
        finished = {r.title for r in load_records(tmp_path / "state") if r.ok}
        killed_at = time.time()
        counts = _finish(_run(server, tmp_path))
        rerun = server.hits(since=killed_at)
    assert counts == {"ok": len(VIDEOS)} and len(finished) < len(VIDEOS)
    assert not [h for h in rerun if h.path == REST_PATH]  # the whole search was stored
    ids = {v.title: v.id for v in VIDEOS}
    fetched_again = {title for title in finished if any(f"/{ids[title]}" in h.path for h in rerun)}
    assert fetched_again == set()
    assert sum(r.ok for r in load_records(tmp_path / "state")) == len(VIDEOS)
    files = [p for p in (tmp_path / "out").iterdir() if p.is_file()]
    assert len(files) == len(VIDEOS)
