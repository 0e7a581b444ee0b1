"""The procedural corpus: deterministic, and its truth (cuts, flow, regions) is right."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from timelapse_d.synth import load_truth, write_corpus

SIZE = {"width": 256, "height": 144}
KINDS = {"clouds", "water", "trees", "stars", "sky_and_water", "flash", "pan", "zoom", "shake",
         "still", "slideshow", "black", "fade", "photo_steps"}  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_corpus(tmp_path_factory.mktemp("synth"), seed=3, **SIZE)


def _gray_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray").astype(np.float32) for f in container.decode(video=0)]


def test_same_seed_gives_identical_files_and_another_seed_differs(
    corpus: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="timelapse_d"):
        again = write_corpus(tmp_path / "again", seed=3, **SIZE)
    done = [r.getMessage() for r in caplog.records if "videos rendered" in r.getMessage()]
    assert len(done) == len(again) and done[-1].startswith(f"synthetic corpus: {len(again)}/")
    for a, b in zip(corpus, again, strict=True):
        assert a.read_bytes() == b.read_bytes()
        for suffix in (".truth.json", ".truth.npz"):
            assert a.with_suffix(suffix).read_bytes() == b.with_suffix(suffix).read_bytes()
    # Segment lengths depend on the seed, not on the size: a tiny corpus is enough here.
    other = write_corpus(tmp_path / "other", seed=4, width=128, height=72)
    ours, theirs = load_truth(corpus[0]), load_truth(other[0])
    assert [s.end for s in ours.segments] != [s.end for s in theirs.segments]


def test_truth_partitions_each_video_and_covers_every_kind(corpus: list[Path]) -> None:
    kinds = set()
    for path in corpus:
        truth = load_truth(path)
        with av.open(str(path)) as container:
            frames = [f for f in container.decode(video=0)]
        assert len(frames) == truth.num_frames
        assert (frames[0].width, frames[0].height) == (256, 144)
        bounds = [0] + truth.cuts + [truth.num_frames]
        assert [(s.start, s.end) for s in truth.segments] == list(
            zip(bounds, bounds[1:], strict=False)
        )
        for segment in truth.segments:
            kinds.add(segment.kind)
            assert (segment.expected_decision == "kept") == (not segment.expected_reasons)
    assert kinds == KINDS


def test_hard_cuts_are_visible_changes(corpus: list[Path]) -> None:
    for path in corpus:
        truth = load_truth(path)
        frames = _gray_frames(path)
        diffs = [float(np.abs(b - a).mean()) for a, b in zip(frames, frames[1:], strict=False)]
        typical = float(np.median(diffs))
        flashes = {f for s in truth.segments for f in s.flash_frames}
        for cut in truth.cuts:
            assert diffs[cut - 1] > 4 * typical + 2, (path.name, cut)
        assert not (flashes & set(truth.cuts))


@pytest.mark.parametrize("step", [1, 4])
def test_backward_flow_truth_warps_each_frame_onto_a_later_one(
    corpus: list[Path], step: int
) -> None:
    checked = 0
    for path in corpus:
        truth = load_truth(path)
        frames = _gray_frames(path)
        for segment in truth.segments:
            # Swaying branches hide each other over several frames: trees are judged per frame.
            kinds = {"clouds", "water", "sky_and_water"} | ({"trees"} if step == 1 else set())
            if segment.kind not in kinds:
                continue
            t = segment.start + 5
            flow = truth.flow(t, step)
            # Region borders mix a moving texture with its still neighbour: judge the interior.
            labels = truth.regions(t)
            interior = np.zeros_like(labels, dtype=bool)
            for label in np.unique(labels):
                mask = (labels == label).astype(np.uint8)
                interior |= cv2.erode(mask, np.ones((7, 7), np.uint8)).astype(bool)
            moving = (np.linalg.norm(flow, axis=-1) > 0.3) & interior
            h, w = flow.shape[:2]
            grid = np.mgrid[0:h, 0:w][::-1].astype(np.float32).transpose(1, 2, 0)
            warped = cv2.remap(frames[t], grid + flow, None, cv2.INTER_LINEAR)
            error_warped = np.abs(warped - frames[t + step])[moving].mean()
            error_still = np.abs(frames[t] - frames[t + step])[moving].mean()
            assert error_warped < 0.75 * error_still, (path.name, segment.kind)
            ground = truth.regions(t) == 0
            assert np.abs(flow[ground]).max() < 1e-3
            checked += 1
        with pytest.raises(ValueError):
            truth.flow(truth.cuts[0] - step, step)  # the pair crosses a cut: no flow
    assert checked >= 5
