"""The Animating Landscape (AL) motion model, FGLA's baseline, behind FGLA's interface.

AL drives the whole image with one global motion code c (``code_dim``, 8 by default) instead of
FGLA's per-group latents. The motion encoder is a residual CNN (BicycleGAN's ``resnet_128``
shape) from the whole flow to c; the motion predictor is FGLA's U-Net generator with c tiled
and concatenated to the input of every stride-2 conv (the first three at the default depth) in
place of the latent map. (With reflection padding the tiled code adds a per-channel constant
to a conv's output, which a following instance norm removes, so the code acts through the first
conv, which has no norm, exactly as in AL.) To share FGLA's training and animation code, c
travels as the latents Z (N x G x code_dim) with c in every group row and every group
present; masks are accepted and ignored.

Choices where AL is silent or that adapt it to this project: the encoder sees the flow times
``flow_scale`` (the predictor's tanh units, so its input is of order 1), its residual branches
use instance norm (statistics of one sample, so a code never depends on the batch), its
spatial pooling is global (any ``flow_size``), and it is deterministic (the mean, no sampling).
"""

from __future__ import annotations

import dataclasses
from itertools import pairwise

import torch
from torch import Tensor, nn

from timelapse_d.errors import ConfigError
from timelapse_d.fgla.config import ALConfig, ModelConfig
from timelapse_d.fgla.model import FLOW_CHANNELS, MotionGenerator

ENCODER_SLOPE = 0.2  # LeakyReLU of the motion encoder (the predictor uses config.negative_slope)


class DownResidualBlock(nn.Module):
    """Pre-activation residual block that halves the map: IN, LeakyReLU, conv 3, IN, LeakyReLU,
    conv 3, average pool 2; shortcut: average pool 2, conv 1."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.InstanceNorm2d(in_ch),
            nn.LeakyReLU(ENCODER_SLOPE),
            nn.Conv2d(in_ch, in_ch, 3, padding=1),
            nn.InstanceNorm2d(in_ch),
            nn.LeakyReLU(ENCODER_SLOPE),
            nn.Conv2d(in_ch, out_ch, 3, padding=1),
            nn.AvgPool2d(2),
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_ch, out_ch, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class GlobalMotionEncoder(nn.Module):
    """E: flow (N x 2 x s x s, grid units) -> motion code c (N x code_dim).

    Conv 4 stride 2 to ``encoder_channels[0]``, one :class:`DownResidualBlock` per further
    width, LeakyReLU, global average pool, linear.
    """

    def __init__(self, config: ModelConfig, al: ALConfig) -> None:
        super().__init__()
        widths = al.encoder_channels
        if config.flow_size < 2 ** len(widths):
            raise ConfigError(
                f"model.flow_size {config.flow_size} is too small for {len(widths)} halvings "
                f"of the AL encoder (at least {2 ** len(widths)})"
            )
        self.features = nn.Sequential(
            nn.Conv2d(FLOW_CHANNELS, widths[0], 4, stride=2, padding=1),
            *(DownResidualBlock(i, o) for i, o in pairwise(widths)),
            nn.LeakyReLU(ENCODER_SLOPE),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(widths[-1], al.code_dim)
        self.flow_scale = config.flow_scale

    def forward(self, flow: Tensor) -> Tensor:
        return self.head(self.features(flow * self.flow_scale))


def tile(code: Tensor, like: Tensor) -> Tensor:
    """Code N x D as a constant map N x D x H x W with the H x W of ``like``."""
    return code[:, :, None, None].expand(-1, -1, *like.shape[2:])


class CodeConditionedPredictor(MotionGenerator):
    """P: FGLA's U-Net (widths, residual blocks, kernels and padding from
    ``config.generator``) with the input of every stride-2 conv widened by ``code_dim``
    channels for the tiled code; image (N x 3 x S x S) and code (N x code_dim) -> flow
    (N x 2 x S x S, grid units), bounded by 1 / ``flow_scale``."""

    def __init__(self, config: ModelConfig, code_dim: int) -> None:
        # the generator's first conv takes latent_dim + 3 channels: image ++ code
        super().__init__(dataclasses.replace(config, latent_dim=code_dim))
        for block in self.down[1:]:
            assert isinstance(block, nn.Sequential)  # conv_block: conv, norm, activation
            block[0] = _widened(block[0], code_dim)

    def forward(self, image: Tensor, code: Tensor) -> Tensor:  # type: ignore[override]
        x, skips = image, []
        for layer in self.down:
            x = layer(torch.cat((x, tile(code, x)), 1))
            skips.append(x)
        return self.decode(skips)


def _widened(conv: nn.Module, extra: int) -> nn.Conv2d:
    """A fresh conv like ``conv`` (a conv_block's Conv2d) taking ``extra`` more input
    channels."""
    assert isinstance(conv, nn.Conv2d) and not isinstance(conv.padding, str)
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    return nn.Conv2d(
        conv.in_channels + extra,
        conv.out_channels,
        (kh, kw),
        (sh, sw),
        (ph, pw),
        padding_mode=conv.padding_mode,
    )


class AnimatingLandscape(nn.Module):
    """Encoder E and predictor P with :class:`~timelapse_d.fgla.model.FGLA`'s interface."""

    def __init__(self, config: ModelConfig, al: ALConfig | None = None) -> None:
        super().__init__()
        self.config = config
        self.al = al or config.al
        self.encoder = GlobalMotionEncoder(config, self.al)
        self.predictor = CodeConditionedPredictor(config, self.al.code_dim)

    def encode(self, flow: Tensor, masks: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Z (N x G x code_dim): the code of the whole flow (N x 2 x s x s, grid units) in
        each of the ``config.groups`` rows, and ``present`` (N x G, all true). ``masks`` are
        ignored."""
        groups = self.config.groups
        code = self.encoder(flow)
        present = torch.ones(code.shape[0], groups, dtype=torch.bool, device=code.device)
        return code.unsqueeze(1).expand(-1, groups, -1), present

    def generate(self, image: Tensor, latents: Tensor, masks: Tensor | None = None) -> Tensor:
        """Flow (N x 2 x S x S, grid units) for image (N x 3 x S x S in [-1, 1]) driven by
        ``latents[:, 0]`` (Z is N x G x code_dim; other rows and ``masks`` are ignored)."""
        if latents.dim() != 3 or latents.shape[2] != self.al.code_dim:
            raise ValueError(
                f"expected latents N x G x {self.al.code_dim}, got {tuple(latents.shape)}"
            )
        return self.predictor(image, latents[:, 0])

    def forward(
        self, image: Tensor, flow_small: Tensor, masks_small: Tensor, masks: Tensor
    ) -> Tensor:
        """Predicted flow for image I_t from its pair's flow at ``flow_size``; the masks are
        part of the shared signature only."""
        latents, _ = self.encode(flow_small, masks_small)
        return self.generate(image, latents, masks)
