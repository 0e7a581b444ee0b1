"""Partial convolution (Liu et al. 2018) and instance norm restricted to a mask.

For a window with input X and binary mask M, the output is
``W^T (X * M) * sum(1) / sum(M) + b`` where ``sum(M) > 0`` and 0 elsewhere; the updated mask
is 1 where ``sum(M) > 0``. ``sum(M)`` comes from a fixed all-ones convolution of the mask. The
mask is per sample, single-channel (shared by all input channels) or one channel per input
channel; the updated mask is single-channel (it is the same for every output channel).
Zero padding counts as masked-out, so border windows are re-weighted like holes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PartialConv2d(nn.Conv2d):
    """A conv layer whose ``forward(x, mask)`` returns ``(output, updated_mask)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        if mask.shape[1] not in (1, x.shape[1]) or mask.shape[2:] != x.shape[2:]:
            raise ValueError(f"mask {tuple(mask.shape)} does not fit input {tuple(x.shape)}")
        kh, kw = self.kernel_size
        window = mask.shape[1] * kh * kw  # sum(1)
        with torch.autocast(x.device.type, enabled=False):  # exact integer counts
            ones = torch.ones(1, 1, kh, kw, device=mask.device, dtype=torch.float32)
            count = F.conv2d(
                mask.float().sum(1, keepdim=True), ones, None, self.stride, self.padding
            )
        valid = count > 0
        scale = torch.where(valid, window / count.clamp_min(1.0), 0.0)  # masks are binary
        out = F.conv2d(x * mask, self.weight, None, self.stride, self.padding)
        out = out * scale.to(out.dtype)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1) * valid.to(out.dtype)
        return out, valid.to(x.dtype)


def masked_instance_norm(x: Tensor, mask: Tensor, eps: float = 1e-5) -> Tensor:
    """Instance norm with per-sample, per-channel statistics over pixels where ``mask`` is 1
    (``mask``: N x 1 x H x W); the result is 0 outside the mask, for an empty mask and, exactly,
    for a channel whose variance over the mask is below ``eps`` (a constant feature carries no
    shape, and normalising it would only amplify rounding noise)."""
    xf, mf = x.float(), mask.float()
    count = mf.sum((2, 3), keepdim=True).clamp_min(1.0)
    mean = (xf * mf).sum((2, 3), keepdim=True) / count
    var = ((xf - mean) ** 2 * mf).sum((2, 3), keepdim=True) / count
    varied = (var >= eps).to(xf.dtype)
    return ((xf - mean) * torch.rsqrt(var + eps) * mf * varied).to(x.dtype)
