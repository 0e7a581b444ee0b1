"""The notebook API (`timelapse_d.build`, `open_manifest`, `iter_clips`, ...) on a real build."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import timelapse_d as tld
from timelapse_d.errors import ConfigError
from timelapse_d.executors import LocalExecutor


def test_import_is_cheap() -> None:
    """Importing the package and its API names loads no decoder, model or downloader."""
    heavy = ("torch", "cv2", "yt_dlp", "av", "scenedetect", "pyarrow")
    code = (
        "import sys\n"
        "import timelapse_d\n"
        "from timelapse_d import build, iter_clips, load_config, open_manifest\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_manifest_filters_match_the_file(synthetic_build: Path) -> None:
    manifest = pq.read_table(synthetic_build / "manifest.parquet")
    statuses = manifest["status"].to_pylist()
    table = tld.open_manifest(synthetic_build)
    kept = tld.open_manifest(synthetic_build, kept=True)
    rejected = tld.open_manifest(synthetic_build, kept=False)
    assert table.equals(manifest)
    assert kept.num_rows == statuses.count("kept") > 0
    assert rejected.num_rows == statuses.count("rejected") > 0
    assert set(kept["status"].to_pylist()) == {"kept"}
    assert set(rejected["status"].to_pylist()) == {"rejected"}
    narrow = tld.open_manifest(synthetic_build, kept=True, columns=["clip_id", "shard"])
    assert narrow.column_names == ["clip_id", "shard"]
    frame = kept.to_pandas()
    assert sorted(frame["clip_id"]) == sorted(kept["clip_id"].to_pylist())


def test_videos_table(synthetic_build: Path) -> None:
    videos = tld.open_videos(synthetic_build)
    assert videos.equals(pq.read_table(synthetic_build / "videos.parquet"))
    assert set(videos["status"].to_pylist()) == {"ok"}


def test_iter_clips_yields_every_kept_clip_decodable(synthetic_build: Path) -> None:
    kept = tld.open_manifest(synthetic_build, kept=True).to_pylist()
    rows = {row["clip_id"]: row for row in kept}
    clips = list(tld.iter_clips(synthetic_build))
    assert sorted(clip.clip_id for clip in clips) == sorted(rows)
    for clip in clips:
        row = rows[clip.clip_id]
        assert clip.meta["clip_id"] == clip.clip_id
        assert clip.meta["shard"] == row["shard"]
        frames = clip.frames()
        assert frames.dtype.name == "uint8"
        assert frames.shape == (row["num_frames"], row["height"], row["width"], 3)
        with av.open(io.BytesIO(clip.mp4)) as container:
            assert container.streams.video[0].codec_context.name == "h264"


def test_iter_clips_selects_by_id(synthetic_build: Path) -> None:
    kept = tld.open_manifest(synthetic_build, kept=True)
    wide = kept.filter(pc.greater_equal(kept["num_frames"], pc.max(kept["num_frames"])))
    chosen = wide["clip_id"]  # an Arrow column works as well as a list
    assert [c.clip_id for c in tld.iter_clips(synthetic_build, chosen)] == chosen.to_pylist()
    rejected = tld.open_manifest(synthetic_build, kept=False)["clip_id"][0].as_py()
    with pytest.raises(ConfigError, match=f"1 clip not in the shards, e.g. {rejected}"):
        list(tld.iter_clips(synthetic_build, [rejected]))


def test_config_round_trip_and_rebuild(synthetic_build: Path, tmp_path: Path) -> None:
    """The config `load_config` resolves is the one the build saved; `build` on a finished
    build resumes it, leaves the manifest as it was and reports what it holds."""
    config = tld.load_config("synthetic", overrides={"workers": 2})
    assert tld.saved_config(synthetic_build) == config
    out = tmp_path / "out"
    shutil.copytree(synthetic_build, out)
    summary = tld.build(config, out, LocalExecutor(1))  # any executor writes the same outputs
    assert summary.complete, summary.text()
    statuses = pq.read_table(out / "manifest.parquet")["status"].to_pylist()
    assert (summary.clips_kept, summary.clips_rejected) == (
        statuses.count("kept"),
        statuses.count("rejected"),
    )
    assert pq.read_table(out / "manifest.parquet").equals(
        pq.read_table(synthetic_build / "manifest.parquet")
    )


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="manifest.parquet not found"):
        tld.open_manifest(tmp_path)
    with pytest.raises(ConfigError, match="filter.min_height"):
        tld.load_config("synthetic", overrides={"filter.min_height": "tall"})
    with pytest.raises(ConfigError, match="no saved build config"):
        tld.saved_config(tmp_path)
