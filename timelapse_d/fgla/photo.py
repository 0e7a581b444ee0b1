"""`tld animate`: a photo turned into a time-lapse video at its own resolution.

The model sees the photo at ``image_size`` square with its region groups (a mask file or the
segmenter) and the latents of the chosen references; the flow it predicts is upsampled to the
photo's size and composed frame after frame (:mod:`timelapse_d.fgla.animation`). An Animating
Landscape model has one global motion code and no regions: it takes one reference for the
whole photo, or an entry of its codebook (``--code K``), and needs no segmenter. Everything a
run needs (checkpoint, weights, references, mask) is loaded before the first frame, so a
missing file fails at start with its name.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from tqdm import tqdm

from timelapse_d.errors import ConfigError, DataError
from timelapse_d.fgla.animation import (
    VIDEO_FORMATS,
    crossfade_loop,
    to_uint8,
    uint8_frames,
    write_video,
)
from timelapse_d.fgla.config import FGLAConfig
from timelapse_d.fgla.inference import MasksOf, Reference, chosen_motion, motion_frames
from timelapse_d.fgla.regions import (
    GroupFn,
    box_layout,
    fixed_groups,
    layout_groups,
    resize_groups,
    segmenter_groups,
    whole_image_group,
)
from timelapse_d.fgla.trained import codebook_motion, load_trained
from timelapse_d.segment.groups import GROUP_NAMES, group_masks

ALL_GROUPS = ""  # the key of a reference given without a group: it drives every group


@dataclass(frozen=True)
class AnimateOptions:
    """One `tld animate` run."""

    image: Path
    output: Path
    checkpoint: Path
    references: Mapping[str, Path] = field(default_factory=dict)  # group or ALL_GROUPS -> video
    code: int | None = None  # a codebook entry instead of references (Animating Landscape)
    reference_masks: Mapping[str, Path] = field(default_factory=dict)  # same keys -> mask file
    mask: Path | None = None  # the photo's groups; None: the segmenter
    frames: int = 32
    speed: float = 1.0
    loop: bool = False
    size: tuple[int, int] | None = None  # (width, height); None: the photo's own
    fps: float = 12.0
    flow_backend: str | None = None  # of the references; None: the model's data.flow_backend
    flow_weights: Path | None = None
    device: str = "cpu"
    weights_dir: Path | None = None
    progress: bool = True
    mode: str | None = None  # recurrent | single; None: the model's inference.mode

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ConfigError(f"--frames must be at least 2, got {self.frames}")
        if not self.speed > 0 or not self.fps > 0:
            raise ConfigError(f"--speed and --fps must be positive, got {self.speed}, {self.fps}")
        if self.output.suffix.lower() not in VIDEO_FORMATS:
            raise ConfigError(f"{self.output}: the video must end in {', '.join(VIDEO_FORMATS)}")
        if not self.references and self.code is None:
            raise ConfigError(
                "give at least one --reference VIDEO (the motion to follow), or --code K for "
                "a model with a codebook"
            )
        if self.references and self.code is not None:
            raise ConfigError("--code replaces --reference: give one or the other")
        for path in (
            self.image,
            self.mask,
            *self.references.values(),
            *self.reference_masks.values(),
        ):
            if path is not None and not path.is_file() and box_layout(str(path)) is None:
                raise ConfigError(f"{path}: no such file")
        stray = sorted(set(self.reference_masks) - set(self.references))
        if stray:
            raise ConfigError(f"--reference-mask {_label(stray[0])} has no matching --reference")


@dataclass(frozen=True)
class AnimateResult:
    """What `tld animate` wrote."""

    output: Path
    width: int
    height: int
    frames: int
    seconds: float


def parse_assignments(values: Iterable[str], option: str) -> dict[str, Path]:
    """``[GROUP=]PATH`` values -> {group or ALL_GROUPS: path}; ConfigError for an unknown group
    or a group given twice."""
    parsed: dict[str, Path] = {}
    for value in values:
        group, sep, path = value.partition("=")
        if not sep or group not in GROUP_NAMES:
            group, path = ALL_GROUPS, value
        if group in parsed:
            raise ConfigError(f"{option} {_label(group)} is given twice")
        parsed[group] = Path(path)
    return parsed


def animate_photo(options: AnimateOptions) -> AnimateResult:
    """Animate ``options.image`` into ``options.output``."""
    started = time.monotonic()
    trained = load_trained(options.checkpoint, options.device)
    regional = trained.config.model.regional
    if not regional and set(options.references) - {ALL_GROUPS}:
        raise ConfigError(
            f"{options.checkpoint}: an Animating Landscape model has one global motion code; "
            "give one --reference VIDEO without GROUP=, or --code K"
        )
    config = trained.config
    if options.mode is not None:
        config = replace(config, inference=replace(config.inference, mode=options.mode))
    motion = codebook_motion(trained, options.code) if options.code is not None else None
    segmenter = _segmenter_if_needed(options) if regional else whole_image_group
    photo = read_photo(options.image, options.size)
    size = config.model.image_size
    small = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
    device = next(trained.model.parameters()).device
    if motion is None:
        per_pair = regional and config.inference.latents == "per_pair"
        choice = _choice(options, config, segmenter)
        motion = chosen_motion(trained.model, choice, per_pair)
    fade = max(1, options.frames // 4) if options.loop else 0
    frames = uint8_frames(
        motion_frames(
            trained.model,
            config,
            _to_tensor(photo, device),
            _to_tensor(small, device),
            _masks_of(options, segmenter, regional, size),
            motion,
            options.frames + fade,
            options.speed,
        )
    )
    if options.loop:
        frames = crossfade_loop(frames, options.frames, fade)
    bar = tqdm(frames, total=options.frames, unit="frame", disable=not options.progress)
    count = write_video(bar, options.output, options.fps)
    height, width = photo.shape[:2]
    if options.output.suffix.lower() != ".gif":
        height, width = height - height % 2, width - width % 2
    return AnimateResult(options.output, width, height, count, time.monotonic() - started)


def read_photo(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """An image file as upright H x W x 3 uint8 RGB, resized to ``size`` (width, height)."""
    try:
        with Image.open(path) as picture:
            rgb = np.asarray(ImageOps.exif_transpose(picture).convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc
    if size is None or size == (rgb.shape[1], rgb.shape[0]):
        return rgb
    shrink = size[0] * size[1] < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _masks_of(
    options: AnimateOptions, segmenter: GroupFn | None, regional: bool, size: int
) -> MasksOf:
    """The group masks of each generated frame: the mask file's (fixed: a still camera), else
    the segmenter's on that frame (the paper's M_t of I_t)."""
    if options.mask is not None and regional:
        ids = resize_groups(layout_groups(options.mask), size, size)
        fixed = torch.from_numpy(group_masks(ids[None])).float()
        return lambda frame: fixed.to(frame.device)
    assert segmenter is not None

    def masks_of(frame: Tensor) -> Tensor:
        ids = segmenter(to_uint8(frame))
        return torch.from_numpy(group_masks(ids)).float().to(frame.device)

    return masks_of


def _segmenter_if_needed(options: AnimateOptions) -> GroupFn | None:
    if options.mask is not None and set(options.reference_masks) == set(options.references):
        return None  # with --code there are no references: the mask is all it needs
    return segmenter_groups(options.device, "fp32", options.weights_dir)


def _choice(
    options: AnimateOptions, config: FGLAConfig, segmenter: GroupFn | None
) -> dict[str, Reference]:
    """Group name -> the reference that drives it (references are read once each)."""
    from timelapse_d.fgla.references import reference_from_video
    from timelapse_d.flow.backends import make_flow_backend

    backend = make_flow_backend(
        options.flow_backend or config.data.flow_backend,
        device=options.device,
        weights=options.flow_weights,
    )
    regional = config.model.regional  # a global-code model ignores reference masks
    loaded = {}
    for key, video in options.references.items():
        mask = options.reference_masks.get(key)
        groups = fixed_groups(mask) if mask is not None and regional else segmenter
        assert groups is not None
        loaded[key] = reference_from_video(video, config, backend, groups)
    fallback = loaded.get(ALL_GROUPS)
    choice = {name: loaded.get(name, fallback) for name in GROUP_NAMES}
    return {name: reference for name, reference in choice.items() if reference is not None}


def _to_tensor(rgb: np.ndarray, device: torch.device) -> Tensor:
    """H x W x 3 uint8 -> 1 x 3 x H x W in [-1, 1]."""
    tensor = torch.tensor(rgb).permute(2, 0, 1)[None].float()
    return (tensor / 127.5 - 1.0).to(device)


def _label(group: str) -> str:
    return f"{group}=..." if group else "(for every group)"
