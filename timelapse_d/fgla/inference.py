"""FGLA inference: per-region latents chosen from reference motions, and the generated flow.

A :class:`Reference` is the motion of a reference video: the backward flow (grid units) and
one-hot group masks of one or more of its frame pairs, at ``image_size`` or already at the
encoder's ``flow_size``. Fine-grained control picks, per group, the reference that supplies
its latent (the sky from one video, the water from another); a group with no reference, or
whose reference lacks that group, holds still: it gets the latent of a zero flow and its
generated flow is set to exactly 0. Every function here puts the model in eval mode and runs
without gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeAlias

import torch
from torch import Tensor

from timelapse_d.fgla.al import AnimatingLandscape
from timelapse_d.fgla.animation import iter_frames, iter_recurrent_frames
from timelapse_d.fgla.config import FGLAConfig
from timelapse_d.fgla.model import FGLA, encoder_inputs
from timelapse_d.segment.groups import GROUP_NAMES

# Either kind of motion model: both encode flow into latents and generate flow from them.
MotionNetwork: TypeAlias = FGLA | AnimatingLandscape


@dataclass(frozen=True)
class Reference:
    """Frame pairs of a reference video: flow P x 2 x H x W in grid units and one-hot masks
    P x G x H x W, with H = W = ``image_size`` or ``flow_size``."""

    flow: Tensor
    masks: Tensor


def pair_latents(model: MotionNetwork, reference: Reference) -> tuple[Tensor, Tensor]:
    """Z of each frame pair of a reference (P x G x latent_dim) and ``present`` (P x G bool):
    whether the pair has the group (an absent group's z is 0)."""
    device = _device(model)
    flow = reference.flow.to(device)
    masks = reference.masks.to(device, flow.dtype)
    if flow.shape[-1] != model.config.flow_size:
        flow, masks = encoder_inputs(flow, masks, model.config)
    model.eval()
    with torch.no_grad():
        return model.encode(flow, masks)


def reference_latents(model: MotionNetwork, reference: Reference) -> tuple[Tensor, Tensor]:
    """Z (G x latent_dim) of a reference, each group's latent averaged over the pairs where
    the group is present, and ``present`` (G bool): whether any pair has the group."""
    return _average(*pair_latents(model, reference))


def _average(latents: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
    """Each group's latent averaged over the pairs that have it (P x G x D -> G x D), and
    whether any pair has it."""
    weights = present.to(latents.dtype).unsqueeze(2)
    mean = (latents * weights).sum(0) / weights.sum(0).clamp_min(1.0)
    return mean, present.any(0)


def still_latents(model: MotionNetwork) -> Tensor:
    """Z (G x latent_dim) of no motion: each group's latent of a zero flow over the whole
    encoder input (the latent a still region is trained with)."""
    config = model.config
    size = config.flow_size
    flow = torch.zeros(1, 2, size, size, device=_device(model))
    masks = torch.eye(config.groups, device=flow.device)[:, :, None, None]
    model.eval()
    with torch.no_grad():
        latents, _ = model.encode(
            flow.expand(config.groups, -1, -1, -1), masks.expand(-1, -1, size, size)
        )
    return latents.diagonal(dim1=0, dim2=1).T.contiguous()


@dataclass(frozen=True)
class Motion:
    """What drives a generated video: latents Z_t (S x G x latent_dim; step t uses row
    t mod S) and the groups that move (G bool); the flow of every other group is 0."""

    latents: Tensor
    moving: Tensor

    def at(self, step: int) -> Tensor:
        """Z (G x latent_dim) of generated step ``step``."""
        return self.latents[step % len(self.latents)]


def chosen_motion(
    model: MotionNetwork, choice: Mapping[str, Reference], per_pair: bool = False
) -> Motion:
    """The motion of each group named in ``choice`` (group name -> reference) taken from its
    reference; every other group, and a group its reference lacks, holds still. Without
    ``per_pair`` a latent is the average over the reference's pairs (S = 1); with it, row s
    holds the latent of pair s (cycling through a reference's pairs; a pair without the group
    takes the average): the paper's z_t of reference pair t for generated step t. A reference
    chosen for several groups is encoded once."""
    unknown = sorted(set(choice) - set(GROUP_NAMES))
    if unknown:
        raise ValueError(f"unknown group {unknown[0]!r}; groups: {', '.join(GROUP_NAMES)}")
    encoded: dict[int, tuple[Tensor, Tensor]] = {}
    for reference in choice.values():
        if id(reference) not in encoded:
            encoded[id(reference)] = _latent_rows(model, reference, per_pair)
    steps = max((len(rows) for rows, _ in encoded.values()), default=1)
    z = still_latents(model).expand(steps, -1, -1).clone()
    moving = torch.zeros(model.config.groups, dtype=torch.bool, device=z.device)
    for name, reference in choice.items():
        (rows, present), group = encoded[id(reference)], GROUP_NAMES.index(name)
        if present[group]:
            z[:, group] = rows[torch.arange(steps) % len(rows), group]
            moving[group] = True
    return Motion(z, moving)


def region_latents(model: MotionNetwork, choice: Mapping[str, Reference]) -> Tensor:
    """Z (G x latent_dim) of :func:`chosen_motion` with each latent averaged over its
    reference's pairs."""
    return chosen_motion(model, choice).latents[0]


def _latent_rows(
    model: MotionNetwork, reference: Reference, per_pair: bool
) -> tuple[Tensor, Tensor]:
    """Per-pair latents P x G x D (a group absent from a pair: its average), or the averages
    1 x G x D; and ``present`` (G bool)."""
    latents, in_pair = pair_latents(model, reference)
    mean, present = _average(latents, in_pair)
    if not per_pair:
        return mean[None], present
    return torch.where(in_pair.unsqueeze(2), latents, mean), present


def generate_flow(model: MotionNetwork, image: Tensor, masks: Tensor, latents: Tensor) -> Tensor:
    """Flow (N x 2 x S x S, grid units) for images N x 3 x S x S in [-1, 1] and their one-hot
    masks N x G x S x S, driven by latents Z (G x latent_dim, shared by the batch)."""
    model.eval()
    with torch.no_grad():
        batch = latents.to(image).expand(image.shape[0], -1, -1)
        return model.generate(image, batch, masks.to(image))


def step_flow(
    model: MotionNetwork, motion: Motion, step: int, image: Tensor, masks: Tensor
) -> Tensor:
    """F_t (N x 2 x S x S, grid units) of generated step ``step`` for frames N x 3 x S x S and
    their one-hot masks: the generator's flow, exactly 0 on groups that do not move."""
    flow = generate_flow(model, image, masks, motion.at(step))
    return flow * masks.to(flow)[:, motion.moving].sum(1, keepdim=True)


# a frame at the model's size (1 x 3 x S x S in [-1, 1]) -> its one-hot group masks (1 x G x S x S)
MasksOf = Callable[[Tensor], Tensor]


def motion_frames(
    model: MotionNetwork,
    config: FGLAConfig,
    image: Tensor,
    small: Tensor,
    masks_of: MasksOf,
    motion: Motion,
    frames: int,
    speed: float = 1.0,
) -> Iterator[Tensor]:
    """``frames`` frames (1 x 3 x H x W each, frame 0 = ``image``) of ``image`` animated by
    ``motion``; ``small`` is the image at the model's size. ``inference.mode`` recurrent: F_t
    from frame t and its masks (the papers' Algorithm 1); single: one flow from the image,
    composed with itself."""
    inference = config.inference
    options = (inference.compose, config.model.align_corners, speed)

    def flow_at(step: int, frame: Tensor) -> Tensor:
        return step_flow(model, motion, step, frame, masks_of(frame))

    if inference.mode == "single":
        return iter_frames(image, flow_at(0, small), frames, *options)
    return iter_recurrent_frames(image, small, flow_at, frames, *options)


def _device(model: MotionNetwork) -> torch.device:
    return next(model.parameters()).device
