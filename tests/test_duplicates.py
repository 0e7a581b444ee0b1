"""Near-duplicate clips (the same footage in another file, size or encoding) are rejected."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from timelapse_d.config import resolve_config
from timelapse_d.pipeline import build
from timelapse_d.synth import write_corpus

pytestmark = pytest.mark.slow


def test_copies_and_rescaled_reencodes_are_duplicates_of_the_first(tmp_path: Path) -> None:
    (video,) = write_corpus(tmp_path / "synth", seed=7, num_videos=1, width=384, height=216)
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(video, folder / "a_original.mp4")
    shutil.copy(video, folder / "b_same_bytes.mp4")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-vf", "scale=320:180", "-c:v", "libx264",
         "-crf", "30", "-preset", "veryfast", str(folder / "c_smaller.mp4")],
        check=True,
    )  # fmt: skip
    out = tmp_path / "out"
    build(
        resolve_config(source="local", overrides={"input": str(folder), "filter.min_height": 144}),
        out,
    )
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    by_range: dict[tuple[int, int], dict[str, dict]] = {}
    for row in rows:
        name = Path(row["source_uri"]).name
        by_range.setdefault((row["start_frame"], row["end_frame"]), {})[name] = row
    kept_ids = {r["clip_id"] for r in rows if r["status"] == "kept"}
    passing = 0
    for copies in by_range.values():
        # Among the copies of one frame range that pass every filter, exactly one is kept and
        # the others name a kept clip as their original.
        good = [r for r in copies.values() if r["status"] == "kept" or r["duplicate_of"]]
        if not good:
            continue
        passing += 1
        assert sum(r["status"] == "kept" for r in good) == 1, copies.keys()
        for row in good:
            if row["status"] != "kept":
                assert row["reject_reasons"] == ["duplicate"] and row["duplicate_of"] in kept_ids
        names = {Path(r["source_uri"]).name for r in good}
        assert ("a_original.mp4" in names) == ("b_same_bytes.mp4" in names)  # identical bytes
    assert passing >= 5
