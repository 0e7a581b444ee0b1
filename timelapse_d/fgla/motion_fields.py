"""Animating Landscape's common motion fields: what its motion encoder reads in training.

AL has no flow for its encoder to read. Each training clip keeps one common motion field, zero
at first; a training step encodes the clip's field to the code that drives the predictor, and
the predictor's output for that step (resized to ``flow_size``, detached) becomes the clip's
field for its next pair. After training, the code of each clip's latest field is the clip's
entry for the codebook. Fields are kept by clip key on the CPU and saved in the checkpoint, so a
resumed run goes on with them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from timelapse_d.fgla.warp import resize_flow


class CommonMotionFields:
    """Clip key -> its common motion field (2 x ``size`` x ``size``, grid units)."""

    def __init__(self, size: int, fields: dict[str, Tensor] | None = None) -> None:
        self.size = size
        self.fields: dict[str, Tensor] = dict(fields or {})

    def batch(self, keys: Sequence[str], device: torch.device) -> Tensor:
        """The fields of ``keys`` (N x 2 x size x size; zero for a clip not seen yet)."""
        empty = torch.zeros(2, self.size, self.size)
        return torch.stack([self.fields.get(key, empty) for key in keys]).to(device)

    def update(self, keys: Sequence[str], flow: Tensor) -> None:
        """Store the predicted flows (N x 2 x S x S) as the clips' fields."""
        small = resize_flow(flow.detach().float(), self.size, "area").cpu()
        for key, field in zip(keys, small, strict=True):
            self.fields[key] = field.clone()
