"""Camera and scene motion scores on frames with known motion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from timelapse_d.analysis.motion import MotionAnalyzer, clip_motion_scores
from timelapse_d.config import FilterConfig
from timelapse_d.stages.filter import CAMERA_LIMITS

LIMITS = FilterConfig()
FRAMES = 40


def _texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A textured landscape-like image (smooth noise at several scales plus a horizon)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width), np.float32)
    for cell in (4, 12, 40):
        noise = rng.standard_normal((height // cell + 2, width // cell + 2)).astype(np.float32)
        image += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) * cell
    image += np.where(np.arange(height)[:, None] > height * 0.45, 40.0, 0.0)
    image = cv2.normalize(image, None, 20, 235, cv2.NORM_MINMAX)
    return cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_GRAY2BGR)


def _camera(scene: np.ndarray, k: int, width: int, tx=0.0, zoom=0.0, angle=0.0, jitter=None):
    """Frame k seen by a camera moving over `scene` (a larger canvas), at output `width`."""
    h, w = scene.shape[:2]
    offset = np.array(jitter[k]) if jitter is not None else np.zeros(2)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), np.degrees(angle * k), (1 + zoom) ** k)
    matrix[:, 2] += [tx * k + offset[0], offset[1]]
    frame = cv2.warpAffine(scene, matrix, (w, h), flags=cv2.INTER_LINEAR)
    crop = frame[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    return cv2.resize(crop, (width, round(width * crop.shape[0] / crop.shape[1])))


def _scores(frames: list[np.ndarray], start: int = 0, end: int | None = None) -> dict:
    analyzer = MotionAnalyzer()
    for index, frame in enumerate(frames):
        analyzer.update(index, frame)
    return clip_motion_scores(analyzer.pairs(), start, end or len(frames), frames[0].shape[1])


def _has_camera_motion(scores: dict) -> bool:
    return any(scores[score] > getattr(LIMITS, limit) for score, limit in CAMERA_LIMITS)


SCENE = _texture(1024, 576)


@pytest.mark.parametrize(
    "motion",
    [
        {"tx": 1.0},  # 0.5 px/frame at 256 px: a slow steady pan
        {"tx": 8.0},
        {"zoom": 0.008},
        {"angle": 0.004},
        {"jitter": np.random.default_rng(1).normal(0, 6.0, (FRAMES, 2))},
    ],
    ids=["slow pan", "pan", "zoom", "roll", "shake"],
)
def test_camera_motion_is_detected(motion: dict) -> None:
    frames = [_camera(SCENE, k, 256, **motion) for k in range(FRAMES)]
    assert _has_camera_motion(_scores(frames))


def test_still_image_with_noise_is_static_without_camera_motion() -> None:
    rng = np.random.default_rng(2)
    still = _camera(SCENE, 0, 256)
    frames = [
        np.clip(still + rng.normal(0, 2.0, still.shape), 0, 255).astype(np.uint8)
        for _ in range(FRAMES)
    ]
    scores = _scores(frames)
    assert not _has_camera_motion(scores)
    assert scores["scene_motion"] < LIMITS.min_scene_motion
    assert scores["frame_change"] < LIMITS.min_frame_change


def test_drifting_clouds_over_still_ground_are_scene_motion_not_camera() -> None:
    still = _camera(SCENE, 0, 256)
    clouds = _texture(512, 144, seed=5)
    frames = []
    for k in range(FRAMES):
        frame = still.copy()
        sky = clouds[:, 3 * k : 3 * k + 256]  # the top 60% drifts 3 px/frame
        frame[: int(0.6 * frame.shape[0])] = sky[: int(0.6 * frame.shape[0])]
        frames.append(frame)
    scores = _scores(frames)
    assert not _has_camera_motion(scores), scores
    assert scores["scene_motion"] > 10 * LIMITS.min_scene_motion


def test_scores_do_not_depend_on_the_analysis_width() -> None:
    at = {w: _scores([_camera(SCENE, k, w, tx=6.0) for k in range(FRAMES)]) for w in (256, 384)}
    assert at[256]["camera_translation"] == pytest.approx(at[384]["camera_translation"], rel=0.1)
    assert at[256]["camera_drift"] == pytest.approx(at[384]["camera_drift"], rel=0.1)


def test_a_clip_uses_only_the_pairs_inside_it() -> None:
    still = [_camera(SCENE, 0, 256)] * 20
    panning = [_camera(SCENE, k, 256, tx=8.0) for k in range(20)]
    frames = still + panning
    assert not _has_camera_motion(_scores(frames, 0, 20))
    assert _has_camera_motion(_scores(frames, 20, 40))
