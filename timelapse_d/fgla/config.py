"""Typed motion-model hyper-parameters: defaults in code,
``timelapse_d/model_configs/fgla.yaml`` and dotted overrides on top, read by
:mod:`timelapse_d.config_loader` (the loader of `tld build`).

Every key of the YAML file is a field of :class:`FGLAConfig` (sections ``model``,
``model.encoder``, ``model.generator``, ``model.al``, ``loss``, ``train``, ``data``,
``inference``); an unknown key or a value that does not fit is refused with the offending
dotted key named. ``model.kind`` picks the network: FGLA, or its baseline Animating Landscape
(``al``, see ``timelapse_d/model_configs/al.yaml``), which shares the generator, the losses
and the training loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from timelapse_d.config_loader import from_mapping, read_yaml, to_dict, with_overrides
from timelapse_d.errors import ConfigError
from timelapse_d.flow.backends import BACKENDS

CONFIG_FILE = "fgla.yaml"  # in timelapse_d/model_configs/
FLOW_RESIZE_MODES = ("area", "bilinear", "nearest")
MASK_RESIZE_MODES = ("nearest", "max")
TV_REDUCTIONS = ("mean", "sum")
COMPOSE_MODES = ("warp", "add")
TRAIN_PRECISIONS = ("auto", "fp32", "fp16", "bf16")
PaddingMode = Literal["reflect", "zeros", "replicate"]  # torch Conv2d padding modes used here
PADDING_MODES: tuple[str, ...] = get_args(PaddingMode)
MODEL_KINDS = ("fgla", "al")
FRAME_NORMS = ("l1", "l2")
INFERENCE_MODES = ("recurrent", "single")
LATENT_CHOICES = ("per_pair", "mean")


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")


def _positive(prefix: str, section: object, *names: str) -> None:
    for name in names:
        if getattr(section, name) <= 0:
            raise ConfigError(f"{prefix}.{name} must be positive, got {getattr(section, name)!r}")


@dataclass(frozen=True)
class EncoderConfig:
    """The fine-grained motion encoder E (all layers partial convolutions)."""

    base_channels: int = 64  # width of the first layer, doubled per layer up to max_channels
    max_channels: int = 256
    depth: int = 5  # stride-2 layers: flow_size / 2**depth is the map the head reduces to 1x1
    first_kernel: int = 5  # kernel of the first layer (later layers use 3)
    masked_norm: bool = True  # instance-norm statistics over the valid (in-group) pixels only
    magnitude_path: bool = True  # add a linear map of the group's mean flow to z (speed)
    magnitude_gain: float = 4.0  # that map's initial gain (an identity times this)
    mirror_input: bool = True  # FGLA's flip: E reads flow and masks mirrored, values unchanged

    def __post_init__(self) -> None:
        _positive("model.encoder", self, "base_channels", "max_channels", "depth", "first_kernel")


@dataclass(frozen=True)
class GeneratorConfig:
    """The U-Net motion generator P."""

    base_channels: int = 128  # width of the first stride-2 conv, doubled per level
    max_channels: int = 512
    depth: int = 3  # stride-2 levels: image_size / 2**depth at the bottleneck
    residual_blocks: int = 5  # residual blocks at the bottleneck
    outer_kernel: int = 5  # kernel of the first and the last conv (inner convs use 3)
    padding_mode: PaddingMode = "reflect"
    input_norm: bool = False  # instance norm after the first conv (AL has none there)

    def __post_init__(self) -> None:
        _positive("model.generator", self, "base_channels", "max_channels", "depth", "outer_kernel")
        if self.residual_blocks < 0:
            raise ConfigError("model.generator.residual_blocks must be 0 or more")
        _choice("model.generator.padding_mode", self.padding_mode, PADDING_MODES)


@dataclass(frozen=True)
class ALConfig:
    """Sizes specific to Animating Landscape (``model.kind: al``)."""

    code_dim: int = 8  # the global motion code c
    encoder_channels: tuple[int, ...] = (64, 128, 192, 256)  # first conv, then residual blocks
    codebook_size: int = 100  # at most this many k-means centres in the codebook
    common_motion_field: bool = True  # the encoder reads each clip's last prediction (AL)

    def __post_init__(self) -> None:
        _positive("model.al", self, "code_dim", "codebook_size")
        if not self.encoder_channels or min(self.encoder_channels) <= 0:
            raise ConfigError(
                f"model.al.encoder_channels must be positive widths, got {self.encoder_channels}"
            )


@dataclass(frozen=True)
class ModelConfig:
    """Sizes, units and the two networks."""

    image_size: int = 256  # frames, masks for the latent map and generated flow: S x S
    flow_size: int = 128  # flow and masks fed to the encoder
    groups: int = 6  # sky, tree, grass, water, waterfall, others
    latent_dim: int = 2  # size of each group's latent z_i
    flow_scale: float = 32.0  # c: generated flow = tanh(.) / c, in grid units
    negative_slope: float = 0.1  # LeakyReLU
    align_corners: bool = False  # grid_sample convention of grid units (see warp.py)
    flow_resize: str = "area"  # image_size -> flow_size resampling of the encoder's flow
    mask_resize: str = "nearest"  # ... and of its masks ("max": any pixel of the group)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    kind: str = "fgla"  # fgla | al (Animating Landscape: one global code, no partial convs)
    al: ALConfig = field(default_factory=ALConfig)  # used when kind is al

    def __post_init__(self) -> None:
        _positive("model", self, "image_size", "flow_size", "groups", "latent_dim", "flow_scale")
        _choice("model.kind", self.kind, MODEL_KINDS)
        _choice("model.flow_resize", self.flow_resize, FLOW_RESIZE_MODES)
        _choice("model.mask_resize", self.mask_resize, MASK_RESIZE_MODES)
        checks = [("image_size", self.image_size, self.generator.depth)]
        if self.regional:  # AL's encoder pools globally: any flow_size
            checks.append(("flow_size", self.flow_size, self.encoder.depth))
        for name, size, depth in checks:
            if size % 2**depth:
                raise ConfigError(f"model.{name} {size} is not divisible by 2**depth ({2**depth})")

    @property
    def regional(self) -> bool:
        """Whether each region group has its own latent (FGLA); AL has one global code."""
        return self.kind == "fgla"

    @property
    def code_dim(self) -> int:
        """Width of each group's row of Z: ``latent_dim`` (FGLA) or ``al.code_dim`` (AL)."""
        return self.latent_dim if self.regional else self.al.code_dim


@dataclass(frozen=True)
class LossConfig:
    """L_total = frame_weight L_frame + flow_weight L_flow + tv_weight L_tv."""

    frame_norm: str = "l1"  # per-pixel norm of the frame error: l1 (FGLA) or squared l2 (AL)
    frame_weight: float = 1.0
    flow_weight: float = 0.5  # alpha
    tv_weight: float = 5.0  # beta
    tv_sigma: float = 0.1  # edge weight exp(-|I(p) - I(q)|_1 / sigma)
    tv_reduction: str = "mean"  # "mean" over neighbour pairs, or the paper's plain "sum"

    def __post_init__(self) -> None:
        _positive("loss", self, "tv_sigma")
        _choice("loss.frame_norm", self.frame_norm, FRAME_NORMS)
        _choice("loss.tv_reduction", self.tv_reduction, TV_REDUCTIONS)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule."""

    lr: float = 1.0e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 8
    precision: str = "auto"  # auto: bf16 (else fp16) autocast on CUDA, fp32 on CPU
    tensorboard: bool = True  # scalars in OUT/tensorboard when the package is installed
    sample_every: int = 500  # steps between sample animations in OUT/samples (0: none)
    sample_frames: int = 16

    def __post_init__(self) -> None:
        _positive("train", self, "lr", "batch_size", "sample_frames")
        _choice("train.precision", self.precision, TRAIN_PRECISIONS)
        if self.sample_every < 0:
            raise ConfigError(f"train.sample_every must be 0 or more, got {self.sample_every}")


@dataclass(frozen=True)
class DataConfig:
    """What the training pairs are."""

    frame_stride: int = 4  # one of every four source frames
    flow_backend: str = "flownet2"  # flow of the fields trained on and of reference videos
    mirror: bool = False  # augmentation: mirror half the samples whole (flow x negated)
    min_frame_change: float = 0.0  # skip pairs whose mean |I_t+1 - I_t| (in [-1, 1]) is below

    def __post_init__(self) -> None:
        _positive("data", self, "frame_stride")
        _choice("data.flow_backend", self.flow_backend, BACKENDS)
        if self.min_frame_change < 0:
            raise ConfigError(
                f"data.min_frame_change must be 0 or more, got {self.min_frame_change}"
            )


@dataclass(frozen=True)
class InferenceConfig:
    """Animation with references."""

    compose: str = "warp"  # how F_0->t accumulates (warp.compose_flows)
    mode: str = "recurrent"  # F_t from each generated frame (papers) | single: one flow
    latents: str = "per_pair"  # z_t from reference pair t (paper) | mean: averaged over pairs

    def __post_init__(self) -> None:
        _choice("inference.compose", self.compose, COMPOSE_MODES)
        _choice("inference.mode", self.mode, INFERENCE_MODES)
        _choice("inference.latents", self.latents, LATENT_CHOICES)


@dataclass(frozen=True)
class FGLAConfig:
    """Every FGLA hyper-parameter."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)


def default_config_path() -> Path:
    """``timelapse_d/model_configs/fgla.yaml`` (installed with the package)."""
    return Path(str(resources.files("timelapse_d.model_configs") / CONFIG_FILE))


def load_fgla_config(
    path: Path | str | None = None, overrides: Mapping[str, Any] | None = None
) -> FGLAConfig:
    """Read a config file (default :func:`default_config_path`), then apply dotted overrides
    (``{"loss.tv_sigma": 0.2}``, as `--set` gives them)."""
    source = Path(path) if path is not None else default_config_path()
    data = read_yaml(source, "FGLA config") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"FGLA config {source} must be a mapping of sections")
    return fgla_config_from_dict(with_overrides(data, overrides or {}))


def fgla_config_from_dict(data: Mapping[str, Any]) -> FGLAConfig:
    """Build a config from nested mappings (a YAML file, or :func:`config_to_dict` output)."""
    return from_mapping(FGLAConfig, data, "FGLA config")


def config_to_dict(config: FGLAConfig) -> dict[str, Any]:
    """Nested plain dict (tuples as lists) for YAML/JSON and checkpoints."""
    return to_dict(config)
