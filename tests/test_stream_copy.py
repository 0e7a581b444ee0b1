"""Kept clips are stream-copied when the source already is a short-GOP H.264 stream and the clip
starts on a keyframe: the copy holds exactly the source's frames; otherwise they are re-encoded."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from timelapse_d.config import resolve_config
from timelapse_d.pipeline import build

SMALL = {"filter.min_height": 144, "filter.min_frames": 40}


@pytest.fixture(scope="module")
def short_gop_source(synthetic_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first synthetic video re-encoded without B-frames and a keyframe every 12 frames
    (x264 adds one at each scene cut, so clips start on keyframes)."""
    folder = tmp_path_factory.mktemp("short_gop")
    source = sorted((synthetic_build / "sources" / "synthetic").glob("*.mp4"))[0]
    target = folder / "short_gop.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(source), "-c:v", "libx264", "-preset", "veryfast",
         "-crf", "18", "-bf", "0", "-g", "12", "-pix_fmt", "yuv420p", str(target)],
        check=True,
    )  # fmt: skip
    return target


def _build(source: Path, out: Path, **extra: object) -> list[dict]:
    config = resolve_config(source="local", overrides={"input": str(source), **SMALL, **extra})
    assert build(config, out).complete
    return pq.read_table(out / "manifest.parquet").to_pylist()


def _grey(data_or_path: bytes | Path) -> list[np.ndarray]:
    target = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else str(data_or_path)
    with av.open(target) as container:
        return [f.to_ndarray(format="gray") for f in container.decode(video=0)]


def test_copied_clips_hold_exactly_the_source_frames(
    short_gop_source: Path, tmp_path: Path
) -> None:
    rows = _build(short_gop_source, tmp_path / "out")
    kept = {r["clip_id"]: r for r in rows if r["status"] == "kept"}
    assert kept and all(r["stream_copied"] for r in kept.values())
    source = _grey(short_gop_source)
    for shard in sorted((tmp_path / "out" / "shards").glob("clips-*.tar")):
        for sample in wds.WebDataset(str(shard), shardshuffle=False):
            row = kept[sample["__key__"]]
            frames = _grey(sample["mp4"])
            assert len(frames) == row["num_frames"]
            for offset, frame in enumerate(frames):
                np.testing.assert_array_equal(frame, source[row["start_frame"] + offset])


def test_copy_can_be_turned_off_and_needs_a_suitable_source(
    short_gop_source: Path, synthetic_build: Path, tmp_path: Path
) -> None:
    rows = _build(short_gop_source, tmp_path / "off", **{"encode.stream_copy": False})
    kept = [r for r in rows if r["status"] == "kept"]
    assert kept and not any(r["stream_copied"] for r in kept)
    # The generator's own files use B-frames and long GOPs: never copyable.
    original = sorted((synthetic_build / "sources" / "synthetic").glob("*.mp4"))[0]
    rows = _build(original, tmp_path / "bframes")
    assert rows and not any(r["stream_copyable"] for r in rows)
    assert not any(r["stream_copied"] for r in rows if r["status"] == "kept")
