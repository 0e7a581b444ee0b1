"""Per-region motion direction of a generated flow, the yardstick of fine-grained control: does
each region move the way its reference says?"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

Vector = tuple[float, float]


def region_motion(flow: Tensor, masks: Tensor, group: int) -> Tensor:
    """Mean content motion (2: x right, y down) over the pixels of ``group`` in every image:
    minus the backward flow (N x 2 x H x W) averaged where ``masks`` (N x G x H x W) is set."""
    inside = masks[:, group] > 0
    if not inside.any():
        raise ValueError(f"group {group} has no pixel in these masks")
    return -flow.permute(1, 0, 2, 3)[:, inside].mean(1)


def direction_cosine(motion: Tensor, direction: Vector) -> float:
    """Cosine between a motion vector and the direction it should follow (0 for no motion)."""
    target = torch.tensor(direction, dtype=motion.dtype, device=motion.device)
    return float(F.cosine_similarity(motion, target, dim=0))
