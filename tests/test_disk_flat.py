"""Disk flat in corpus size: a URL-list build with ``download.keep_sources: false`` streams its
downloads (real yt-dlp against the video host on 127.0.0.1, real synthetic time-lapses), keeps
no source file and no encode file of a sharded clip, writes what the same build keeping its
sources writes, and fetches a source again only when a clip of it needs one."""

from __future__ import annotations

import shutil
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from click.testing import CliRunner
from small_build import snapshot
from standins.host import VideoHost

import timelapse_d.shards.clips as clips_module
import timelapse_d.stages.stream as stream
from timelapse_d.annotation.previews import make_previews, preview_path, source_paths
from timelapse_d.assemble import MANIFEST, write_labels
from timelapse_d.cli import cli
from timelapse_d.config import resolve_config
from timelapse_d.executors import LocalExecutor
from timelapse_d.manifest import read_rows
from timelapse_d.pipeline import build
from timelapse_d.records import KEEP, Label
from timelapse_d.shards.stored import find_clip
from timelapse_d.shards.tar import write_samples
from timelapse_d.stages.base import StageFailed
from timelapse_d.stages.filter import SOFT_REASONS
from timelapse_d.synth import write_corpus

VIDEOS = 4
SETTINGS = {
    "workers": 2,
    "filter.min_height": 144,
    "filter.min_frames": 40,
    "shard.max_bytes": 400_000,
    "min_free_mb": 0,
    "download.workers": 2,
    "download.videos_in_flight": 2,
}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VideoHost]:
    """The host serving four small synthetic time-lapses as /v/<n>.mp4."""
    folder = tmp_path_factory.mktemp("corpus")
    with VideoHost() as served:
        for number, path in enumerate(
            write_corpus(folder, 0, width=256, height=144, num_videos=VIDEOS)
        ):
            served.files[f"/v/{number}.mp4"] = path.read_bytes()
        yield served


@pytest.fixture(scope="module")
def listing(host: VideoHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("list") / "urls.txt"
    path.write_text("".join(host.url(p) + "\n" for p in sorted(host.files)))
    return path


def run_build(listing: Path, out: Path, **settings: Any) -> None:
    overrides = {**SETTINGS, **settings}
    config = resolve_config(source="urls", overrides=overrides)
    config.input = str(listing)
    summary = build(config, out)
    assert summary.complete, summary.text()


def tars(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").glob("clips-*.tar"))}


@pytest.fixture(scope="module")
def kept_build(listing: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kept") / "out"
    run_build(listing, out, **{"download.keep_sources": True})
    return out


@pytest.fixture(scope="module")
def streamed_build(listing: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("streamed") / "out"
    run_build(listing, out)
    return out


def test_a_streamed_build_keeps_no_source_and_writes_what_a_kept_build_writes(
    kept_build: Path, streamed_build: Path, host: VideoHost
) -> None:
    assert len(list((kept_build / "sources" / "urls").glob("*.mp4"))) == VIDEOS
    assert list((streamed_build / "sources" / "urls").glob("*.mp4")) == []
    assert len(list((streamed_build / "run/acquire/released").glob("*.json"))) == VIDEOS
    kept = [r for r in read_rows(streamed_build / MANIFEST) if r["status"] == "kept"]
    assert kept and all(r["shard"] for r in kept)
    cache = streamed_build / "run" / "encode"
    assert not any((cache / f"{r['clip_id']}.mp4").exists() for r in kept)
    assert (kept_build / "run/encode" / f"{kept[0]['clip_id']}.mp4").exists()
    assert snapshot(streamed_build) == snapshot(kept_build)
    assert tars(streamed_build) == tars(kept_build)


def test_a_rerun_of_a_streamed_build_fetches_nothing_and_changes_nothing(
    streamed_build: Path, listing: Path, host: VideoHost, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(streamed_build, out)
    before, served = snapshot(out), len(host.hits())
    run_build(listing, out)
    assert len(host.hits()) == served
    assert snapshot(out) == before and tars(out) == tars(streamed_build)
    assert list((out / "sources" / "urls").glob("*.mp4")) == []


def test_new_shard_sizes_read_the_released_clips_from_the_old_tars(
    streamed_build: Path, listing: Path, host: VideoHost, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(streamed_build, out)
    samples = [s for tar in snapshot(out)["shards"].values() for s in tar]
    served = len(host.hits())
    run_build(listing, out, **{"shard.max_bytes": 1})  # one clip per tar
    assert len(host.hits()) == served
    resharded = snapshot(out)["shards"]
    assert len(resharded) == len(samples) > len(snapshot(streamed_build)["shards"])
    rows = lambda sample: {k: v for k, v in sample[2].items() if k != "shard"}  # noqa: E731
    flat = [(s[0], s[1], rows(s)) for tar in resharded.values() for s in tar]
    assert flat == [(s[0], s[1], rows(s)) for s in samples]
    assert not (out / "run" / "shard" / "previous").exists()


def test_a_build_stopped_between_waves_resumes(
    kept_build: Path,
    listing: Path,
    host: VideoHost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    download, waves = stream.download_all, list[list[str]]()

    def stopped_after_one_wave(candidates: list[Any], *args: Any, **kwargs: Any) -> Any:
        if waves:
            raise KeyboardInterrupt
        waves.append([c.video_id for c in candidates])
        return download(candidates, *args, **kwargs)

    monkeypatch.setattr(stream, "download_all", stopped_after_one_wave)
    with pytest.raises(KeyboardInterrupt):
        run_build(listing, out)
    monkeypatch.undo()
    released = sorted(p.stem for p in (out / "run/acquire/released").glob("*.json"))
    assert released == sorted(waves[0]) and len(released) == 2
    since = host.hits()[-1].time
    run_build(listing, out)
    fetched = {h.path for h in host.hits(since=since) if h.time > since}
    assert len(fetched) == VIDEOS - 2  # the first wave is not fetched again
    assert snapshot(out) == snapshot(kept_build) and tars(out) == tars(kept_build)


def test_a_human_keep_fetches_that_clips_source_again_and_shards_it(
    streamed_build: Path, listing: Path, host: VideoHost, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(streamed_build, out)
    rows = read_rows(out / MANIFEST)
    rescued = next(
        r for r in rows if r["reject_reasons"] and set(r["reject_reasons"]) <= SOFT_REASONS
    )
    write_labels(out, [Label(rescued["clip_id"], KEEP, (), ("cloud",), 1.0, 2)])
    since = host.hits()[-1].time
    run_build(listing, out)
    fetched = {h.path for h in host.hits(since=since) if h.time > since}
    assert fetched == {f"/v/{rescued['source_uri'].rsplit('/', 1)[1]}"}
    rebuilt = {r["clip_id"]: r for r in read_rows(out / MANIFEST)}
    assert rebuilt[rescued["clip_id"]]["status"] == "kept" and rebuilt[rescued["clip_id"]]["shard"]
    assert list((out / "sources" / "urls").glob("*.mp4")) == []
    assert not (out / "run" / "encode" / f"{rescued['clip_id']}.mp4").exists()


def test_keeping_sources_afterwards_fetches_them_again_and_changes_no_output(
    streamed_build: Path, listing: Path, host: VideoHost, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(streamed_build, out)
    since = host.hits()[-1].time
    run_build(listing, out, **{"download.keep_sources": True})  # e.g. for `tld annotate push`
    fetched = {h.path for h in host.hits(since=since) if h.time > since}
    assert fetched == set(host.files)
    assert len(list((out / "sources" / "urls").glob("*.mp4"))) == VIDEOS
    assert snapshot(out) == snapshot(streamed_build) and tars(out) == tars(streamed_build)


def test_a_shard_stage_stopped_after_handing_over_its_clips_loses_none(
    kept_build: Path,
    listing: Path,
    host: VideoHost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"

    def crash(path: Path, clips: list[Any]) -> None:
        raise RuntimeError("stopped before the tar was checked")

    monkeypatch.setattr(clips_module, "verify_clip_shard", crash)
    with pytest.raises(StageFailed):
        run_build(listing, out, workers=1)  # in this process, where the crash is patched in
    monkeypatch.undo()
    partial = list((out / "run" / "shard" / "writing").glob("clips-*.tar"))
    assert len(partial) == 1
    with tarfile.open(partial[0]) as tar:
        handed_over = [name for name in tar.getnames() if name.endswith(".mp4")]
    assert handed_over and not any((out / "run" / "encode" / n).exists() for n in handed_over)
    served = len(host.hits())
    run_build(listing, out)
    assert len(host.hits()) == served  # every clip read back from the tar left behind
    assert snapshot(out) == snapshot(kept_build) and tars(out) == tars(kept_build)
    assert not (out / "run" / "shard" / "writing").exists() or not any(
        (out / "run" / "shard" / "writing").iterdir()
    )


def test_a_takedown_of_a_streamed_build_rebuilds_without_fetching(
    streamed_build: Path, listing: Path, host: VideoHost, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(streamed_build, out)
    url = host.url("/v/0.mp4")
    taken = CliRunner().invoke(cli, ["takedown", str(out), "--url", url])
    assert taken.exit_code == 0, taken.output
    assert len(list((out / "run/acquire/released").glob("*.json"))) == VIDEOS - 1
    served = len(host.hits())
    run_build(listing, out)
    assert len(host.hits()) == served  # the other clips of rewritten tars are read from them
    kept = [r for r in read_rows(out / MANIFEST) if r["status"] == "kept"]
    before = [r for r in read_rows(streamed_build / MANIFEST) if r["status"] == "kept"]
    assert {r["clip_id"] for r in kept} == {r["clip_id"] for r in before if r["source_uri"] != url}
    samples = [s for tar in snapshot(out)["shards"].values() for s in tar]
    assert [s[0] for s in samples] == sorted(r["clip_id"] for r in kept)
    earlier = {s[0]: s[1] for tar in snapshot(streamed_build)["shards"].values() for s in tar}
    assert all(s[1] == earlier[s[0]] for s in samples)


def test_a_clip_tar_cut_short_gives_the_clips_before_the_cut(tmp_path: Path) -> None:
    tar = tmp_path / "clips-000000.tar"
    first, second = b"a" * 3000, b"b" * 5000
    with tar.open("wb") as fh:
        write_samples(fh, [{"__key__": "c1", "mp4": first}, {"__key__": "c2", "mp4": second}])
    found = find_clip([tmp_path], "c2", len(second))
    assert found is not None and found.read() == second
    with tar.open("r+b") as fh:
        fh.truncate(512 + 3072 + 512 + 1000)  # inside the data of c2.mp4
    found = find_clip([tmp_path], "c1", len(first))
    assert found is not None and found.read() == first
    assert find_clip([tmp_path], "c2", len(second)) is None
    assert find_clip([tmp_path], "c1", len(first) + 1) is None  # another size: another clip


def test_previews_of_a_streamed_build_fetch_each_needed_source_once_and_release_it(
    streamed_build: Path, host: VideoHost, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(streamed_build, out)
    clips = read_rows(out / MANIFEST)  # `tld annotate push`'s default selection: every clip
    videos = {c["video_id"] for c in clips}
    served = len(host.hits())

    made = make_previews(clips, source_paths(out), out, LocalExecutor(2))

    # Each source was fetched once (waves of download.videos_in_flight) and deleted again.
    fetched = [hit.path for hit in host.hits()[served:]]
    assert made == len(clips)
    urls = {r["video_id"]: r["source_uri"] for r in read_rows(out / "videos.parquet")}
    assert sorted(set(fetched)) == sorted(urlparse(urls[v]).path for v in videos)
    # One download each: yt-dlp's generic extractor reads a URL once, then fetches it.
    assert set(Counter(fetched).values()) == {2}
    assert all(preview_path(out, c["clip_id"]).stat().st_size > 0 for c in clips)
    assert list((out / "sources" / "urls").glob("*.mp4")) == []

    served = len(host.hits())
    assert make_previews(clips, source_paths(out), out, LocalExecutor(2)) == 0
    assert len(host.hits()) == served  # previews made are kept without their sources
