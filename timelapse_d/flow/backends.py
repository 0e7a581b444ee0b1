"""One interface over every optical-flow backend: FGLA's backward flow of uint8 RGB batches.

Convention (as :meth:`timelapse_d.synth.truth.Truth.flow`): ``backward_flow(previous,
following)`` returns F with ``following(p) ~= previous(p + F(p))``, channels (dx, dy) in pixels,
float32 (N, 2, H, W); backward-warping ``previous`` by F predicts ``following``.

Backends: ``dis`` (OpenCV DIS on the CPU, no weights), ``flownet2`` (FlowNet 2.0 in plain
PyTorch, NVIDIA's checkpoint) and ``raft`` (torchvision's RAFT-large, optional). PyTorch and
torchvision are imported only by the backends that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from timelapse_d.errors import ConfigError
from timelapse_d.flow.frames import check_frames
from timelapse_d.torch_runtime import PRECISIONS

if TYPE_CHECKING:
    from timelapse_d.flow.flownet2 import FlowNet2

BACKENDS = ("dis", "flownet2", "raft")


class FlowBackend(Protocol):
    """A flow estimator; ``name`` is what field shards record as the flow's backend."""

    name: str

    def backward_flow(self, previous: np.ndarray, following: np.ndarray) -> np.ndarray:
        """(N, 2, H, W) float32 F with ``following(p) ~= previous(p + F(p))``, from two
        uint8 RGB batches (N, H, W, 3)."""
        ...


class FlowNet2Backend:
    """FlowNet 2.0 on a batch at once, on the model's device, under the chosen precision."""

    name = "flownet2"

    def __init__(self, model: FlowNet2, precision: str) -> None:
        self._model = model
        self._precision = precision

    def backward_flow(self, previous: np.ndarray, following: np.ndarray) -> np.ndarray:
        from timelapse_d.flow.flownet2 import estimate_flow
        from timelapse_d.torch_runtime import autocast

        check_frames(previous, following)
        device = next(self._model.parameters()).device
        with autocast(device, self._precision):
            # estimate_flow(a, b) gives a(p) ~= b(p + F): a is the frame the flow lives on.
            return estimate_flow(self._model, following, previous)


def make_flow_backend(
    name: str, *, device: str = "cpu", weights: Path | None = None, precision: str = "fp32"
) -> FlowBackend:
    """The backend called ``name``; ``weights`` overrides the installed weight file.

    ``dis`` always runs on the CPU in float32 and takes no weights. A network's weights come
    from :func:`timelapse_d.weights.require` (MissingWeights says how to get them).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if name == "dis":
        from timelapse_d.flow.dis import DISBackend

        if weights is not None:
            raise ConfigError("the dis flow backend takes no weights; drop --weights")
        return DISBackend()
    if name not in BACKENDS:
        raise ConfigError(f"unknown flow backend {name!r}; choose one of {', '.join(BACKENDS)}")
    from timelapse_d import weights as registry
    from timelapse_d.torch_runtime import resolve_device

    resolve_device(device)
    if name == "flownet2":
        from timelapse_d.flow.flownet2 import load_flownet2

        model = load_flownet2(registry.require("flownet2", path=weights), device)
        return FlowNet2Backend(model, precision)
    from timelapse_d.flow.raft import RaftBackend, raft_large_builder

    build = raft_large_builder()  # a missing torchvision is reported before missing weights
    return RaftBackend(build, registry.require("raft_large", path=weights), device, precision)
