"""`tld rehydrate`: a dataset published by `tld build --source urls` is rebuilt from its manifest
with the same clips, frame for frame; missing sources are listed, and a re-run fetches nothing."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from standins.host import Fault, VideoHost

from timelapse_d.cli import cli
from timelapse_d.config import BuildConfig, resolve_config
from timelapse_d.rehydrate import rehydrate

pytestmark = pytest.mark.slow
PATHS = ("/v/a.mp4", "/v/b.mp4")


@pytest.fixture(scope="module")
def host(synthetic_build: Path) -> Iterator[VideoHost]:
    """Two synthetic corpus videos served over HTTP for the whole module."""
    files = sorted((synthetic_build / "sources/synthetic").glob("*.mp4"))
    with VideoHost() as server:
        for path, file in zip(PATHS, files, strict=False):
            server.files[path] = file.read_bytes()
        yield server


@pytest.fixture(scope="module")
def published(host: VideoHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The published dataset: a real `tld build --source urls` of both videos."""
    out = tmp_path_factory.mktemp("published") / "out"
    listing = out.parent / "urls.txt"
    listing.write_text("".join(host.url(p) + "\n" for p in PATHS))
    command = [
        "build", "--source", "urls", "--input", str(listing), "--out", str(out),
        "--set", "filter.min_height=144", "--set", "filter.min_frames=40",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, command, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def _config(**overrides: object) -> BuildConfig:
    return resolve_config(source="urls", overrides=overrides)


def _rows(out: Path) -> dict[str, dict]:
    return {r["clip_id"]: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}


def _kept(out: Path) -> dict[str, dict]:
    return {k: r for k, r in _rows(out).items() if r["status"] == "kept"}


def _clip_frames(out: Path, row: dict) -> np.ndarray:
    """The decoded grey frames of one clip, read from its shard."""
    with tarfile.open(out / "shards" / row["shard"]) as tar:
        member = tar.extractfile(f"{row['clip_id']}.mp4")
        assert member is not None
        data = member.read()
    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])


def _encode_markers(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "run/encode").glob("*.done.json")}


def test_rehydrate_rebuilds_the_published_clips_and_reruns_without_fetching(
    host: VideoHost, published: Path, tmp_path: Path
) -> None:
    # A release's manifest with provenance joined from its videos.parquet.
    columns = ["video_id", "source", "sha256"]
    table = pq.read_table(published / "videos.parquet", columns=columns)
    videos = {v["video_id"]: v for v in table.to_pylist()}
    joined = [{**row, **videos[row["video_id"]]} for row in _rows(published).values()]
    manifest = tmp_path / "release.parquet"
    pq.write_table(pa.Table.from_pylist(joined), manifest)
    out = tmp_path / "rehydrated"
    before = len(host.hits())
    summary = rehydrate(manifest, out, _config())
    assert summary.complete and summary.videos_failed == 0
    assert len(host.hits()) > before  # it did download

    original, rebuilt = _kept(published), _kept(out)
    assert original and set(rebuilt) == set(original)
    assert len(_rows(out)) == len(_rows(published))  # published rejects are listed too
    for clip_id, row in original.items():
        assert rebuilt[clip_id]["num_frames"] == row["num_frames"]
        assert rebuilt[clip_id]["shard"] == row["shard"]
        ours, theirs = _clip_frames(out, rebuilt[clip_id]), _clip_frames(published, row)
        assert ours.shape == theirs.shape and ours.shape[0] == row["num_frames"]
        assert np.abs(ours.astype(float) - theirs).mean() < 1.0, clip_id
    video_rows = pq.read_table(out / "videos.parquet").to_pylist()
    assert all(v["status"] == "ok" and v["error"] is None for v in video_rows)  # same SHA-256

    served, markers = len(host.hits()), _encode_markers(out)
    again = rehydrate(manifest, out, _config())
    assert again.complete and len(host.hits()) == served  # nothing fetched again
    assert _encode_markers(out) == markers  # nothing encoded again
    assert set(_kept(out)) == set(original)


def test_rehydrate_lists_clips_of_a_missing_source_and_retries_them_on_request(
    host: VideoHost, published: Path, tmp_path: Path
) -> None:
    gone = next(r for r in _kept(published).values() if r["source_uri"].endswith(PATHS[1]))
    out = tmp_path / "rehydrated"
    host.faults[PATHS[1]] = Fault(status=410)
    try:
        rehydrate(published / "manifest.parquet", out, _config())
    finally:
        del host.faults[PATHS[1]]
    rows = _rows(out)
    assert set(rows) == set(_rows(published))  # never dropped
    missing = [r for r in rows.values() if r["video_id"] == gone["video_id"]]
    assert all(r["status"] == "rejected" for r in missing)
    lost = rows[gone["clip_id"]]
    assert lost["reject_reasons"] == ["source_removed"] and lost["shard"] is None
    assert lost["source_error"].startswith("removed:") and "410" in lost["source_error"]
    assert {r["video_id"] for r in _kept(out).values()} == {
        r["video_id"] for r in _kept(published).values()
    } - {gone["video_id"]}
    failed = [v for v in pq.read_table(out / "videos.parquet").to_pylist() if v["status"] != "ok"]
    assert [v["video_id"] for v in failed] == [gone["video_id"]]

    since = max(h.time for h in host.hits())
    rehydrate(published / "manifest.parquet", out, _config())  # a removed source stays removed
    assert not host.hits(since=since + 1e-6)
    retried = rehydrate(
        published / "manifest.parquet", out, _config(**{"download.retry_failed": True})
    )
    assert retried.videos_failed == 0 and set(_kept(out)) == set(_kept(published))
    assert {h.path for h in host.hits(since=since + 1e-6)} == {PATHS[1]}
