"""torchvision's RAFT-large as a flow backend (optional: needs torchvision).

Inputs are scaled to [-1, 1] as torchvision's optical-flow preset does, padded (edge
replication) to multiples of 8 and at least 128 pixels, and the flow is cropped back. The
weights are torchvision's ``raft_large`` state dict, loaded strictly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from timelapse_d.checkpoints import load_strict, read_state_dict
from timelapse_d.errors import ConfigError
from timelapse_d.flow.frames import check_frames
from timelapse_d.torch_runtime import autocast

SIZE_MULTIPLE = 8
MIN_SIZE = 128  # RAFT's four-level correlation pyramid needs this many pixels per side
FLOW_UPDATES = 12  # torchvision's default number of recurrent refinements


def raft_large_builder() -> Callable[..., nn.Module]:
    """torchvision's ``raft_large`` constructor; ConfigError saying how to install it if absent."""
    try:
        from torchvision.models.optical_flow import raft_large
    except ImportError as exc:
        raise ConfigError(
            "the raft flow backend needs torchvision, which is not installed: install the "
            "torchvision build matching your torch (pip install torchvision), or use "
            "--backend dis or --backend flownet2"
        ) from exc
    return raft_large


def _padded(size: int) -> int:
    return max(MIN_SIZE, -(-size // SIZE_MULTIPLE) * SIZE_MULTIPLE)


class RaftBackend:
    """RAFT-large on a batch at once, on ``device``, under the chosen precision."""

    name = "raft"

    def __init__(
        self, build: Callable[..., nn.Module], weights: Path, device: str, precision: str
    ) -> None:
        with torch.device("meta"):
            model = build(weights=None)
        load_strict(model, read_state_dict(weights), weights)
        self._model = model.to(device).eval()
        self._device = torch.device(device)
        self._precision = precision

    def _prepare(self, frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(frames).to(self._device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        h, w = x.shape[-2:]
        return F.pad(x, (0, _padded(w) - w, 0, _padded(h) - h), mode="replicate")

    @torch.inference_mode()
    def backward_flow(self, previous: np.ndarray, following: np.ndarray) -> np.ndarray:
        check_frames(previous, following)
        h, w = previous.shape[1:3]
        with autocast(self._device, self._precision):
            # RAFT(a, b) gives a(p) ~= b(p + F): a is the frame the flow lives on.
            flows = self._model(self._prepare(following), self._prepare(previous), FLOW_UPDATES)
        return flows[-1][..., :h, :w].float().cpu().numpy()
