"""`tld takedown`: a video taken out of a build with field shards, completely, with every other
sample left byte-identical, also when the command is killed half-way and run again."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from timelapse_d.annotation.previews import make_previews, source_paths
from timelapse_d.config import resolve_config
from timelapse_d.executors import LocalExecutor
from timelapse_d.manifest import read_rows
from timelapse_d.pipeline import build
from timelapse_d.publish.report import write_report
from timelapse_d.publish.takedown import without_taken_down_clips
from timelapse_d.publish.takedown_requests import (
    TAKEDOWNS,
    Request,
    parse_list,
    recorded_requests,
)
from timelapse_d.rehydrate import read_published
from timelapse_d.shards.reader import iter_joined
from timelapse_d.shards.tar import iter_samples

pytestmark = pytest.mark.slow
FIELD_FAMILIES = ("frames", "flow", "mask")

# Runs the real command in a child process that kills itself (SIGKILL) right after the
# takedown has rewritten its second shard file: shards are left half-done and misaligned.
KILL_AFTER_TWO_SHARDS = """
import os, signal, sys
from pathlib import Path
from timelapse_d.publish import takedown as module
rewrite, done = module._rewrite_shard, []
def rewrite_then_die(tar, report):
    changed = rewrite(tar, report)
    done.append(changed)
    if sum(done) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return changed
module._rewrite_shard = rewrite_then_die
module.takedown(Path(sys.argv[1]), [module.Request("video", sys.argv[2])])
"""


def _tld(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "timelapse_d", *args], capture_output=True, text=True, check=True
    )


def _samples(out: Path) -> dict[tuple[str, str], dict[str, bytes]]:
    """Every sample of every shard file: (file name, key) -> members."""
    return {
        (tar.name, key): members
        for tar in sorted((out / "shards").glob("*.tar"))
        for key, members in iter_samples(tar)
    }


@pytest.fixture(scope="module")
def prepared(fields_build: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A build with field shards, previews and a report; the video whose kept clips span the
    most clip shards."""
    out = tmp_path_factory.mktemp("takedown") / "prepared"
    shutil.copytree(fields_build, out)
    clips = read_rows(out / "manifest.parquet")
    kept = [c for c in clips if c["status"] == "kept"]
    spread = Counter()
    for video_id in {c["video_id"] for c in kept}:
        spread[video_id] = len({c["shard"] for c in kept if c["video_id"] == video_id})
    video_id = spread.most_common(1)[0][0]
    make_previews(kept, source_paths(out), out, LocalExecutor(1))
    write_report(out)
    return out, video_id


@pytest.fixture(scope="module")
def taken_down(prepared: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    source, video_id = prepared
    out = tmp_path_factory.mktemp("takedown") / "out"
    shutil.copytree(source, out)
    result = _tld("takedown", str(out), "--video", video_id)
    assert "1 new request(s); 1 video(s)" in result.stdout
    return out


def _assert_taken_down(before: Path, after: Path, video_id: str) -> None:
    gone = {
        c["clip_id"] for c in read_rows(before / "manifest.parquet") if c["video_id"] == video_id
    }
    assert gone
    old, new = _samples(before), _samples(after)
    # no sample of the video anywhere; every other sample unchanged, byte for byte
    assert not [key for _, key in new if key.startswith(f"{video_id}-")]
    assert new == {k: v for k, v in old.items() if k[1] not in gone}
    # every clip shard still joins with all its field shards (keys, order, digests)
    for clip_shard in sorted((after / "shards").glob("clips-*.tar")):
        keys = [joined["__key__"] for joined in iter_joined(clip_shard, FIELD_FAMILIES)]
        assert keys == [row["clip_id"] for row in read_rows(clip_shard.with_suffix(".parquet"))]
    # no file under OUT names the video, except the takedown record itself
    naming = [
        p.relative_to(after).as_posix()
        for p in after.rglob("*")
        if p.is_file() and (video_id in p.name or video_id.encode() in p.read_bytes())
    ]
    assert naming == [TAKEDOWNS]
    previews = {p.stem for p in (after / "annotations" / "previews").glob("*.mp4")}
    assert previews and not previews & gone
    record = recorded_requests(after)
    assert [(r["kind"], r["value"], r["video_ids"]) for r in record] == [
        ("video", video_id, [video_id])
    ]
    assert set(record[0]["clip_ids"]) == gone


def test_takedown_removes_the_video_everywhere(
    prepared: tuple[Path, str], taken_down: Path
) -> None:
    source, video_id = prepared
    _assert_taken_down(source, taken_down, video_id)
    again = _tld("takedown", str(taken_down), "--video", video_id)
    assert "0 new request(s)" in again.stdout and "0 shard file(s) rewritten" in again.stdout


def test_killed_takedown_completes_on_rerun(
    prepared: tuple[Path, str], taken_down: Path, tmp_path: Path
) -> None:
    source, video_id = prepared
    out = tmp_path / "out"
    shutil.copytree(source, out)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_TWO_SHARDS, str(out), video_id], capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL
    left = [key for _, key in _samples(out) if key.startswith(f"{video_id}-")]
    assert left, "the kill came too late to leave a half-done takedown"
    assert (out / TAKEDOWNS).is_file()
    _tld("takedown", str(out), "--video", video_id)
    _assert_taken_down(source, out, video_id)
    for tar in sorted((taken_down / "shards").glob("*.tar")):
        assert (out / "shards" / tar.name).read_bytes() == tar.read_bytes()


def test_rebuild_and_rehydrate_do_not_bring_it_back(
    prepared: tuple[Path, str], taken_down: Path, tmp_path: Path
) -> None:
    source, video_id = prepared
    out = tmp_path / "rebuilt"
    shutil.copytree(taken_down, out)
    summary = build(resolve_config(source="synthetic", overrides={"workers": 2}), out)
    assert summary.complete
    assert not [c for c in read_rows(out / "manifest.parquet") if c["video_id"] == video_id]
    assert not [k for _, k in _samples(out) if k.startswith(f"{video_id}-")]
    assert summary.clips_kept == sum(
        c["status"] == "kept" for c in read_rows(taken_down / "manifest.parquet")
    )
    # rehydrate reads the published manifest through the same filter: the copy published
    # before the takedown names the video, the takedown record keeps it out
    published = read_published(source / "manifest.parquet")
    assert any(c.video_id == video_id for c in published.clips)
    filtered = without_taken_down_clips(published, out)
    assert filtered.clips and not [c for c in filtered.clips if c.video_id == video_id]
    assert video_id not in {c.video_id for c in filtered.candidates}


def test_list_file_and_bad_requests(taken_down: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("# requests\nvideo abc\nowner Jane Doe\nhttps://example.org/v/1\n")
    assert parse_list(listing) == [
        Request("video", "abc"),
        Request("owner", "Jane Doe"),
        Request("url", "https://example.org/v/1"),
    ]
    listing.write_text("channel xyz\n")
    with pytest.raises(Exception, match="list.txt:1: expected"):
        parse_list(listing)
    result = subprocess.run(
        [sys.executable, "-m", "timelapse_d", "takedown", str(taken_down), "--video", "nope"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: no video of {taken_down} matches video 'nope'"
