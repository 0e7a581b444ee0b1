"""Camera and scene motion scores on frames with known motion."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import SHARED_MEDIA, needs_shared_media

from timelapse_d.analysis.motion import (
    MotionAnalyzer,
    MotionConfig,
    PairMeasurements,
    clip_motion_scores,
)
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


def _scores(
    frames: list[np.ndarray], start: int = 0, end: int | None = None, stride: int = 3
) -> dict:
    analyzer = MotionAnalyzer(MotionConfig(pair_stride=stride))
    for index, frame in enumerate(frames):
        analyzer.update(index, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
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


def _pair_table(tx: np.ndarray, modelled: np.ndarray) -> PairMeasurements:
    """Pairs every 3rd frame with translation `tx` (pixels at 256 px) where `modelled`."""
    n = len(tx)
    zeros = np.zeros(n)
    return PairMeasurements(
        index=np.arange(n) * 3, gap=np.ones(n, np.int64), tx=np.where(modelled, tx, 0.0),
        ty=zeros, zoom=zeros, rotation=zeros, residual=zeros, change=zeros,
        inlier_ratio=zeros, valid=np.ones(n, bool), modelled=modelled,
    )  # fmt: skip


def test_pairs_without_a_camera_model_do_not_hide_hand_held_jitter() -> None:
    """Jitter of 0.5 px a frame on the pairs that found a model shows as shake, whether the
    others found one or not; when most pairs found none, the few models are no trajectory."""
    jitter = np.random.default_rng(0).normal(0, 0.5, 30)
    every = clip_motion_scores(_pair_table(jitter, np.ones(30, bool)), 0, 100, 256)
    half = clip_motion_scores(_pair_table(jitter, np.arange(30) % 2 == 0), 0, 100, 256)
    few = clip_motion_scores(_pair_table(jitter, np.arange(30) % 5 == 0), 0, 100, 256)
    assert every["camera_shake"] > LIMITS.max_camera_shake
    assert half["camera_shake"] > LIMITS.max_camera_shake
    assert few["camera_shake"] < LIMITS.max_camera_shake


@pytest.mark.parametrize("stride", [2, 3])
def test_a_pan_with_each_frame_shown_three_times_is_still_a_pan(stride: int) -> None:
    # A low-frame-rate time-lapse exported at a higher rate repeats its frames: pairs of two
    # copies of the same picture must not make the pan look still.
    frames = [_camera(SCENE, k // 3, 256, tx=8.0) for k in range(3 * FRAMES)]
    scores = _scores(frames, stride=stride)
    assert _has_camera_motion(scores), scores
    assert scores["frame_change"] > LIMITS.min_frame_change


def _decode(path: Path, width: int | None = 256) -> list[np.ndarray]:
    """BGR frames of a real clip, scaled to `width` (aspect kept) or at their own size."""
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            size = {}
            if width:
                size = {"width": width, "height": round(frame.height * width / frame.width / 2) * 2}
            frames.append(frame.reformat(format="bgr24", **size).to_ndarray())
    return frames


@needs_shared_media
@pytest.mark.parametrize(
    ("name", "camera_moves"),
    [
        ("camera_motion/pan_153_105898.mp4", True),
        ("camera_motion/static_meadow_yoga.mp4", False),
        ("camera_motion/static_tree.avi", False),
        ("timelapse/sunset-2024-06-22_timelapse.mp4", False),
    ],
)
def test_real_clips(name: str, camera_moves: bool) -> None:
    scores = _scores(_decode(SHARED_MEDIA / name))
    assert _has_camera_motion(scores) == camera_moves, scores


@needs_shared_media
def test_real_cloud_frames_from_a_static_camera() -> None:
    paths = sorted((SHARED_MEDIA / "timelapse" / "al_motion_frames").glob("*.jpg"))
    frames = [
        cv2.resize(cv2.imread(str(p)), (256, 144), interpolation=cv2.INTER_AREA) for p in paths
    ]
    scores = _scores(frames, stride=1)
    assert not _has_camera_motion(scores), scores
    assert scores["scene_motion"] > LIMITS.min_scene_motion


@needs_shared_media
def test_none_of_the_48_static_camera_sky_tiles_has_camera_motion() -> None:
    grid = _decode(SHARED_MEDIA / "timelapse" / "sky_timelapse_grid8x6.mp4", width=None)
    flagged = []
    for row in range(6):
        for col in range(8):
            x, y = 2 + 130 * col, 2 + 130 * row
            scores = _scores([frame[y : y + 128, x : x + 128] for frame in grid])
            if _has_camera_motion(scores):
                flagged.append(((row, col), scores))
    assert not flagged
