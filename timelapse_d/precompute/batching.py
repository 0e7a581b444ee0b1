"""Batched model calls that shrink the batch when the GPU runs out of memory, then go on."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import numpy as np

LOG = logging.getLogger("timelapse_d")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA (or other accelerator) out-of-memory error."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc)


class AdaptiveBatch:
    """Calls ``fn`` on consecutive slices of at most ``size`` items; on out-of-memory the size
    halves (down to 1) and the same slice is tried again. The size stays shrunk afterwards."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"batch size must be >= 1, got {size}")
        self.size = size

    def map(self, fn: Callable[[slice], np.ndarray], count: int) -> np.ndarray:
        """Concatenation along axis 0 of ``fn(slice)`` over ``range(count)``."""
        parts: list[np.ndarray] = []
        start = 0
        while start < count:
            part = slice(start, min(count, start + self.size))
            try:
                parts.append(fn(part))
            except Exception as exc:
                if self.size == 1 or not is_out_of_memory(exc):
                    raise
                self.size //= 2
                LOG.warning("out of memory: batch size lowered to %d", self.size)
                _release_cached_memory()
                continue
            start = part.stop
        return np.concatenate(parts) if parts else np.zeros((0,))


def _release_cached_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
