"""FGLA training samples streamed from the synthetic build's shards and truth fields."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from timelapse_d.fgla.data import FGLAStream, StreamConfig, collate, mirror_sample

SIZE = 256


def stream(fields_build: Path, **options: object) -> FGLAStream:
    return FGLAStream(StreamConfig(str(fields_build / "shards"), **options))


def warp_error(sample: dict) -> tuple[float, float]:
    """Mean |warp(I_t, F) - I_t+1| and |I_t - I_t+1| on pixels whose flow moves them."""
    grid = np.mgrid[0:SIZE, 0:SIZE][::-1].astype(np.float32).transpose(1, 2, 0)
    flow = sample["flow"].transpose(1, 2, 0).astype(np.float32)
    a, b = (np.ascontiguousarray(sample[k].transpose(1, 2, 0)) for k in ("image_t", "image_t1"))
    warped = cv2.remap(a, grid + flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    moving = np.linalg.norm(flow, axis=-1) > 1.0
    inner = np.zeros_like(moving)
    inner[8:-8, 8:-8] = True
    moving &= inner
    return float(np.abs(warped - b)[moving].mean()), float(np.abs(a - b)[moving].mean())


def test_samples_have_fgla_shapes_and_ranges(fields_build: Path) -> None:
    samples = list(stream(fields_build, mirror=False))
    clips = sum(1 for _ in (fields_build / "shards").glob("clips-*.tar"))
    assert len(samples) >= 10 and clips >= 1
    for s in samples:
        assert s["image_t"].shape == s["image_t1"].shape == (3, SIZE, SIZE)
        assert s["flow"].shape == (2, SIZE, SIZE) and s["masks"].shape == (6, SIZE, SIZE)
        assert s["image_t"].min() >= -1.0 and s["image_t"].max() <= 1.0
        np.testing.assert_array_equal(s["masks"].sum(axis=0), 1.0)
    assert len({s["key"] for s in samples}) == len(samples)  # one pair per clip per pass


def test_mirrored_samples_still_warp_frame_t_onto_t_plus_1(fields_build: Path) -> None:
    """Mirroring the flow without negating its x component would make the warp worse than none."""
    checked = 0
    for sample in stream(fields_build, mirror=False):
        if np.abs(sample["flow"][0]).mean() < 0.3:
            continue
        original, still = warp_error(sample)
        if original > 0.8 * still:  # swaying trees hide their branches: no clear signal
            continue
        mirrored = mirror_sample(sample)
        error, _ = warp_error(mirrored)
        assert error < 1.1 * original + 1e-3, (sample["key"], error, original)
        wrong = {**mirrored, "flow": mirrored["flow"] * np.array([-1.0, 1.0])[:, None, None]}
        assert warp_error(wrong)[0] > error
        checked += 1
    assert checked >= 3


def test_ranks_see_disjoint_data_and_seeds_reproduce(fields_build: Path) -> None:
    ranks = [
        {s["key"] for s in stream(fields_build, rank=r, world_size=2, mirror=False)} for r in (0, 1)
    ]
    assert ranks[0] and ranks[1] and not ranks[0] & ranks[1]
    everything = {s["key"] for s in stream(fields_build, mirror=False)}
    assert ranks[0] | ranks[1] == everything
    first = [
        (s["key"], s["pair"], s["mirrored"]) for s in stream(fields_build, seed=3, mirror=True)
    ]
    again = [
        (s["key"], s["pair"], s["mirrored"]) for s in stream(fields_build, seed=3, mirror=True)
    ]
    other = stream(fields_build, seed=3, mirror=True)
    other.set_epoch(1)
    assert first == again
    assert [(s["key"], s["pair"], s["mirrored"]) for s in other] != first


def test_dataloader_workers_split_shards_and_batches_stack(fields_build: Path) -> None:
    data = stream(fields_build, mirror=False)
    direct = sorted(s["key"] for s in data)
    loader = DataLoader(data, batch_size=4, num_workers=2, collate_fn=collate)
    keys = []
    for batch in loader:
        assert batch["image_t"].dtype == torch.float32 and batch["image_t"].shape[1:] == (
            3,
            256,
            256,
        )
        keys += batch["key"]
    assert sorted(keys) == direct  # every clip once, no worker repeats another's shards


def test_resampled_stream_is_endless(fields_build: Path) -> None:
    data = iter(stream(fields_build, resampled=True, shuffle_buffer=0))
    taken = [next(data)["key"] for _ in range(40)]
    assert len(taken) == 40


def test_missing_shards_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tld precompute"):
        FGLAStream(StreamConfig(str(tmp_path)))
