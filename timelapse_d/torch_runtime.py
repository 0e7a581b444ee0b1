"""Device and precision choices shared by every network the toolkit runs (torch is imported
only when a device is resolved, so option checks work without it)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from timelapse_d.errors import ConfigError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "fp16", "bf16")


def resolve_device(name: str) -> torch.device:
    """The torch device for ``cpu``, ``cuda``, ``cuda:1``...; ConfigError when it is absent."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is visible; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    return device


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """Mixed precision for ``precision`` on ``device``'s type (nothing to do for fp32)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)
