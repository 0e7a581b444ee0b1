"""Time-lapse-aware cuts: brightness ramps, flicker and flashes are not cuts; black runs are."""

from __future__ import annotations

import cv2
import numpy as np
from scenedetect import AdaptiveDetector
from scenedetect.common import FrameTimecode

from timelapse_d.analysis.cuts import (
    CutDetector,
    OnePassAdaptiveDetector,
    black_run_bounds,
    merge_cuts,
)
from timelapse_d.config import AnalyzeConfig


def _scene(seed: int, frames: int, drift: float = 1.0) -> list[np.ndarray]:
    """A textured landscape whose top half drifts `drift` px per frame."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.uniform(40, 220, (40, 90, 3)).astype(np.float32), (720, 144))
    base = cv2.GaussianBlur(base, (0, 0), 2.0)
    out = []
    for k in range(frames):
        frame = base[:, :256].copy()
        shift = int(k * drift)
        frame[:72] = base[:72, shift : shift + 256]
        out.append(frame)
    return out


def _cuts(frames: list[np.ndarray]) -> list[int]:
    detector = CutDetector(AnalyzeConfig(), fps=25.0)
    for index, frame in enumerate(frames):
        image = np.clip(frame, 0, 255).astype(np.uint8)
        detector.update(index, image, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    return detector.finish().cuts


def test_sunset_brightness_ramp_is_not_a_cut() -> None:
    frames = _scene(0, 150)
    ramp = np.linspace(1.0, 0.2, len(frames))
    assert _cuts([f * g for f, g in zip(frames, ramp, strict=True)]) == []


def test_flicker_is_not_a_cut() -> None:
    gains = np.random.default_rng(1).uniform(0.85, 1.15, 150)
    frames = _scene(1, 150)
    assert _cuts([f * g for f, g in zip(frames, gains, strict=True)]) == []


def test_single_frame_flash_is_not_a_cut_but_a_hard_cut_is() -> None:
    frames = _scene(2, 80) + _scene(3, 80)
    frames[40] = np.full_like(frames[40], 250.0)
    assert _cuts(frames) == [80]


def test_fade_through_black_gives_a_black_segment() -> None:
    before, after = _scene(4, 72), _scene(6, 72)
    fade_out = np.linspace(1, 0, 12, endpoint=False)  # 1.0 ... 0.083
    fade_in = fade_out[::-1]
    frames = [f * g for f, g in zip(before, np.r_[np.ones(60), fade_out], strict=True)]
    frames += [np.zeros_like(before[0])] * 6
    frames += [f * g for f, g in zip(after, np.r_[fade_in, np.ones(60)], strict=True)]
    cuts = _cuts(frames)
    assert len(cuts) == 2, cuts
    # The black segment holds the black frames and the fade frames darker than analyze.black_luma.
    assert 66 <= cuts[0] <= 72 and 78 <= cuts[1] <= 84, cuts


def test_black_runs_and_merging() -> None:
    black = np.array([0, 0, 1, 1, 1, 0, 0, 0, 1, 1], dtype=bool)
    assert black_run_bounds(black) == [2, 5, 8]
    # a detector cut inside the black run is dropped, one next to a bound collapses onto it
    assert merge_cuts([3, 6, 7], black) == [2, 5, 8]
    assert merge_cuts([], np.zeros(10, dtype=bool)) == []


def test_one_pass_detector_scores_and_cuts_like_pyscenedetect() -> None:
    rng = np.random.default_rng(7)
    frames = _scene(8, 40) + _scene(9, 40, drift=3.0) + _scene(10, 40)
    frames = [np.clip(f * rng.uniform(0.97, 1.03), 0, 255).astype(np.uint8) for f in frames]
    theirs = AdaptiveDetector(adaptive_threshold=3.0, min_scene_len=15, min_content_val=15.0)
    ours = OnePassAdaptiveDetector(adaptive_threshold=3.0, min_scene_len=15, min_content_val=15.0)
    cuts: dict[str, list[int]] = {"theirs": [], "ours": []}
    for index, frame in enumerate(frames):
        timecode = FrameTimecode(index, fps=25.0)
        cuts["theirs"] += [c.frame_num for c in theirs.process_frame(timecode, frame)]
        cuts["ours"] += [c.frame_num for c in ours.process_frame(timecode, frame)]
        assert ours._frame_score == theirs._frame_score, index
    assert cuts["ours"] == cuts["theirs"] == [40, 80]
