"""Strict checkpoint loading shared by every network the toolkit runs (flow, segmentation, FGLA).

A checkpoint is read without running code from it (``weights_only``) and must match the
module exactly: the first missing, unexpected or mis-shaped key is named with the file, so a
wrong or truncated download is refused at start instead of giving silently wrong outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy._core.multiarray import scalar
from torch import nn

from timelapse_d.errors import DataError

# Numpy scalars some training scripts store beside the weights (e.g. a best validation error).
_SAFE_NUMPY_GLOBALS: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [
    np.dtype,
    type(np.dtype(np.float64)),
    type(np.dtype(np.float32)),
    scalar,
    (scalar, "numpy.core.multiarray.scalar"),
]


class CheckpointError(DataError):
    """A weight file that is missing, unreadable or does not match its network."""


def read_state_dict(
    path: Path | str, *, nested: str | None = None, drop: Callable[[str], bool] | None = None
) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, on the CPU.

    ``nested`` names the entry holding the state dict when the file is a training dict
    (``state_dict``); a bare state dict is accepted too. Keys for which ``drop`` is true
    (bookkeeping buffers a plain module does not have) are left out.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with torch.serialization.safe_globals(_SAFE_NUMPY_GLOBALS):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for files that are not checkpoints
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    if nested is not None and isinstance(checkpoint, Mapping) and nested in checkpoint:
        checkpoint = checkpoint[nested]
    if not isinstance(checkpoint, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in checkpoint.values()
    ):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return {k: v for k, v in checkpoint.items() if drop is None or not drop(k)}


def check_state_dict(
    expected: Mapping[str, tuple[int, ...]],
    state: Mapping[str, torch.Tensor],
    source: Path | str,
    network: str,
) -> None:
    """Raise CheckpointError naming ``source`` and the first missing, unexpected or mis-shaped
    key of ``state`` against ``expected`` (key -> shape)."""
    problems = [f"missing key {k!r}" for k in expected if k not in state]
    problems += [f"unexpected key {k!r}" for k in state if k not in expected]
    problems += [
        f"key {k!r} has shape {tuple(t.shape)}, expected {tuple(expected[k])}"
        for k, t in state.items()
        if k in expected and tuple(t.shape) != tuple(expected[k])
    ]
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise CheckpointError(f"{source}: not a {network} checkpoint: {problems[0]}{more}")


def state_dict_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a module's state dict."""
    return {key: tuple(t.shape) for key, t in module.state_dict().items()}


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: Path | str) -> None:
    """Check ``state`` against ``module`` exactly, then assign it (cast to the module's dtypes).

    ``module`` may live on the meta device: its tensors are replaced, not copied into.
    """
    expected = module.state_dict()
    check_state_dict(state_dict_shapes(module), state, source, type(module).__name__)
    cast = {key: value.to(expected[key].dtype) for key, value in state.items()}
    module.load_state_dict(cast, strict=True, assign=True)
