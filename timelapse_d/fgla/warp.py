"""Backward warping, flow units and flow composition.

A flow F is *backward*: ``warp(I, F)(p) = I(p + F(p))`` (the field shards store it this way,
``frame[t+1](p) ~= frame[t](p + F(p))``). Fields are N x 2 x H x W with (dx, dy) channels.

Two units: *pixels* of the H x W frame (the shards) and *grid units* of ``grid_sample``, where
the image spans [-1, 1] in each axis (the generator's ``tanh / c`` output). With
``align_corners=False`` (the default here) -1 and 1 are the outer edges of the border pixels,
so one pixel is 2 / W grid units and a flow keeps its meaning when it is resized to another
resolution; with ``align_corners=True`` they are the border pixels' centres (2 / (W - 1)).
Samples outside the frame take the nearest border value (``padding_mode='border'``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _pixel_size(height: int, width: int, align_corners: bool, like: Tensor) -> Tensor:
    """Grid units per pixel along x and y, shaped (1, 2, 1, 1)."""
    span = (width - 1, height - 1) if align_corners else (width, height)
    scale = torch.tensor([2.0 / s for s in span], device=like.device, dtype=like.dtype)
    return scale.view(1, 2, 1, 1)


def pixel_to_grid(flow: Tensor, align_corners: bool = False) -> Tensor:
    """Flow in pixels of its own H x W -> grid units."""
    return flow * _pixel_size(flow.shape[2], flow.shape[3], align_corners, flow)


def grid_to_pixel(flow: Tensor, align_corners: bool = False) -> Tensor:
    """Flow in grid units -> pixels of its own H x W."""
    return flow / _pixel_size(flow.shape[2], flow.shape[3], align_corners, flow)


def identity_grid(height: int, width: int, align_corners: bool, like: Tensor) -> Tensor:
    """Grid coordinates of the pixel centres, (1, H, W, 2) with (x, y) last."""
    if align_corners:
        xs = torch.linspace(-1.0, 1.0, width, device=like.device, dtype=like.dtype)
        ys = torch.linspace(-1.0, 1.0, height, device=like.device, dtype=like.dtype)
    else:
        xs = (torch.arange(width, device=like.device, dtype=like.dtype) * 2 + 1) / width - 1
        ys = (torch.arange(height, device=like.device, dtype=like.dtype) * 2 + 1) / height - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1).unsqueeze(0)


def warp(image: Tensor, flow: Tensor, align_corners: bool = False) -> Tensor:
    """Bilinear backward warp of ``image`` (N x C x H x W) by ``flow`` in grid units
    (N x 2 x H x W): ``out(p) = image(p + flow(p))``, borders replicated. The output has the
    flow's H x W; sampling runs in float32 (fp16 grid coordinates are too coarse)."""
    flow = flow.float()
    height, width = flow.shape[2:]
    grid = identity_grid(height, width, align_corners, flow) + flow.permute(0, 2, 3, 1)
    out = F.grid_sample(image.float(), grid, "bilinear", "border", align_corners=align_corners)
    return out.to(image.dtype)


def resize_flow(flow: Tensor, size: int | tuple[int, int], mode: str = "area") -> Tensor:
    """A grid-unit flow resampled to ``size`` (S or (H, W)); grid units need no rescaling, so
    a 256 x 256 flow applies as is to a frame of any shape."""
    corners = False if mode == "bilinear" else None
    return F.interpolate(flow, size=size, mode=mode, align_corners=corners)


def compose_flows(
    accumulated: Tensor, step: Tensor, mode: str = "warp", align_corners: bool = False
) -> Tensor:
    """F_0->t from F_0->t-1 (``accumulated``, on I_0) and F_t (``step``, on I_t), grid units.

    ``warp``: ``step(p) + accumulated(p + step(p))``, so that
    ``warp(I_0, result) == warp(warp(I_0, accumulated), step)`` with a single sampling of I_0;
    ``add``: ``accumulated + step`` (exact only where ``accumulated`` is locally constant).
    """
    if mode == "add":
        return accumulated + step
    if mode != "warp":
        raise ValueError(f"compose mode must be 'warp' or 'add', got {mode!r}")
    return step + warp(accumulated, step, align_corners)
