"""Decisions on real footage from ../shared/media (skipped when it is absent)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import SHARED_MEDIA, needs_shared_media

from timelapse_d.config import AnalyzeConfig, FilterConfig, resolve_config
from timelapse_d.pipeline import build
from timelapse_d.sources.local import find_videos
from timelapse_d.stages.analyze import analyze_video
from timelapse_d.stages.filter import reject_reasons

pytestmark = [needs_shared_media, pytest.mark.slow]

# The clips are short and small: lower the length and resolution limits, as a user would.
SMALL_CLIPS = {"filter.min_frames": 16, "filter.min_height": 200}


def test_testvideo_adaptive_detector_matches_pyscenedetect_goldens() -> None:
    path = SHARED_MEDIA / "cuts" / "testvideo.mp4"
    golden = json.loads(
        (path.parent / "goldens" / "testvideo.mp4.AdaptiveDetector.default.json").read_text()
    )
    video = find_videos(path)[0]
    result = analyze_video(video, AnalyzeConfig())
    detected = result["stats"]["detector_cuts"]
    assert len(detected) == len(golden["cuts"])
    assert all(abs(a - b) <= 1 for a, b in zip(detected, golden["cuts"], strict=True)), detected


@pytest.fixture(scope="module")
def camera_build(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """One build over the real camera-motion and time-lapse clips; rows by file name."""
    folder = tmp_path_factory.mktemp("real")
    for name in [
        "camera_motion/pan_153_105898.mp4",
        "camera_motion/static_meadow_yoga.mp4",
        "camera_motion/static_tree.avi",
        "timelapse/sunset-2024-06-22_timelapse.mp4",
    ]:
        (folder / Path(name).name).symlink_to(SHARED_MEDIA / name)
    out = folder / "out"
    build(
        resolve_config(
            source="local", overrides={"input": str(folder), "workers": 2, **SMALL_CLIPS}
        ),
        out,
    )
    rows: dict[str, list] = {}
    for row in pq.read_table(out / "manifest.parquet").to_pylist():
        rows.setdefault(Path(row["source_uri"]).name, []).append(row)
    return rows


def test_real_pan_is_rejected_for_camera_motion(camera_build: dict) -> None:
    clips = camera_build["pan_153_105898.mp4"]
    longest = max(clips, key=lambda c: c["num_frames"])
    assert "camera_motion" in longest["reject_reasons"]


@pytest.mark.parametrize(
    "name",
    ["static_meadow_yoga.mp4", "static_tree.avi", "sunset-2024-06-22_timelapse.mp4"],
)
def test_real_static_camera_clips_are_not_rejected_for_camera_motion(
    camera_build: dict, name: str
) -> None:
    clips = camera_build[name]
    assert clips
    assert all("camera_motion" not in c["reject_reasons"] for c in clips), [
        (c["clip_id"], c["reject_reasons"]) for c in clips
    ]


QUALITY_REASONS = {"slideshow", "blurry", "too_dark", "blown_out"}


@pytest.mark.parametrize(
    "name",
    [
        "pan_153_105898.mp4",
        "static_meadow_yoga.mp4",
        "static_tree.avi",
        "sunset-2024-06-22_timelapse.mp4",
    ],
)
def test_real_footage_is_not_rejected_for_quality(camera_build: dict, name: str) -> None:
    flagged = [
        (c["clip_id"], c["reject_reasons"])
        for c in camera_build[name]
        if QUALITY_REASONS & set(c["reject_reasons"])
    ]
    assert not flagged


def test_defocused_real_clip_is_blurry(tmp_path: Path) -> None:
    """The tripod meadow blurred by a Gaussian of 3 px at the 256 px analysis width."""
    source = SHARED_MEDIA / "camera_motion" / "static_meadow_yoga.mp4"
    blurred = tmp_path / "defocused.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(source), "-vf", "gblur=sigma=24",
         "-c:v", "libx264", "-crf", "18", "-preset", "veryfast", str(blurred)],
        check=True,
    )  # fmt: skip
    sharp = analyze_video(find_videos(source)[0], AnalyzeConfig())["clips"]
    soft = analyze_video(find_videos(blurred)[0], AnalyzeConfig())["clips"]
    config = FilterConfig()
    assert all(c["sharpness"] > config.min_sharpness for c in sharp)
    assert soft and all("blurry" in reject_reasons(c, config) for c in soft), [
        c["sharpness"] for c in soft
    ]
