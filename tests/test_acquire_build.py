"""`tld build --source flickr|urls` end to end against the stand-ins on 127.0.0.1: downloads
are curated like local files, videos.parquet carries provenance and failure classes, the
attribution list credits the videos a release uses, and no secret reaches any output."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from standins.flickr_server import FlickrStandIn, StandInVideo
from standins.host import Fault, VideoHost

from timelapse_d.cli import cli, main
from timelapse_d.errors import ConfigError

KEY, SECRET = "standin-key-0d9e88f2", "standin-secret-71c4aa0e"
SMALL = ["--set", "filter.min_height=144", "--set", "filter.min_frames=40"]
PROVENANCE = (
    "source", "page_url", "owner_id", "owner_name", "license_id", "license_name", "license_url",
    "title", "upload_date", "taken_date", "tags",
)  # fmt: skip


@pytest.fixture(scope="module")
def scenes(synthetic_build: Path) -> list[bytes]:
    """Real time-lapse-like videos to serve: the synthetic corpus files."""
    return [p.read_bytes() for p in sorted((synthetic_build / "sources/synthetic").glob("*.mp4"))]


def test_flickr_build_records_provenance_failures_and_attribution(
    scenes: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLICKR_API_KEY", KEY)
    monkeypatch.setenv("FLICKR_API_SECRET", SECRET)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    videos = [
        StandInVideo(id="901", title="Clouds over the bay", dateupload=1_500_000_000),
        StandInVideo(id="902", title="Gone clouds", dateupload=1_500_003_600, state="removed"),
        StandInVideo(
            id="903", title="Clouds not ours to share", dateupload=1_500_007_200, license=1
        ),  # NonCommercial: filtered out by the default licence policy
    ]
    out = tmp_path / "out"
    with FlickrStandIn(videos, {"HD MP4": scenes[0]}, api_key=KEY, api_secret=SECRET) as server:
        command = [
            "build", "--source", "flickr", "--query", "clouds", "--out", str(out),
            "--min-upload-date", "2017-07-01", "--max-upload-date", "2017-08-01",
            "--set", f"flickr.rest_url={server.rest_url}", "--set", "download.workers=1", *SMALL,
        ]  # fmt: skip
        result = CliRunner().invoke(cli, command, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "failed removed: 1" in result.output
    rows = {r["title"]: r for r in pq.read_table(out / "videos.parquet").to_pylist()}
    assert set(rows) == {"Clouds over the bay", "Gone clouds"}
    good, gone = rows["Clouds over the bay"], rows["Gone clouds"]
    assert good["status"] == "ok" and good["num_frames"] > 200
    assert {name: good[name] for name in PROVENANCE} == {
        "source": "flickr",
        "page_url": "https://www.flickr.com/photos/12345678@N00/901/",
        "owner_id": "12345678@N00",
        "owner_name": "Some Photographer",
        "license_id": "4",
        "license_name": "Attribution License",
        "license_url": "https://creativecommons.org/licenses/by/2.0/",
        "title": "Clouds over the bay",
        "upload_date": "2017-07-14T02:40:00Z",
        "taken_date": "2015-06-01 18:00:00",
        "tags": ["timelapse"],
    }
    assert gone["status"] == "failed" and gone["error"].startswith("removed:")
    kept = [r for r in pq.read_table(out / "manifest.parquet").to_pylist() if r["status"] == "kept"]
    assert kept and {r["video_id"] for r in kept} == {good["video_id"]}

    attribution = CliRunner().invoke(cli, ["attribution", str(out)], catch_exceptions=False)
    text = (out / "ATTRIBUTION.txt").read_text()
    assert attribution.exit_code == 0
    assert '"Clouds over the bay" by Some Photographer' in text and "Gone" not in text

    # No secret in any file of the run (home folder included) nor in what the commands print.
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    kinds = {p.relative_to(out).parts[0] for p in written if p.is_relative_to(out)}
    assert {"run", "shards", "videos.parquet", "ATTRIBUTION.txt"} <= kinds
    # The download streamed (download.keep_sources false): its file is deleted once processed.
    assert (out / "run/acquire/released" / f"{good['video_id']}.json").is_file()
    assert not any(p.is_relative_to(out / "sources") for p in written)
    assert out / "run" / "build.log" in written
    for path in written:
        data = path.read_bytes()
        assert KEY.encode() not in data and SECRET.encode() not in data, path
    for text in (result.output, attribution.output):
        assert KEY not in text and SECRET not in text


def test_flickr_build_without_credentials_stops_before_any_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    monkeypatch.delenv("FLICKR_API_SECRET", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no credentials file either
    with FlickrStandIn([], {}, api_key=KEY, api_secret=SECRET) as server:
        command = [
            "build", "--source", "flickr", "--query", "clouds", "--out", str(tmp_path / "out"),
            "--set", f"flickr.rest_url={server.rest_url}",
        ]  # fmt: skip
        result = CliRunner().invoke(cli, command)
        assert server.hits() == []
    assert isinstance(result.exception, ConfigError)
    assert "export FLICKR_API_KEY=" in str(result.exception)
    assert "credentials.yaml" in str(result.exception)


def test_url_list_build_curates_downloads_and_reruns_without_fetching(
    scenes: list[bytes], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with VideoHost() as host:
        host.files["/v/a.mp4"], host.files["/v/b.mp4"] = scenes[0], scenes[1]
        host.files["/v/gone.mp4"] = scenes[2]
        host.faults["/v/gone.mp4"] = Fault(status=410)
        listing = tmp_path / "urls.txt"
        listing.write_text(
            "".join(host.url(p) + "\n" for p in ["/v/a.mp4", "/v/b.mp4", "/v/gone.mp4"])
        )
        command = ["build", "--source", "urls", "--input", str(listing), "--out", str(out), *SMALL]
        first = CliRunner().invoke(cli, command, catch_exceptions=False)
        served = len(host.hits())
        again = CliRunner().invoke(cli, command, catch_exceptions=False)
        assert len(host.hits()) == served  # nothing downloaded twice, failures not retried
    assert first.exit_code == again.exit_code == 0, first.output
    assert "videos: 2 ok, 1 failed" in first.output and "failed removed: 1" in first.output
    rows = pq.read_table(out / "videos.parquet").to_pylist()
    assert sorted(r["status"] for r in rows) == ["failed", "ok", "ok"]
    assert all(r["sha256"] and r["download_bytes"] > 0 for r in rows if r["status"] == "ok")


def test_an_unreachable_api_ends_with_a_one_line_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLICKR_API_KEY", KEY)
    monkeypatch.setenv("FLICKR_API_SECRET", SECRET)
    with socket.socket() as closed:  # a port nothing listens on once this block ends
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    argv = [
        "tld", "build", "--source", "flickr", "--query", "clouds", "--out", str(tmp_path / "out"),
        "--set", f"flickr.rest_url=http://127.0.0.1:{port}/services/rest/",
        "--set", "flickr.retry.attempts=1",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stopped:
        main()
    err = capsys.readouterr().err
    assert stopped.value.code == 1
    assert err.startswith("error: network: ") and "run the same command again" in err
    assert "Traceback" not in err and KEY not in err
