"""FlowNet 2.0's custom layers in plain PyTorch: correlation, backward warping, channel norm.

All three work on batches, on any device, and return the dtype they are given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def correlation(
    f1: torch.Tensor,
    f2: torch.Tensor,
    max_displacement: int = 20,
    stride2: int = 2,
    pad: int = 20,
    kernel: int = 1,
) -> torch.Tensor:
    """Cost volume of two feature maps (N, C, H, W), as FlowNetC's correlation layer.

    Both maps are zero-padded by ``pad``. For each displacement ``(dy, dx)`` on the grid
    ``-R*stride2 .. R*stride2`` (``R = max_displacement // stride2``), output channel
    ``(dy_index) * D + dx_index`` (``D = 2R + 1``) holds, at each position, the mean over channels
    and the ``kernel`` x ``kernel`` window of ``f1(p) * f2(p + (dy, dx))``. The output is
    (N, D*D, H', W') with ``H' = H + 2*pad - 2*(max_displacement + kernel // 2)``: with FlowNetC's
    settings (20, 2, 20, 1) that is 441 channels at the input size.

    One batched matrix product per row displacement computes all column displacements of that
    row at once; the needed diagonal band is then read out with a strided view.
    """
    if f1.shape != f2.shape or f1.dim() != 4:
        raise ValueError(f"correlation needs two equal (N, C, H, W) maps: {f1.shape}, {f2.shape}")
    if kernel < 1 or kernel % 2 == 0 or stride2 < 1:
        raise ValueError(f"kernel must be odd and positive, stride2 positive: {kernel}, {stride2}")
    n, c, h, w = f1.shape
    md, radius = max_displacement, max_displacement // stride2
    d = 2 * radius + 1
    hp, wp = h + 2 * pad, w + 2 * pad
    rows, cols = hp - 2 * md, wp - 2 * md  # positions before the kernel window is averaged
    if rows < kernel or cols < kernel:
        raise ValueError(f"{h}x{w} maps are too small for pad {pad} and displacement {md}")
    p1 = F.pad(f1, (pad, pad, pad, pad))
    p2 = F.pad(f2, (pad, pad, pad, pad))
    # (N*rows, cols, C), pre-divided by C so that half precision sums cannot overflow.
    a = (p1[:, :, md : md + rows, md : md + cols] / c).permute(0, 2, 3, 1).reshape(-1, cols, c)
    out = f1.new_empty(n, d, d, rows, cols)
    start = md - radius * stride2  # offset of the most negative displacement
    for i in range(d):
        y0 = start + i * stride2
        b = p2[:, :, y0 : y0 + rows].permute(0, 2, 1, 3).reshape(-1, c, wp)
        prod = torch.bmm(a, b)  # (N*rows, cols, wp): every column pair of each row
        # Position x, displacement j sits at column x + start + j * stride2.
        band = prod.as_strided(
            (n, rows, cols, d), (rows * cols * wp, cols * wp, wp + 1, stride2), start
        )
        out[:, i] = band.permute(0, 3, 1, 2)
    out = out.view(n, d * d, rows, cols)
    if kernel > 1:
        out = F.avg_pool2d(out, kernel, stride=1)
    return out


def resample2d(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``image`` (N, C, H, W) by ``flow`` (N, 2, H, W) in pixels, channels (u, v).

    ``out(p) = image(p + flow(p))``, bilinear, coordinates clamped to the border. Sampling runs
    in float32 (half precision cannot address pixels of large images exactly); the result has
    ``image``'s dtype.
    """
    n, _, h, w = image.shape
    if flow.shape != (n, 2, h, w):
        raise ValueError(f"flow {tuple(flow.shape)} does not match image {tuple(image.shape)}")
    ys = torch.arange(h, device=image.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=image.device, dtype=torch.float32).view(1, 1, w)
    flow = flow.float()
    gx = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    gy = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    warped = F.grid_sample(
        image.float(),
        torch.stack((gx, gy), dim=-1),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return warped.to(image.dtype)


def channel_norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm over the channel axis: (N, C, H, W) -> (N, 1, H, W)."""
    return torch.linalg.vector_norm(x, dim=1, keepdim=True)
