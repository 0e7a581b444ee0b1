"""A trained motion model read back from a `tld train` checkpoint, for animation and evaluation.

The checkpoint (``OUT/checkpoint.pt``) carries the resolved config beside the weights, so the
network is rebuilt exactly as it was trained and its weights are loaded strictly: a file from
another model or config is refused with the first mismatching key named.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from timelapse_d.checkpoints import CheckpointError, load_strict
from timelapse_d.errors import ConfigError
from timelapse_d.fgla.al import AnimatingLandscape
from timelapse_d.fgla.codebook import codebook_latents
from timelapse_d.fgla.config import FGLAConfig, fgla_config_from_dict
from timelapse_d.fgla.inference import Motion, MotionNetwork
from timelapse_d.fgla.model import FGLA


@dataclass(frozen=True)
class TrainedModel:
    """A network in eval mode with the config it was trained under."""

    model: MotionNetwork
    config: FGLAConfig
    source: Path
    step: int
    codebook: Tensor | None = None  # K x code_dim motion codes (Animating Landscape)


def build_model(config: FGLAConfig) -> MotionNetwork:
    """The network ``config`` describes (``model.kind``: FGLA or Animating Landscape)."""
    if config.model.kind == "al":
        return AnimatingLandscape(config.model)
    return FGLA(config.model)


def load_trained(path: Path | str, device: str | torch.device = "cpu") -> TrainedModel:
    """Read a training checkpoint (weights only, no code runs) and rebuild its model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: checkpoint not found (`tld train --out DIR` writes DIR/checkpoint.pt)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for files that are not checkpoints
        raise CheckpointError(f"{path}: not a readable training checkpoint ({exc})") from exc
    if not isinstance(payload, Mapping) or not {"model", "config"} <= set(payload):
        raise CheckpointError(f"{path}: not a `tld train` checkpoint (no model and config)")
    try:
        config = fgla_config_from_dict(payload["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: its config is not valid here ({exc})") from exc
    with torch.device("meta"):
        model = build_model(config)
    load_strict(model, _tensors(payload["model"], path), path)
    codebook = _codebook(payload, config, path)
    return TrainedModel(model.to(device).eval(), config, path, _step(payload), codebook)


def _codebook(payload: Mapping[str, Any], config: FGLAConfig, path: Path) -> Tensor | None:
    """The checkpoint's codebook (K x code_dim), None when it has none."""
    codebook = payload.get("codebook")
    if codebook is None:
        return None
    width = config.model.code_dim
    if not isinstance(codebook, Tensor) or codebook.dim() != 2 or codebook.shape[1] != width:
        raise CheckpointError(f"{path}: its codebook is not a K x {width} tensor")
    return codebook.float()


def _tensors(state: Any, path: Path) -> dict[str, Tensor]:
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: the model entry is not a state dict of tensors")
    return dict(state)


def _step(payload: Mapping[str, Any]) -> int:
    positions = payload.get("positions") or [{}]
    return int(positions[0].get("step", 0))


def sample_codes(trained: TrainedModel, count: int, seed: int | str = 0) -> list[Motion] | None:
    """``count`` motions from codebook entries drawn at random (with replacement, seeded), as
    Animating Landscape samples its codebook, or None when the model has no codebook (its
    motion comes from references)."""
    if trained.codebook is None:
        return None
    rng = random.Random(seed)
    return [codebook_motion(trained, rng.randrange(len(trained.codebook))) for _ in range(count)]


def codebook_motion(trained: TrainedModel, index: int) -> Motion:
    """The motion of codebook entry ``index``: its code for the whole image, every group
    moving."""
    latents = code_latents(trained, index)
    return Motion(latents[None], torch.ones(len(latents), dtype=torch.bool, device=latents.device))


def code_latents(trained: TrainedModel, index: int) -> Tensor:
    """Latents (G x code_dim) of codebook entry ``index``; ConfigError when the model has no
    codebook or no such entry."""
    if trained.codebook is None:
        raise ConfigError(
            f"{trained.source}: this model has no codebook (FGLA takes its motion from "
            "--reference videos; codebooks come with Animating Landscape models)"
        )
    try:
        latents = codebook_latents(trained.codebook, index, trained.config.model.groups)
    except IndexError as exc:
        raise ConfigError(f"--code: {exc}") from exc
    return latents.to(next(trained.model.parameters()).device)
