"""Reference videos: the motion a photo is animated with.

A reference video is sampled as training clips are (every ``frame_stride``-th frame, resized to
``image_size`` square, :func:`timelapse_d.precompute.sampling.sample_clip`). Consecutive samples
give backward flow from the configured flow backend and, as in training, the group masks of the
pair's first frame (from the segmenter or a mask file). Up to ``max_pairs`` pairs spread over
the video are kept; the encoder averages each group's latent over them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from timelapse_d.errors import ConfigError, DataError
from timelapse_d.fgla.config import FGLAConfig
from timelapse_d.fgla.inference import Reference
from timelapse_d.fgla.regions import GroupFn
from timelapse_d.fgla.warp import pixel_to_grid
from timelapse_d.flow.backends import FlowBackend
from timelapse_d.precompute.sampling import Sampling, sample_clip
from timelapse_d.segment.groups import group_masks

DEFAULT_MAX_PAIRS = 16


def reference_from_video(
    path: Path,
    config: FGLAConfig,
    flow_backend: FlowBackend,
    groups: GroupFn,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> Reference:
    """The flow and masks of up to ``max_pairs`` sampled frame pairs of the video at ``path``."""
    sampling = Sampling(config.data.frame_stride, config.model.image_size)
    try:
        _, frames = sample_clip(path.read_bytes(), sampling)
    except (OSError, ValueError) as exc:
        raise DataError(f"reference {path}: not a readable video ({exc})") from exc
    except Exception as exc:  # PyAV raises its own error types for damaged files
        raise DataError(f"reference {path}: cannot be decoded ({exc})") from exc
    if len(frames) < 2:
        raise ConfigError(
            f"reference {path}: needs at least {sampling.stride + 1} frames to give one pair "
            f"(one of every {sampling.stride} frames is used)"
        )
    starts = _spread(len(frames) - 1, max_pairs)
    flow_px = flow_backend.backward_flow(frames[starts], frames[starts + 1])
    flow = pixel_to_grid(torch.from_numpy(flow_px), config.model.align_corners)
    masks = torch.from_numpy(group_masks(groups(frames[starts]))).float()
    return Reference(flow=flow, masks=masks)


def _spread(count: int, most: int) -> np.ndarray:
    """At most ``most`` indices spread evenly over ``range(count)``."""
    if count <= most:
        return np.arange(count)
    return np.linspace(0, count - 1, most).round().astype(int)
