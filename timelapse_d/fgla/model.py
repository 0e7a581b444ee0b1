"""The FGLA networks: fine-grained motion encoder E, latent mapping and U-Net motion generator P.

Shapes (defaults): flow 2 x 128 x 128 and one group's mask 1 x 128 x 128 -> z_i (2); the six
z_i of an image form Z (N x 6 x 2); Z painted on the six 256 x 256 group masks is the latent
map L (2 x 256 x 256); P(L ++ I) is a flow 2 x 256 x 256 in grid units, bounded by 1 / c.
Images are in [-1, 1]; flows are in grid units (see :mod:`timelapse_d.fgla.warp`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timelapse_d.fgla.config import ModelConfig
from timelapse_d.fgla.partial_conv import PartialConv2d, masked_instance_norm
from timelapse_d.fgla.warp import resize_flow

IMAGE_CHANNELS = 3
FLOW_CHANNELS = 2


def _widths(base: int, maximum: int, depth: int) -> list[int]:
    """Channel widths doubling per level from ``base``, capped at ``maximum``."""
    return [min(base * 2**i, maximum) for i in range(depth)]


class PartialConvBlock(nn.Module):
    """Stride-2 partial conv, instance norm (statistics over the updated mask, or over the
    whole map), LeakyReLU. Features outside the mask never reach the next partial conv."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, masked_norm: bool, slope: float
    ) -> None:
        super().__init__()
        self.conv = PartialConv2d(in_ch, out_ch, kernel, stride=2, padding=kernel // 2)
        self.masked_norm = masked_norm
        self.slope = slope

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        x, mask = self.conv(x, mask)
        x = masked_instance_norm(x, mask if self.masked_norm else torch.ones_like(mask))
        return F.leaky_relu(x, self.slope), mask


class FineGrainedMotionEncoder(nn.Module):
    """E: a fully partial-convolution network, flow (N x 2 x s x s) and one binary mask per
    sample (N x 1 x s x s) -> latent (N x latent_dim).

    The flow is read in the generator's units (times ``flow_scale``, so of order 1).
    ``depth`` stride-2 blocks, then a head partial conv whose kernel covers the remaining map
    (no norm, no activation). The instance norms keep the shape of the motion but not its size,
    so with ``magnitude_path`` a linear map (no bias) of the group's mean flow is added to z:
    the latent then carries the speed and direction of a uniform drift, whose normalised
    features are exactly 0. An empty mask gives exactly 0: a partial conv outputs 0 where no
    input pixel is valid, and the mean flow of no pixel is 0, so nothing outside the group
    reaches z.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        enc = config.encoder
        blocks, in_ch = [], FLOW_CHANNELS
        for i, ch in enumerate(_widths(enc.base_channels, enc.max_channels, enc.depth)):
            kernel = enc.first_kernel if i == 0 else 3
            blocks.append(
                PartialConvBlock(in_ch, ch, kernel, enc.masked_norm, config.negative_slope)
            )
            in_ch = ch
        self.blocks = nn.ModuleList(blocks)
        self.head = PartialConv2d(in_ch, config.latent_dim, config.flow_size // 2**enc.depth)
        self.magnitude = None
        if enc.magnitude_path:  # starts as the mean flow itself, times magnitude_gain
            self.magnitude = nn.Linear(FLOW_CHANNELS, config.latent_dim, bias=False)
            with torch.no_grad():
                self.magnitude.weight.copy_(
                    torch.eye(config.latent_dim, FLOW_CHANNELS) * enc.magnitude_gain
                )
        self.flow_scale = config.flow_scale

    def forward(self, flow: Tensor, mask: Tensor) -> Tensor:
        x = flow * self.flow_scale
        valid = mask
        for block in self.blocks:
            x, valid = block(x, valid)
        z, _ = self.head(x, valid)
        z = z.flatten(1)
        if self.magnitude is None:
            return z
        mean = (flow * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1.0)
        return z + self.magnitude(mean * self.flow_scale)


def latent_map(latents: Tensor, masks: Tensor) -> Tensor:
    """L(x, y) = z_k where M_k(x, y) = 1: latents N x G x D on one-hot masks N x G x H x W ->
    N x D x H x W (0 where no group is set)."""
    return torch.einsum("ngd,nghw->ndhw", latents, masks.to(latents.dtype))


def conv_block(
    in_ch: int, out_ch: int, kernel: int, stride: int, cfg: ModelConfig, norm: bool = True
) -> nn.Sequential:
    """Conv, instance norm (unless ``norm`` is false), LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(
            in_ch, out_ch, kernel, stride, kernel // 2, padding_mode=cfg.generator.padding_mode
        ),
        nn.InstanceNorm2d(out_ch) if norm else nn.Identity(),
        nn.LeakyReLU(cfg.negative_slope),
    )


class ResidualBlock(nn.Module):
    """x + IN(conv(LeakyReLU(IN(conv(x)))))."""

    def __init__(self, channels: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_block(channels, channels, 3, 1, cfg),
            nn.Conv2d(channels, channels, 3, 1, 1, padding_mode=cfg.generator.padding_mode),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class MotionGenerator(nn.Module):
    """P: a U-Net from L ++ I (N x (latent_dim + 3) x S x S) to flow (N x 2 x S x S).

    Down: ``depth`` stride-2 convs (the first with ``outer_kernel``); residual blocks at the
    bottleneck; up, per level: concatenate the encoder feature of that level, nearest x2
    upsampling, conv 3; last: concatenate, upsample, conv ``outer_kernel`` to 2 channels
    (no norm), ``tanh / flow_scale``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        gen = config.generator
        widths = _widths(gen.base_channels, gen.max_channels, gen.depth)
        ins = [config.latent_dim + IMAGE_CHANNELS, *widths[:-1]]
        kernels = [gen.outer_kernel] + [3] * (gen.depth - 1)
        norms = [gen.input_norm] + [True] * (gen.depth - 1)
        self.down = nn.ModuleList(
            conv_block(i, o, k, 2, config, n)
            for i, o, k, n in zip(ins, widths, kernels, norms, strict=True)
        )
        self.middle = nn.Sequential(
            *(ResidualBlock(widths[-1], config) for _ in range(gen.residual_blocks))
        )
        self.up = nn.ModuleList(
            conv_block(2 * widths[i], widths[i - 1], 3, 1, config)
            for i in range(gen.depth - 1, 0, -1)
        )
        self.out = nn.Conv2d(
            2 * widths[0],
            FLOW_CHANNELS,
            gen.outer_kernel,
            padding=gen.outer_kernel // 2,
            padding_mode=gen.padding_mode,
        )
        self.flow_scale = config.flow_scale

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        return self.decode(skips)

    def decode(self, skips: list[Tensor]) -> Tensor:
        """Bottleneck and decoder from the outputs of every down level (the last one is the
        bottleneck's input) to the bounded flow."""
        x = self.middle(skips[-1])
        for layer, skip in zip(self.up, reversed(skips[1:]), strict=True):
            x = layer(upsample2x(torch.cat((x, skip), 1)))
        x = self.out(upsample2x(torch.cat((x, skips[0]), 1)))
        return torch.tanh(x) / self.flow_scale


def upsample2x(x: Tensor) -> Tensor:
    """Nearest-neighbour upsampling by 2 (the generator's decoder step)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


class FGLA(nn.Module):
    """Encoder E and generator P; ``forward`` is the training path (latents of the same pair)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = FineGrainedMotionEncoder(config)
        self.generator = MotionGenerator(config)

    def encode(self, flow: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        """Z (N x G x latent_dim) from flow (N x 2 x s x s, grid units) and group masks
        (N x G x s x s); groups are folded into the batch. Also ``present`` (N x G bool):
        whether the group has a pixel (absent groups have z = 0). With
        ``encoder.mirror_input`` (FGLA's flip, in training and inference alike) E reads the flow
        and masks mirrored left-right with the flow values unchanged, so the latent cannot tie
        the motion to where things are in the image the generator sees."""
        self._check_groups(masks)
        if self.config.encoder.mirror_input:
            flow, masks = flow.flip(-1), masks.flip(-1)
        n, groups = masks.shape[:2]
        folded = flow.unsqueeze(1).expand(-1, groups, -1, -1, -1).flatten(0, 1)
        z = self.encoder(folded, masks.flatten(0, 1).unsqueeze(1))
        return z.view(n, groups, -1), masks.flatten(2).amax(2) > 0

    def generate(self, image: Tensor, latents: Tensor, masks: Tensor) -> Tensor:
        """Flow (N x 2 x S x S, grid units) for image (N x 3 x S x S in [-1, 1]), latents
        Z (N x G x latent_dim) and one-hot masks (N x G x S x S). Z may mix rows from
        different references (fine-grained control)."""
        self._check_groups(masks)
        return self.generator(torch.cat((latent_map(latents, masks), image), 1))

    def _check_groups(self, masks: Tensor) -> None:
        if masks.shape[1] != self.config.groups:
            raise ValueError(f"expected {self.config.groups} group masks, got {masks.shape[1]}")

    def forward(
        self, image: Tensor, flow_small: Tensor, masks_small: Tensor, masks: Tensor
    ) -> Tensor:
        """Predicted flow for image I_t from its pair's flow and masks at ``flow_size``
        (``flow_small``, ``masks_small``) and its masks at ``image_size``."""
        latents, _ = self.encode(flow_small, masks_small)
        return self.generate(image, latents, masks)


def encoder_inputs(flow: Tensor, masks: Tensor, config: ModelConfig) -> tuple[Tensor, Tensor]:
    """Flow (grid units) and one-hot masks at ``image_size`` -> the encoder's ``flow_size``."""
    size = config.flow_size
    small_flow = resize_flow(flow, size, config.flow_resize)
    if config.mask_resize == "max":
        return small_flow, F.adaptive_max_pool2d(masks, size)
    return small_flow, F.interpolate(masks, size=(size, size), mode="nearest")
