"""FGLA training objective: L_frame + alpha L_flow + beta L_tv.

Every ``|.|_1`` is the L1 norm over channels at one pixel (RGB for frames, (dx, dy) for flows,
flows in grid units). L_frame and L_flow average it over pixels and the batch (with
``frame_norm='l2'``, Animating Landscape's, L_frame averages the squared L2 norm). L_tv sums, for
each pixel p and its right and lower neighbours q (the same set of pairs as "right and
above"), ``w(p, q) |F(p) - F(q)|_1`` with ``w = exp(-|I_t+1(p) - I_t+1(q)|_1 / sigma)``;
``tv_reduction='mean'`` divides each direction's sum by its number of pairs (and the batch),
``'sum'`` keeps the plain sum per image, averaged over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from timelapse_d.fgla.config import FGLAConfig
from timelapse_d.fgla.model import encoder_inputs
from timelapse_d.fgla.warp import pixel_to_grid, warp


@dataclass(frozen=True)
class LossTerms:
    """The weighted total and its three unweighted terms (scalar tensors)."""

    total: Tensor
    frame: Tensor
    flow: Tensor
    tv: Tensor
    predicted: Tensor  # the generated flow (N x 2 x S x S, grid units)


def tv_weights(image: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """Edge weights of right pairs (N x 1 x H x W-1) and lower pairs (N x 1 x H-1 x W)."""
    right = (image[..., :, 1:] - image[..., :, :-1]).abs().sum(1, keepdim=True)
    lower = (image[..., 1:, :] - image[..., :-1, :]).abs().sum(1, keepdim=True)
    return torch.exp(-right / sigma), torch.exp(-lower / sigma)


def weighted_tv(flow: Tensor, image: Tensor, sigma: float, reduction: str = "mean") -> Tensor:
    """Edge-aware total variation of ``flow`` with weights from ``image`` (same H x W)."""
    w_right, w_lower = tv_weights(image, sigma)
    right = w_right * (flow[..., :, 1:] - flow[..., :, :-1]).abs().sum(1, keepdim=True)
    lower = w_lower * (flow[..., 1:, :] - flow[..., :-1, :]).abs().sum(1, keepdim=True)
    if reduction == "mean":
        return right.mean() + lower.mean()
    return (right.sum() + lower.sum()) / flow.shape[0]


def fgla_losses(
    pred_flow: Tensor, true_flow: Tensor, image_t: Tensor, image_t1: Tensor, config: FGLAConfig
) -> LossTerms:
    """The objective for generated flow ``pred_flow`` and ground truth ``true_flow`` (both
    grid units, N x 2 x S x S); the frame term warps ``image_t`` towards ``image_t1``."""
    loss = config.loss
    predicted = warp(image_t, pred_flow, config.model.align_corners)
    error = predicted - image_t1
    frame = (error.abs() if loss.frame_norm == "l1" else error.square()).sum(1).mean()
    flow = (pred_flow - true_flow).abs().sum(1).mean()
    tv = weighted_tv(pred_flow, image_t1, loss.tv_sigma, loss.tv_reduction)
    total = loss.frame_weight * frame + loss.flow_weight * flow + loss.tv_weight * tv
    return LossTerms(total, frame, flow, tv, pred_flow)


def training_losses(
    model: nn.Module,
    config: FGLAConfig,
    image_t: Tensor,
    image_t1: Tensor,
    flow_px: Tensor,
    masks: Tensor,
    encoder_flow: Tensor | None = None,
) -> LossTerms:
    """One training batch as the stream yields it (images in [-1, 1], backward flow in pixels,
    one-hot masks, all at ``image_size``) through ``model`` (an :class:`FGLA`, possibly
    wrapped in DDP) to the loss terms. ``encoder_flow`` (N x 2 x s x s at ``flow_size``, grid
    units), when given, is what the encoder reads instead of the pair's own flow (Animating
    Landscape's common motion fields)."""
    true_flow = pixel_to_grid(flow_px, config.model.align_corners)
    flow_small, masks_small = encoder_inputs(true_flow, masks, config.model)
    if encoder_flow is not None:
        flow_small = encoder_flow
    pred_flow = model(image_t, flow_small, masks_small, masks)
    return fgla_losses(pred_flow, true_flow, image_t, image_t1, config)
