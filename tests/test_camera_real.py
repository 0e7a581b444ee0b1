"""Camera motion on real footage under virtual cameras (a few segments of the corpus of
benchmarks/camera_corpus.py); skipped when ../shared/media is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from timelapse_d.config import AnalyzeConfig, FilterConfig
from timelapse_d.sources.local import find_videos
from timelapse_d.stages.analyze import analyze_video
from timelapse_d.stages.filter import reject_reasons
from timelapse_d.synth import real_camera

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
SEGMENTS = {s.name: s for s in real_camera.segments()}

pytestmark = pytest.mark.skipif(not SHARED_MEDIA.is_dir(), reason="../shared/media is absent")


def _clip(name: str, tmp_path: Path) -> dict:
    path = real_camera.write_segment(SEGMENTS[name], SHARED_MEDIA, tmp_path / f"{name}.mp4")
    (clip,) = analyze_video(find_videos(path)[0], AnalyzeConfig())["clips"]
    return clip


@pytest.mark.parametrize(
    "name",
    [
        "sunset-05-pan",  # a pan over clouds moving on their own, a thin skyline; skew, blur
        "coast_sea-14-handheld",  # hand-held over rippling water, rolling shutter, CRF 28
        "mountains_sunset-15-parallax",  # the mountains move faster than the sky behind them
        "mountains_tiles-14-handheld",  # slow hand-held, CRF 34: the ground agrees within noise
        "coast_clouds-14-handheld",  # hand-held, many pairs without a model: jitter shows
        "mountains_sunset-01-fast",  # fixed camera: fast clouds behind still mountains
        "coast_sea-02-fast",  # fixed camera: fast rippling water over most of the frame
        "tile_30-01-fast",  # fixed camera: fast clouds fill the whole frame
        "meadow-03-vibration",  # fixed camera vibrating below a visible amount
    ],
)
def test_camera_motion_is_flagged_as_the_truth_says(name: str, tmp_path: Path) -> None:
    clip = _clip(name, tmp_path)
    flagged = "camera_motion" in reject_reasons(clip, FilterConfig())
    assert flagged == SEGMENTS[name].camera_motion, clip


def test_the_ground_carries_a_pan_under_moving_clouds(tmp_path: Path) -> None:
    """The pan's speed is read off the skyline, not the clouds: within a tenth of the truth."""
    segment = SEGMENTS["sunset-05-pan"]
    clip = _clip(segment.name, tmp_path)
    assert clip["camera_translation"] == pytest.approx(segment.speed, rel=0.1)
