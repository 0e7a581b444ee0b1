"""The feature networks of `tld eval`'s LPIPS, FID and FVD, loaded from user-supplied files.

Each metric needs registry entries of :mod:`timelapse_d.weights` (:data:`METRIC_WEIGHTS`); every
missing file is named at once, before any work. Frames are H x W x 3 uint8 arrays (any leading
axes), as `tld eval` generates them.

FVD here is the Fréchet distance between the 1024-d pooled features of the I3D network with
PyTorch-ported weights, not between the logits of the TF-Hub I3D module of the original FVD:
its values are not directly comparable with published FVD figures.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from timelapse_d.metrics.i3d import InceptionI3d, i3d_features, load_i3d
from timelapse_d.metrics.inception import FIDInception, inception_features, load_fid_inception
from timelapse_d.metrics.lpips import LPIPS, load_lpips, lpips_distance
from timelapse_d.weights import require_all

METRIC_WEIGHTS: dict[str, tuple[str, ...]] = {
    "lpips": ("lpips_alexnet", "lpips_alex_heads"),
    "fid": ("fid_inception",),
    "fvd": ("fvd_i3d",),
}
WITHOUT_WEIGHTS = "PSNR and SSIM need no weight files: run with --metrics psnr,ssim without them"


@dataclass(frozen=True)
class FeatureNets:
    """The networks of the requested metrics, in eval mode (None: that metric was not asked)."""

    lpips: LPIPS | None = None
    inception: FIDInception | None = None
    i3d: InceptionI3d | None = None


def load_feature_nets(
    metrics: Collection[str], device: str | torch.device, weights_dir: Path | str | None = None
) -> FeatureNets:
    """Load the networks that ``metrics`` need from the weights directory.

    Checks every needed file first: one MissingWeights names each missing file, the metric
    that needs it and how to install it.
    """
    users = {name: metric.upper() for metric in metrics for name in METRIC_WEIGHTS.get(metric, ())}
    paths = require_all(users, weights_dir, hint=WITHOUT_WEIGHTS)
    return FeatureNets(
        lpips=load_lpips(paths["lpips_alexnet"], paths["lpips_alex_heads"], device)
        if "lpips" in metrics
        else None,
        inception=load_fid_inception(paths["fid_inception"], device) if "fid" in metrics else None,
        i3d=load_i3d(paths["fvd_i3d"], device) if "fvd" in metrics else None,
    )


def _channels_first(frames: np.ndarray) -> torch.Tensor:
    """... x H x W x 3 uint8 -> ... x 3 x H x W uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3)


def unit_frames(frames: np.ndarray) -> torch.Tensor:
    """... x H x W x 3 uint8 -> ... x 3 x H x W float in [-1, 1]."""
    return _channels_first(frames).float() / 127.5 - 1.0


def lpips_to_input(model: LPIPS, first: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """LPIPS between ``first`` (H x W x 3) and each of ``frames`` (T x H x W x 3): T values."""
    batch = unit_frames(frames)
    return lpips_distance(model, unit_frames(first[None]).expand_as(batch), batch).numpy()


def frame_features(model: FIDInception, frames: np.ndarray) -> np.ndarray:
    """FID Inception features of T x H x W x 3 frames: T x 2048."""
    return inception_features(model, _channels_first(frames)).numpy()


def video_features(model: InceptionI3d, videos: np.ndarray) -> np.ndarray:
    """I3D features of N x T x H x W x 3 videos: N x 1024."""
    return i3d_features(model, unit_frames(videos)).numpy()
