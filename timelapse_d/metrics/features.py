"""The feature networks behind LPIPS, FID and FVD, loaded from user-supplied weights.

Each metric names the registry entries it needs (:data:`METRIC_WEIGHTS`); every missing file
is reported at once, with the command that installs it, before any network is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from timelapse_d.torch_runtime import resolve_device
from timelapse_d.weights import MissingWeights, require

METRIC_WEIGHTS = {
    "lpips": ("lpips_alexnet", "lpips_alex_heads"),
    "fid": ("fid_inception",),
    "fvd": ("fvd_i3d",),
}


@dataclass(frozen=True)
class FeatureNets:
    """The networks the chosen metrics need (None: not needed)."""

    lpips: Any = None
    inception: Any = None
    i3d: Any = None

    def lpips_to_first(self, first: np.ndarray, frames: np.ndarray) -> float:
        """Mean LPIPS between ``first`` (S, S, 3) and each of ``frames`` (T, S, S, 3), uint8."""
        from timelapse_d.metrics.lpips import lpips_distance

        device = next(self.lpips.parameters()).device
        generated = _unit(frames).to(device)
        distances = lpips_distance(
            self.lpips, _unit(first[None]).to(device).expand_as(generated), generated
        )
        return float(distances.mean())

    def frame_features(self, frames: np.ndarray) -> np.ndarray:
        """Inception pool features (N, 2048) of uint8 frames (N, S, S, 3)."""
        from timelapse_d.metrics.inception import inception_features

        device = next(self.inception.parameters()).device
        return inception_features(self.inception, _unit(frames).to(device)).cpu().numpy()

    def video_features(self, videos: np.ndarray) -> np.ndarray:
        """I3D features (N, 1024) of uint8 videos (N, T, S, S, 3)."""
        from timelapse_d.metrics.i3d import i3d_features

        device = next(self.i3d.parameters()).device
        n, t = videos.shape[:2]
        clips = _unit(videos.reshape(n * t, *videos.shape[2:])).view(n, t, 3, *videos.shape[2:4])
        return i3d_features(self.i3d, clips.to(device)).cpu().numpy()


def load_feature_nets(
    metrics: Sequence[str], device: str = "cpu", weights_dir: Path | None = None
) -> FeatureNets:
    """Load the networks of ``metrics``; MissingWeights lists every missing file first."""
    paths: dict[str, Path] = {}
    problems = []
    for metric in metrics:
        for name in METRIC_WEIGHTS.get(metric, ()):
            try:
                paths[name] = require(name, weights_dir)
            except MissingWeights as exc:
                problems.append(f"{metric}: {exc}")
    if problems:
        raise MissingWeights(
            "\n".join(problems) + "\n(or leave those metrics out, e.g. --metrics psnr,ssim)"
        )
    resolved = resolve_device(device)
    nets: dict[str, Any] = {}
    if "lpips" in metrics:
        from timelapse_d.metrics.lpips import load_lpips

        nets["lpips"] = load_lpips(paths["lpips_alexnet"], paths["lpips_alex_heads"], resolved)
    if "fid" in metrics:
        from timelapse_d.metrics.inception import load_fid_inception

        nets["inception"] = load_fid_inception(paths["fid_inception"], resolved)
    if "fvd" in metrics:
        from timelapse_d.metrics.i3d import load_i3d

        nets["i3d"] = load_i3d(paths["fvd_i3d"], resolved)
    return FeatureNets(**nets)


def _unit(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
