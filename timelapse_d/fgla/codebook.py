"""The Animating Landscape motion codebook: the training videos' codes reduced by k-means to at
most ``size`` centres, ordered along the codes' first principal component so that neighbouring
entries drive similar motion."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from scipy.cluster.vq import kmeans2
from torch import Tensor

from timelapse_d.fgla.al import AnimatingLandscape
from timelapse_d.fgla.config import ModelConfig
from timelapse_d.fgla.data import clip_shards
from timelapse_d.fgla.warp import pixel_to_grid, resize_flow
from timelapse_d.shards.fields import decode_flow
from timelapse_d.shards.reader import iter_joined


def build_codebook(codes: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Centres (K x D, float64) of ``codes`` (M x D): the distinct codes themselves when there
    are at most ``size`` of them, else k-means (k-means++ start, seeded) with ``size`` centres,
    keeping the centres that own at least one code. Sorted by projection on the first principal
    component of ``codes``, its sign chosen so that its largest component is positive."""
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) == 0:
        raise ValueError(f"codes must be a non-empty M x D array, got shape {codes.shape}")
    if not np.isfinite(codes).all():
        raise ValueError("codes must be finite")
    if size <= 0:
        raise ValueError(f"codebook size must be positive, got {size}")
    distinct = np.unique(codes, axis=0)
    if len(distinct) <= size:
        centres = distinct
    else:
        with warnings.catch_warnings():  # an empty cluster is dropped below
            warnings.filterwarnings("ignore", "One of the clusters is empty")
            centres, labels = kmeans2(
                codes, size, iter=50, minit="++", rng=np.random.default_rng(seed)
            )
        centres = centres[np.unique(labels)]
    order = np.argsort(centres @ first_component(codes), kind="stable")
    return centres[order]


def first_component(codes: np.ndarray) -> np.ndarray:
    """Unit first principal axis (D) of ``codes`` (M x D), its largest-magnitude entry positive."""
    _, _, vt = np.linalg.svd(codes - codes.mean(0), full_matrices=False)
    axis = vt[0]
    return axis * np.sign(axis[np.argmax(np.abs(axis))])


def codebook_latents(codebook: Tensor | np.ndarray, index: int, groups: int) -> Tensor:
    """Latents Z (G x code_dim, float32) for codebook entry ``index``: the code in every group
    row, as :meth:`AnimatingLandscape.generate` takes it."""
    book = torch.as_tensor(codebook, dtype=torch.float32)
    if not 0 <= index < len(book):
        raise IndexError(
            f"codebook index {index} is out of range for a codebook of {len(book)} codes"
        )
    return book[index].expand(groups, -1).clone()


def field_codes(model: AnimatingLandscape, fields: Mapping[str, Tensor]) -> np.ndarray:
    """The code of each clip's common motion field (M x code_dim, in key order): the clip's
    latest code, from which Animating Landscape builds its codebook."""
    if not fields:
        raise ValueError("no common motion field: nothing to build a codebook")
    device = next(model.parameters()).device
    with torch.no_grad():
        stacked = torch.stack([fields[key] for key in sorted(fields)]).to(device)
        latents, _ = model.encode(stacked, None)
    return latents[:, 0].cpu().double().numpy()


def clip_codes(model: AnimatingLandscape, shard_dir: Path, config: ModelConfig) -> np.ndarray:
    """One code per clip of the build (M x code_dim): the mean of the codes ``model`` (an
    :class:`~timelapse_d.fgla.al.AnimatingLandscape`) gives the clip's frame pairs, the
    latent of a training video from which the codebook is built."""
    device = next(model.parameters()).device
    codes = []
    with torch.no_grad():
        for shard in clip_shards(shard_dir):
            for joined in iter_joined(shard, ("flow",)):
                pixels = torch.from_numpy(decode_flow(joined["flow"]))
                if len(pixels) == 0:
                    continue
                flow = pixel_to_grid(pixels, config.align_corners)
                small = resize_flow(flow.to(device), config.flow_size, config.flow_resize)
                latents, _ = model.encode(small, None)
                codes.append(latents[:, 0].mean(0).cpu().double().numpy())
    if not codes:
        raise ValueError(f"no clip with a frame pair in {shard_dir}: nothing to build a codebook")
    return np.stack(codes)
