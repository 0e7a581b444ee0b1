"""The build folder: one writer at a time, never its own source, only its own temporary files
removed, outputs checked on re-run, readable by others, and one-line errors (exit 2) when the
folder or an input is not what a command needs."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from small_build import build_command, build_into, last_line, small_input, snapshot, tld

from timelapse_d.annotation.previews import make_previews, source_paths
from timelapse_d.executors import LocalExecutor
from timelapse_d.manifest import read_rows
from timelapse_d.runs import RunDir, write_atomic
from timelapse_d.stages.base import StageFailed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_input(tmp_path_factory.mktemp("input"))


@pytest.fixture(scope="module")
def built(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_into(source, tmp_path_factory.mktemp("built") / "out")


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(built, out)
    return out


def _one_line_error(result, code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    line = last_line(result.stderr)
    assert line.startswith("error: ")
    return line


@pytest.mark.parametrize(
    "command", [["split"], ["annotate", "pull"], ["attribution"], ["report"], ["calibrate"]]
)
def test_every_command_writing_into_out_takes_the_lock(copy: Path, command: list[str]) -> None:
    before = (copy / "manifest.parquet").read_bytes()
    with RunDir(copy).exclusive():
        result = tld(*command, str(copy))
    assert "another tld command is writing" in _one_line_error(result)
    assert (copy / "manifest.parquet").read_bytes() == before


def test_out_inside_the_input_is_not_read_as_a_source(source: Path, tmp_path: Path) -> None:
    folder = tmp_path / "input"
    shutil.copytree(source, folder)
    out = folder / "out"
    for _ in range(2):  # the second run finds the first run's encoded clips under --input
        result = tld(*build_command(folder, out))
        assert result.returncode == 0, result.stderr
    videos = pq.read_table(out / "videos.parquet").to_pylist()
    assert len(videos) == 2 and not any("out/" in row["local_path"] for row in videos)
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    assert not any("duplicate" in (row["reject_reasons"] or []) for row in manifest)


def test_the_lock_removes_only_the_tools_own_temporary_files(copy: Path) -> None:
    foreign = [copy / ".notes.part", copy / "mine" / ".data.part", copy / "mine" / ".x.tld-part"]
    own = [copy / ".manifest.parquet.abc.tld-part", copy / "run" / "encode" / ".c.mp4.x.tld-part"]
    for path in foreign + own:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    with RunDir(copy).exclusive():
        pass
    assert all(p.exists() for p in foreign) and not any(p.exists() for p in own)


def test_a_rerun_redoes_outputs_removed_after_the_build(
    source: Path, built: Path, copy: Path
) -> None:
    expected = snapshot(built)
    shutil.rmtree(copy / "shards")
    next((copy / "run" / "encode").glob("*.mp4")).unlink()
    analysis = next((copy / "run" / "analyze").glob("*.json"))
    analysis.write_text(analysis.read_text()[:100])  # cut short
    result = tld(*build_command(source, copy))
    assert result.returncode == 0, result.stderr
    assert "shards: 0 tars" not in result.stdout
    assert snapshot(copy) == expected


def test_generated_sources_removed_after_the_build_are_generated_again(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sets = [
        "--set=synthetic.num_videos=1",
        "--set=synthetic.width=128",
        "--set=synthetic.height=72",
    ]
    command = ["build", "--source", "synthetic", "--out", str(out), "--set=min_free_mb=0", *sets]
    assert tld(*command).returncode == 0
    expected = pq.read_table(out / "manifest.parquet").to_pylist()
    shutil.rmtree(out / "sources")
    result = tld(*command)
    assert result.returncode == 0, result.stderr
    assert pq.read_table(out / "manifest.parquet").to_pylist() == expected
    bad = tld(
        "build", "--source", "synthetic", "--out", str(tmp_path / "o"), "--set=synthetic.width=63"
    )
    assert "synthetic: width and height must be even" in _one_line_error(bad)


def test_damaged_markers_and_manifest_are_redone(source: Path, built: Path, copy: Path) -> None:
    markers = sorted((copy / "run" / "encode").glob("*.done.json"))
    markers[0].write_bytes(b"\xff\x00 not json")
    markers[1].write_text("[1, 2]")
    (copy / "manifest.parquet").write_bytes(b"PAR1 damaged")
    assert "is not a readable Parquet file" in _one_line_error(tld("status", str(copy)))
    result = tld(*build_command(source, copy))
    assert result.returncode == 0, result.stderr
    assert snapshot(copy) == snapshot(built)


def test_an_analysis_result_damaged_in_place_is_analyzed_again(
    source: Path, built: Path, copy: Path
) -> None:
    """Damage that keeps the file's size escapes the marker's size check."""
    results = (copy / "run" / "analyze").glob("*.json")
    result_file = sorted(p for p in results if not p.name.endswith(".done.json"))[0]
    size = result_file.stat().st_size
    result_file.write_bytes(b"\xff" * size)
    result = tld(*build_command(source, copy))
    assert result.returncode == 0, result.stderr
    assert "is damaged; analyzing it again" in result.stderr
    assert snapshot(copy) == snapshot(built)


def test_outputs_follow_the_umask(built: Path, tmp_path: Path) -> None:
    for path in [built / "manifest.parquet", *(built / "shards").glob("*.tar")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    previous = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a.json", lambda fh: fh.write(b"{}"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640


def test_label_studio_previews_follow_the_umask(built: Path, tmp_path: Path) -> None:
    kept = [row for row in read_rows(built / "manifest.parquet") if row["status"] == "kept"]
    previous = os.umask(0o027)
    try:
        assert make_previews(kept[:1], source_paths(built), tmp_path, LocalExecutor(1)) == 1
    finally:
        os.umask(previous)
    (preview,) = (tmp_path / "annotations" / "previews").glob("*.mp4")
    (marker,) = (tmp_path / "run" / "previews").glob("*.done.json")
    assert {stat.S_IMODE(p.stat().st_mode) for p in (preview, marker)} == {0o640}


def test_previews_are_made_once_again_when_their_source_changes_and_failures_recorded(
    built: Path, tmp_path: Path
) -> None:
    (clip, *_) = [row for row in read_rows(built / "manifest.parquet") if row["status"] == "kept"]
    video = tmp_path / "source.mp4"
    shutil.copy(source_paths(built)[clip["video_id"]], video)
    out, sources, executor = tmp_path / "out", {clip["video_id"]: video}, LocalExecutor(1)
    assert make_previews([clip], sources, out, executor) == 1
    assert make_previews([clip], sources, out, executor) == 0
    stat_ = video.stat()
    os.utime(video, ns=(stat_.st_atime_ns, stat_.st_mtime_ns + 10**9))
    assert make_previews([clip], sources, out, executor) == 1
    broken = {**clip, "num_frames": clip["num_frames"] + 10_000}  # past the source's end
    with pytest.raises(StageFailed, match="previews: 1 task"):
        make_previews([broken], sources, out, executor)
    assert RunDir(out).failure_path("previews", clip["clip_id"]).is_file()
    assert make_previews([clip], sources, out, executor) == 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_out_that_is_a_file_is_refused(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "file"
    out.write_text("mine")
    assert "is a file" in _one_line_error(tld(*build_command(source, out)))
    assert out.read_text() == "mine"


def test_a_build_failing_at_start_leaves_no_out_it_created(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = tld(*build_command(tmp_path / "missing", out))
    assert "input not found" in _one_line_error(result)
    assert not out.exists()


def test_status_of_a_folder_that_is_no_build(tmp_path: Path) -> None:
    assert "is not a build folder" in _one_line_error(tld("status", str(tmp_path)))


def test_train_on_a_folder_without_shards(tmp_path: Path) -> None:
    result = tld("train", "--data", str(tmp_path), "--out", str(tmp_path / "t"), "--steps", "1")
    assert "has no shards" in _one_line_error(result)


def test_rehydrate_of_a_file_that_is_not_parquet(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.parquet"
    manifest.write_text("clip_id,video_id\n")
    result = tld("rehydrate", str(manifest), "--out", str(tmp_path / "out"))
    assert "is not a readable Parquet file" in _one_line_error(result)


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_a_url_list_that_is_not_utf8(tmp_path: Path, encoding: str) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_bytes("http://127.0.0.1:9/é.mp4\n".encode(encoding))
    out = tmp_path / "out"
    result = tld("build", "--source", "urls", "--input", str(urls), "--out", str(out))
    assert "is not UTF-8 text" in _one_line_error(result)
    assert not out.exists()


def test_a_damaged_parquet_url_list(tmp_path: Path) -> None:
    urls = tmp_path / "urls.parquet"
    pq.write_table(pa.table({"url": ["http://127.0.0.1:9/a.mp4"]}), urls)
    urls.write_bytes(urls.read_bytes()[:-20])
    result = tld("build", "--source", "urls", "--input", str(urls), "--out", str(tmp_path / "o"))
    assert "is not a readable Parquet file" in _one_line_error(result)


def test_marker_lists_its_outputs(built: Path) -> None:
    marker = json.loads(next((built / "run" / "encode").glob("*.done.json")).read_text())
    ((name, size),) = marker["outputs"].items()
    assert (built / name).stat().st_size == size == marker["stats"]["clip_bytes"]
