"""`tld takedown --url` on a build downloaded from a stand-in host: the card credits the videos
a build uses, the taken-down one leaves the card and the download records, and a re-run of
the build never fetches it again."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from standins.host import VideoHost

from timelapse_d.cli import cli

pytestmark = pytest.mark.slow
SMALL = ["--set", "filter.min_height=144", "--set", "filter.min_frames=40"]


def test_url_takedown_keeps_the_video_out_of_later_builds(
    synthetic_build: Path, tmp_path: Path
) -> None:
    scenes = sorted((synthetic_build / "sources" / "synthetic").glob("*.mp4"))
    out = tmp_path / "out"
    with VideoHost() as host:
        host.files["/v/a.mp4"], host.files["/v/b.mp4"] = (
            scenes[0].read_bytes(),
            scenes[1].read_bytes(),
        )
        url_a, url_b = host.url("/v/a.mp4"), host.url("/v/b.mp4")
        listing = tmp_path / "urls.txt"
        listing.write_text(f"{url_a}\n{url_b}\n")
        command = ["build", "--source", "urls", "--input", str(listing), "--out", str(out), *SMALL]
        command += ["--set", "download.keep_sources=true"]  # the takedown deletes the file
        first = CliRunner().invoke(cli, command, catch_exceptions=False)
        assert first.exit_code == 0, first.output
        card = (out / "README.md").read_text(encoding="utf-8")
        assert f"- Untitled video by unknown author, {url_a}" in card and url_b in card

        taken = CliRunner().invoke(cli, ["takedown", str(out), "--url", url_a])
        assert taken.exit_code == 0, taken.output
        videos = pq.read_table(out / "videos.parquet").to_pylist()
        assert [v["source_uri"] for v in videos] == [url_b]
        assert url_a not in (out / "README.md").read_text(encoding="utf-8")
        records = list((out / "run" / "acquire" / "download").glob("*.json"))
        assert len(records) == 1 and url_a not in records[0].read_text()

        hits_before = len(host.hits("/v/a.mp4"))
        again = CliRunner().invoke(cli, command, catch_exceptions=False)
        assert again.exit_code == 0, again.output
        assert len(host.hits("/v/a.mp4")) == hits_before
    clips = pq.read_table(out / "manifest.parquet").to_pylist()
    assert clips and {c["source_uri"] for c in clips} == {url_b}
    kept_files = {v["local_path"] for v in pq.read_table(out / "videos.parquet").to_pylist()}
    on_disk = {p.relative_to(out).as_posix() for p in (out / "sources").rglob("*") if p.is_file()}
    assert on_disk == kept_files  # the taken-down download is deleted
