"""Region groups of pictures for animation: from the HRNetV2 segmenter or from a mask file.

A mask file is a single-channel (or palette) image whose pixel values are group ids: 0 sky,
1 tree, 2 grass, 3 water, 4 waterfall, 5 others (:data:`GROUP_NAMES` order). It is resized to
the picture's size with nearest-neighbour sampling, so ids stay ids. Without weights or a mask
file, a box layout written on the command line (:func:`box_layout`) gives the groups.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from timelapse_d.errors import ConfigError, DataError
from timelapse_d.segment.groups import GROUP_NAMES

# uint8 RGB frames (N, H, W, 3) -> group ids (N, H, W) uint8
GroupFn = Callable[[np.ndarray], np.ndarray]
BOX_SPEC = re.compile(rf"^({'|'.join(GROUP_NAMES)}):[^;]*(;({'|'.join(GROUP_NAMES)}):[^;]*)*$")
BOX_GRID = 1000  # a box layout's resolution before it is resized to a picture


def read_group_mask(path: Path) -> np.ndarray:
    """The group ids (H x W uint8) of a mask file; ConfigError for anything else."""
    try:
        with Image.open(path) as picture:
            if picture.mode not in ("L", "P", "I", "I;16"):
                raise ConfigError(
                    f"{path}: a mask must be a single-channel or palette image of group ids "
                    f"(0..{len(GROUP_NAMES) - 1}: {', '.join(GROUP_NAMES)}); got mode "
                    f"{picture.mode}"
                )
            ids = np.asarray(picture)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: not a readable mask image ({exc})") from exc
    if ids.max(initial=0) >= len(GROUP_NAMES):
        raise DataError(
            f"{path}: mask value {int(ids.max())} is not a group id "
            f"(0..{len(GROUP_NAMES) - 1}: {', '.join(GROUP_NAMES)})"
        )
    return ids.astype(np.uint8)


def box_layout(spec: str) -> np.ndarray | None:
    """Group ids (1000 x 1000 uint8) of a weight-free layout ``GROUP:X0,Y0,X1,Y1[;...]`` (boxes
    in fractions of the width and height, later boxes on top, "others" elsewhere), e.g.
    ``sky:0,0,1,0.45;water:0,0.6,1,1``; None when ``spec`` is not of that form (a file name);
    ConfigError for an unknown group or bad numbers."""
    if not BOX_SPEC.match(spec):
        return None
    ids = np.full((BOX_GRID, BOX_GRID), GROUP_NAMES.index("others"), dtype=np.uint8)
    for box in spec.split(";"):
        group, _, coords = box.partition(":")
        try:
            x0, y0, x1, y1 = (float(v) for v in coords.split(","))
        except ValueError:
            raise ConfigError(f"--mask box {box!r}: give GROUP:X0,Y0,X1,Y1 (fractions)") from None
        if group not in GROUP_NAMES or not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ConfigError(
                f"--mask box {box!r}: the group must be one of {', '.join(GROUP_NAMES)} and "
                "0 <= X0 < X1 <= 1, 0 <= Y0 < Y1 <= 1"
            )
        rows = slice(round(y0 * BOX_GRID), round(y1 * BOX_GRID))
        ids[rows, round(x0 * BOX_GRID) : round(x1 * BOX_GRID)] = GROUP_NAMES.index(group)
    return ids


def layout_groups(source: Path) -> np.ndarray:
    """The group ids of a mask file or of a :func:`box_layout` spec."""
    boxes = box_layout(str(source))
    return read_group_mask(source) if boxes is None else boxes


def resize_groups(ids: np.ndarray, height: int, width: int) -> np.ndarray:
    """Group ids resized with nearest-neighbour sampling."""
    return cv2.resize(ids, (width, height), interpolation=cv2.INTER_NEAREST)


def fixed_groups(path: Path) -> GroupFn:
    """Every frame gets the groups of the mask file or box layout (a still camera's reference
    video)."""
    ids = layout_groups(path)

    def groups(frames: np.ndarray) -> np.ndarray:
        resized = resize_groups(ids, *frames.shape[1:3])
        return np.broadcast_to(resized, frames.shape[:3]).copy()

    return groups


def whole_image_group(frames: np.ndarray) -> np.ndarray:
    """Every pixel in group "others": the regions of a model with one global motion code
    (Animating Landscape), which ignores them."""
    return np.full(frames.shape[:3], GROUP_NAMES.index("others"), dtype=np.uint8)


def segmenter_groups(
    device: str = "cpu", precision: str = "fp32", weights_dir: Path | None = None
) -> GroupFn:
    """Groups from the HRNetV2 ADE20K segmenter (installed with `tld weights`); raises
    MissingWeights naming each missing file before any model is built."""
    from timelapse_d.segment.groups import class_map_to_groups
    from timelapse_d.segment.hrnet import load_segmenter, segment
    from timelapse_d.torch_runtime import autocast, resolve_device
    from timelapse_d.weights import require_all

    users = dict.fromkeys(("hrnetv2_encoder", "hrnetv2_decoder"), "the segmenter of --mask auto")
    paths = require_all(users, weights_dir, hint="or give the photo's groups with --mask FILE")
    resolved = resolve_device(device)
    model = load_segmenter(paths["hrnetv2_encoder"], paths["hrnetv2_decoder"], resolved)

    def groups(frames: np.ndarray) -> np.ndarray:
        with autocast(resolved, precision):
            return class_map_to_groups(segment(model, frames))

    return groups
