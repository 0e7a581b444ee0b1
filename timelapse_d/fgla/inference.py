"""FGLA inference: per-region latents chosen from reference motions, and the generated flow.

A :class:`Reference` is the motion of a reference video: the backward flow (grid units) and
one-hot group masks of one or more of its frame pairs, at ``image_size`` or already at the
encoder's ``flow_size``. Fine-grained control picks, per group, the reference that supplies
its latent (the sky from one video, the water from another); a group with no reference, or
whose reference lacks that group, gets z = 0: no motion. Every function here puts the model in
eval mode and runs without gradients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from timelapse_d.fgla.model import encoder_inputs
from timelapse_d.segment.groups import GROUP_NAMES


@dataclass(frozen=True)
class Reference:
    """Frame pairs of a reference video: flow P x 2 x H x W in grid units and one-hot masks
    P x G x H x W, with H = W = ``image_size`` or ``flow_size``."""

    flow: Tensor
    masks: Tensor


def reference_latents(model: nn.Module, reference: Reference) -> tuple[Tensor, Tensor]:
    """Z (G x latent_dim) of a reference, each group's latent averaged over the pairs where
    the group is present, and ``present`` (G bool): whether any pair has the group."""
    device = _device(model)
    flow = reference.flow.to(device)
    masks = reference.masks.to(device, flow.dtype)
    if flow.shape[-1] != model.config.flow_size:
        flow, masks = encoder_inputs(flow, masks, model.config)
    model.eval()
    with torch.no_grad():
        latents, present = model.encode(flow, masks)
    weights = present.to(latents.dtype).unsqueeze(2)
    mean = (latents * weights).sum(0) / weights.sum(0).clamp_min(1.0)
    return mean, present.any(0)


def region_latents(model: nn.Module, choice: Mapping[str, Reference]) -> Tensor:
    """Z (G x latent_dim): the row of each group named in ``choice`` (group name ->
    reference) is that group's latent in its reference; every other row is 0. A reference
    chosen for several groups is encoded once."""
    config = model.config
    unknown = sorted(set(choice) - set(GROUP_NAMES))
    if unknown:
        raise ValueError(f"unknown group {unknown[0]!r}; groups: {', '.join(GROUP_NAMES)}")
    z = torch.zeros(config.groups, config.code_dim, device=_device(model))
    encoded: dict[int, tuple[Tensor, Tensor]] = {}
    for name, reference in choice.items():
        if id(reference) not in encoded:
            encoded[id(reference)] = reference_latents(model, reference)
        latents, present = encoded[id(reference)]
        group = GROUP_NAMES.index(name)
        if present[group]:
            z[group] = latents[group]
    return z


def generate_flow(model: nn.Module, image: Tensor, masks: Tensor, latents: Tensor) -> Tensor:
    """Flow (N x 2 x S x S, grid units) for images N x 3 x S x S in [-1, 1] and their one-hot
    masks N x G x S x S, driven by latents Z (G x latent_dim, shared by the batch)."""
    model.eval()
    with torch.no_grad():
        batch = latents.to(image).expand(image.shape[0], -1, -1)
        return model.generate(image, batch, masks.to(image))


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
