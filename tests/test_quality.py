"""Sharpness, exposure and held-still measurements, and the reasons they give."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from timelapse_d.analysis.quality import QualityAnalyzer, blur_estimate, exposure
from timelapse_d.config import FilterConfig
from timelapse_d.stages.filter import reject_reasons
from timelapse_d.synth.landscape import DAY_PALETTES
from timelapse_d.synth.render import render
from timelapse_d.synth.scenes import SceneSpec, build_scene


def landscape(seed: int = 0) -> np.ndarray:
    """A grey frame of the synthetic generator's cloud landscape at 256x144."""
    spec = SceneSpec("clouds", 1, DAY_PALETTES[0], 0.6)
    rng = np.random.default_rng(seed)
    frame = next(render(build_scene(spec, (144, 256), rng), (144, 256), rng))
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def sharpness(gray: np.ndarray) -> float:
    blur = blur_estimate(gray)
    assert blur is not None
    return 1.0 - blur


def test_sharpness_falls_with_blur_and_ignores_contrast() -> None:
    frame = landscape()
    values = [sharpness(cv2.GaussianBlur(frame, (0, 0), s) if s else frame) for s in (0, 1, 2, 3)]
    assert values == sorted(values, reverse=True) and values[0] - values[-1] > 0.3, values
    defaults = FilterConfig()
    assert values[0] > defaults.min_sharpness > values[-1]
    # Fog: the same picture at a third of the contrast is as sharp, not blurry.
    foggy = (frame.astype(np.float32) * 0.33 + 150).astype(np.uint8)
    assert abs(sharpness(foggy) - values[0]) < 0.06


def test_flat_frames_are_not_judged() -> None:
    assert blur_estimate(np.full((144, 256), 3, np.uint8)) is None


def test_exposure_keeps_a_night_sky_and_flags_black_and_burnt_frames() -> None:
    night = np.full((144, 256), 8, np.uint8)
    night[100:110, :] = 70  # a lit horizon band (7 % of the frame)
    night[np.random.default_rng(1).integers(0, 144, 40), np.arange(40) * 6] = 255  # stars
    almost_black = np.full((144, 256), 9, np.uint8)
    burnt = np.full((144, 256), 255, np.uint8)
    burnt[:40] = 120
    defaults = FilterConfig()
    assert exposure(night)[0] >= defaults.min_highlight_luma
    assert exposure(almost_black)[0] < defaults.min_highlight_luma
    assert exposure(burnt)[1] > defaults.max_clipped_white > exposure(night)[1]


def feed(frames: list[np.ndarray], fps: float = 25.0) -> dict[str, float | None]:
    analyzer = QualityAnalyzer(fps)
    for index, frame in enumerate(frames):
        analyzer.update(index, frame)
    return analyzer.clip_scores(0, len(frames))


def drifting(n: int, speed: float, hold: int = 1) -> list[np.ndarray]:
    """A picture drifting `speed` px per frame, renewed every `hold` frames."""
    base = np.concatenate([landscape(3), landscape(4)], axis=1)
    return [base[:, int(speed * (k - k % hold)) :][:, :256].copy() for k in range(n)]


@pytest.mark.parametrize(
    ("hold", "speed", "slideshow"),
    [(12, 1.0, True), (1, 1.0, False), (3, 1.0, False), (1, 0.0, False)],
)
def test_slideshow_needs_pictures_held_long_enough(
    hold: int, speed: float, slideshow: bool
) -> None:
    scores = feed(drifting(96, speed, hold))
    clip = {
        "height": 720, "width": 1280, "num_frames": 96, "scene_motion": 1.0, "frame_change": 1.0,
        "camera_translation": 0.0, "camera_drift": 0.0, "camera_zoom": 0.0,
        "camera_rotation": 0.0, "camera_shake": 0.0, **scores,
    }  # fmt: skip
    assert ("slideshow" in reject_reasons(clip, FilterConfig())) == slideshow, scores


def test_a_flash_is_not_a_slideshow() -> None:
    frames = drifting(60, 0.0)
    frames[30] = np.full_like(frames[30], 250)
    assert feed(frames)["stills"] == 0
