"""FGLA networks, warping and losses on small CPU models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from timelapse_d.checkpoints import CheckpointError, load_strict
from timelapse_d.errors import ConfigError
from timelapse_d.fgla.config import (
    EncoderConfig,
    FGLAConfig,
    GeneratorConfig,
    ModelConfig,
    config_to_dict,
    default_config_path,
    fgla_config_from_dict,
    load_fgla_config,
)
from timelapse_d.fgla.losses import fgla_losses, training_losses, tv_weights, weighted_tv
from timelapse_d.fgla.model import FGLA, encoder_inputs, latent_map
from timelapse_d.fgla.partial_conv import PartialConv2d, masked_instance_norm
from timelapse_d.fgla.warp import (
    compose_flows,
    grid_to_pixel,
    pixel_to_grid,
    resize_flow,
    warp,
)

SIZE = 32
SMALL = ModelConfig(
    image_size=SIZE,
    flow_size=SIZE // 2,
    encoder=EncoderConfig(base_channels=4, max_channels=8, depth=2),
    generator=GeneratorConfig(base_channels=8, max_channels=16, depth=2, residual_blocks=1),
)
CONFIG = FGLAConfig(model=SMALL)


def one_hot(groups: torch.Tensor, count: int = 6) -> torch.Tensor:
    """N x H x W group ids -> N x count x H x W float one-hot."""
    return F.one_hot(groups, count).permute(0, 3, 1, 2).float()


def smooth_images(n: int, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """Random images in [-1, 1] with structure at a few pixels' scale."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 4, size // 4, generator=gen) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def sky_water(n: int, size: int = SIZE) -> torch.Tensor:
    """Masks: sky (group 0) above, water (group 3) below."""
    groups = torch.zeros(n, size, size, dtype=torch.long)
    groups[:, size // 2 :] = 3
    return one_hot(groups)


# --- partial convolution -------------------------------------------------------------------


def direct_partial_conv(conv: PartialConv2d, x: torch.Tensor, mask: torch.Tensor) -> tuple:
    """The partial-conv formula window by window (mask expanded to every input channel)."""
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    mask = mask.expand_as(x)
    xp, mp = F.pad(x * mask, (p, p, p, p)), F.pad(mask, (p, p, p, p))
    n, _, h, w = x.shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = torch.zeros(n, conv.out_channels, ho, wo, dtype=torch.float64)
    new = torch.zeros(n, 1, ho, wo, dtype=torch.float64)
    weight, bias = conv.weight.double(), conv.bias.double()
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                win_x = xp[b, :, i * s : i * s + k, j * s : j * s + k].double()
                win_m = mp[b, :, i * s : i * s + k, j * s : j * s + k].double()
                if win_m.sum() > 0:
                    raw = (weight * win_x).sum((1, 2, 3))
                    out[b, :, i, j] = raw * win_m.numel() / win_m.sum() + bias
                    new[b, 0, i, j] = 1.0
    return out, new


@pytest.mark.parametrize("mask_channels", [1, 3])
def test_partial_conv_matches_direct_formula(mask_channels: int) -> None:
    torch.manual_seed(0)
    conv = PartialConv2d(3, 4, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 12, 12)
    mask = (torch.rand(2, mask_channels, 12, 12) > 0.3).float()
    mask[0, :, :8, :8] = 0  # holds 3 x 3 windows with no valid pixel
    mask[1] = 0  # a sample with an empty mask
    out, new = conv(x, mask)
    want_out, want_new = direct_partial_conv(conv, x, mask)
    torch.testing.assert_close(out.double(), want_out, rtol=1e-5, atol=1e-5)
    assert torch.equal(new.double(), want_new)
    assert new[0, 0, 1, 1] == 0 and out[0, :, 1, 1].abs().max() == 0  # bias is not added
    assert new[0].sum() > 0 and out[1].abs().max() == 0 and new[1].sum() == 0


def test_masked_instance_norm_uses_only_valid_pixels() -> None:
    x = torch.randn(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, 2:6, 1:5] = 1
    out = masked_instance_norm(x, mask)
    inside = out[0][:, mask[0, 0] > 0]
    torch.testing.assert_close(inside.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(inside.var(1, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    assert out[0][:, mask[0, 0] == 0].abs().max() == 0 and out[1].abs().max() == 0


# --- encoder, latent map, generator --------------------------------------------------------


def test_encoder_gives_one_latent_per_group_and_zero_for_absent_groups() -> None:
    torch.manual_seed(0)
    model = FGLA(SMALL)
    masks = sky_water(3, SMALL.flow_size)
    masks[1, 0] = 0  # image 1 has no sky pixel at all
    z, present = model.encode(torch.randn(3, 2, 16, 16) * 0.05, masks)
    assert z.shape == (3, 6, 2) and present.shape == (3, 6)
    assert present[0].tolist() == [True, False, False, True, False, False]
    assert not present[1, 0]
    assert torch.equal(z[~present], torch.zeros_like(z[~present]))
    assert z[present].abs().min() > 0


@pytest.mark.parametrize("masked_norm", [True, False])
def test_group_latent_ignores_flow_outside_the_group(masked_norm: bool) -> None:
    torch.manual_seed(0)
    cfg = dataclasses.replace(
        SMALL, encoder=dataclasses.replace(SMALL.encoder, masked_norm=masked_norm)
    )
    model = FGLA(cfg)
    masks = sky_water(1, 16)
    flow = torch.randn(1, 2, 16, 16) * 0.05
    other = flow.clone()
    other[..., 8:, :] = torch.randn(1, 2, 8, 16)  # change only the water's flow
    z, _ = model.encode(flow, masks)
    z_other, _ = model.encode(other, masks)
    torch.testing.assert_close(z[0, 0], z_other[0, 0], rtol=1e-5, atol=1e-6)  # sky unchanged
    assert (z[0, 3] - z_other[0, 3]).abs().max() > 1e-3  # water follows its flow


def test_latent_map_puts_each_latent_on_its_group() -> None:
    groups = torch.randint(0, 6, (2, SIZE, SIZE))
    latents = torch.randn(2, 6, 2)
    lmap = latent_map(latents, one_hot(groups))
    assert lmap.shape == (2, 2, SIZE, SIZE)
    want = torch.stack([latents[b][groups[b]] for b in range(2)]).permute(0, 3, 1, 2)
    assert torch.equal(lmap, want)


def test_generator_shape_and_flow_bound() -> None:
    torch.manual_seed(0)
    model = FGLA(SMALL)
    with torch.no_grad():
        model.generator.out.weight.mul_(100)  # saturate tanh
        flow = model.generate(smooth_images(2), torch.randn(2, 6, 2), sky_water(2))
    assert flow.shape == (2, 2, SIZE, SIZE)
    bound = 1 / SMALL.flow_scale
    assert flow.abs().max() <= bound and flow.abs().max() > 0.99 * bound


def test_group_count_is_checked() -> None:
    with pytest.raises(ValueError, match="6 group masks"):
        FGLA(SMALL).encode(torch.zeros(1, 2, 16, 16), torch.zeros(1, 5, 16, 16))


# --- warping and flow units ----------------------------------------------------------------


@pytest.mark.parametrize("align_corners", [False, True])
def test_integer_pixel_shift_equals_roll(align_corners: bool) -> None:
    image = torch.randn(1, 3, 24, 20)
    dx, dy = 3, -2
    flow_px = torch.tensor([dx, dy], dtype=torch.float32).view(1, 2, 1, 1).expand(1, 2, 24, 20)
    out = warp(image, pixel_to_grid(flow_px, align_corners), align_corners)
    rolled = np.roll(image.numpy(), shift=(-dy, -dx), axis=(2, 3))  # out(p) = image(p + d)
    np.testing.assert_allclose(out.numpy()[..., 3:-3, 4:-4], rolled[..., 3:-3, 4:-4], atol=1e-5)


@pytest.mark.parametrize("align_corners", [False, True])
def test_pixel_grid_round_trip(align_corners: bool) -> None:
    flow = torch.randn(2, 2, 16, 40) * 5
    grid = pixel_to_grid(flow, align_corners)
    torch.testing.assert_close(grid_to_pixel(grid, align_corners), flow)
    span = 39 if align_corners else 40
    torch.testing.assert_close(grid[:, 0], flow[:, 0] * 2 / span)


def test_resized_flow_keeps_its_meaning() -> None:
    flow = shift(2, -1, 16)  # an eighth of the width right, a sixteenth of the height up
    bigger = grid_to_pixel(resize_flow(flow, (24, 40), "bilinear"))
    torch.testing.assert_close(bigger[0, :, 5, 7], torch.tensor([5.0, -1.5]))
    torch.testing.assert_close(grid_to_pixel(resize_flow(flow, 64)), shift_px(8, -4, 64))


def shift_px(dx: float, dy: float, size: int = SIZE) -> torch.Tensor:
    """A constant flow of (dx, dy) pixels, 1 x 2 x size x size."""
    flow = torch.tensor([dx, dy], dtype=torch.float32).view(1, 2, 1, 1)
    return flow.expand(1, 2, size, size).clone()


def shift(dx: float, dy: float, size: int = SIZE) -> torch.Tensor:
    """The same flow in grid units."""
    return pixel_to_grid(shift_px(dx, dy, size))


def test_composed_shifts_add_up() -> None:
    composed = compose_flows(shift(2, -1), shift(-3, 4))
    torch.testing.assert_close(composed, shift(-1, 3))


def test_composition_samples_the_first_frame_once() -> None:
    image = smooth_images(1)
    accumulated = shift(2, 0)
    accumulated[..., :, SIZE // 2 :] = shift(-1, 1)[..., :, SIZE // 2 :]  # two regions
    step = shift(3, 0)
    twice = warp(warp(image, accumulated), step)
    inner = (..., slice(4, -4), slice(4, -4))
    once = warp(image, compose_flows(accumulated, step))
    torch.testing.assert_close(once[inner], twice[inner], atol=1e-5, rtol=0)
    added = warp(image, compose_flows(accumulated, step, mode="add"))
    assert (added[inner] - twice[inner]).abs().max() > 0.05  # the plain sum misses the seam


# --- losses --------------------------------------------------------------------------------


def test_losses_vanish_for_a_perfect_prediction() -> None:
    image_t = smooth_images(2)
    flow = shift(1.5, -2).expand(2, -1, -1, -1)
    terms = fgla_losses(flow, flow, image_t, warp(image_t, flow), CONFIG)
    for value in (terms.total, terms.frame, terms.flow, terms.tv):
        assert value.item() == pytest.approx(0.0, abs=1e-7)
    wrong = fgla_losses(torch.zeros_like(flow), flow, image_t, warp(image_t, flow), CONFIG)
    assert wrong.frame > 0.01 and wrong.flow > 0.01


def test_tv_weight_falls_across_image_edges() -> None:
    image = -torch.ones(1, 3, 8, 8)
    image[..., 4:] = 1  # a vertical edge between columns 3 and 4
    w_right, w_lower = tv_weights(image, 0.1)
    assert w_right.shape == (1, 1, 8, 7) and w_lower.shape == (1, 1, 7, 8)
    assert w_right[..., 3].max() < 1e-20
    assert torch.equal(w_right[..., [0, 1, 2, 4, 5, 6]], torch.ones(1, 1, 8, 6))
    assert torch.equal(w_lower, torch.ones_like(w_lower))
    on_edge = torch.zeros(1, 2, 8, 8)
    on_edge[:, 0, :, 4:] = 0.1  # flow jump where the image has its edge
    off_edge = torch.roll(on_edge, 2, dims=3)
    assert weighted_tv(on_edge, image, 0.1) < 1e-6 < weighted_tv(off_edge, image, 0.1)


def test_tv_is_the_sum_over_right_and_lower_neighbours() -> None:
    torch.manual_seed(0)
    flow, image = torch.randn(1, 2, 4, 5), torch.rand(1, 3, 4, 5)
    total = 0.0
    for y in range(4):
        for x in range(5):
            for qy, qx in ((y, x + 1), (y + 1, x)):
                if qy < 4 and qx < 5:
                    w = torch.exp(-(image[0, :, y, x] - image[0, :, qy, qx]).abs().sum() / 0.1)
                    total += float(w * (flow[0, :, y, x] - flow[0, :, qy, qx]).abs().sum())
    assert weighted_tv(flow, image, 0.1, "sum").item() == pytest.approx(total, rel=1e-5)
    mean = weighted_tv(flow, image, 0.1, "mean").item()
    assert mean < total / 10  # per-pair average of 15 right and 16 lower pairs


# --- training and checkpoints --------------------------------------------------------------


def synthetic_batch(n: int = 4) -> dict[str, torch.Tensor]:
    """Sky drifting right, water drifting down (pixels), the next frame warped accordingly."""
    masks = sky_water(n)
    flow_px = torch.zeros(n, 2, SIZE, SIZE)
    flow_px[:, 0, : SIZE // 2] = 0.6
    flow_px[:, 1, SIZE // 2 :] = 0.5
    image_t = smooth_images(n, seed=1)
    image_t1 = warp(image_t, pixel_to_grid(flow_px))
    return {"image_t": image_t, "image_t1": image_t1, "flow_px": flow_px, "masks": masks}


def test_model_trains_on_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = FGLA(SMALL)
    batch = synthetic_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=CONFIG.train.betas)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        terms = training_losses(model, CONFIG, **batch)
        terms.total.backward()
        losses.append(terms.total.item())
        optimizer.step()
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert losses[-1] < 0.5 * losses[0], losses


def test_mixed_precision_forward_and_backward() -> None:
    torch.manual_seed(0)
    model = FGLA(SMALL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = training_losses(model, CONFIG, **synthetic_batch(2))
    terms.total.backward()
    assert torch.isfinite(terms.total)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_state_dict_round_trip_is_strict() -> None:
    torch.manual_seed(0)
    model = FGLA(SMALL).eval()
    torch.manual_seed(1)
    copy = FGLA(SMALL).eval()
    batch = synthetic_batch(2)
    flow_small, masks_small = encoder_inputs(pixel_to_grid(batch["flow_px"]), batch["masks"], SMALL)
    args = (batch["image_t"], flow_small, masks_small, batch["masks"])
    assert not torch.equal(model(*args), copy(*args))
    load_strict(copy, model.state_dict(), "memory")
    assert torch.equal(model(*args), copy(*args))
    wider = FGLA(dataclasses.replace(SMALL, encoder=EncoderConfig(base_channels=8, depth=2)))
    with pytest.raises(CheckpointError, match="shape"):
        load_strict(wider, model.state_dict(), "memory")


# --- config ------------------------------------------------------------------------------


def test_shipped_config_holds_every_default() -> None:
    text = default_config_path().read_text(encoding="utf-8")
    assert load_fgla_config() == FGLAConfig()
    for key in ("flow_scale: 32.0", "tv_sigma: 0.1", "lr: 1.0e-4", "flow_backend: flownet2"):
        assert key in text


def test_config_overrides_and_refusals() -> None:
    config = load_fgla_config(overrides={"loss.tv_sigma": 0.2, "train.lr": "3e-4"})
    assert config.loss.tv_sigma == 0.2 and config.train.lr == 3e-4
    assert fgla_config_from_dict(config_to_dict(config)) == config
    with pytest.raises(ConfigError, match="model.encoder.width"):
        load_fgla_config(overrides={"model.encoder.width": 3})
    with pytest.raises(ConfigError, match="train.betas"):
        load_fgla_config(overrides={"train.betas": [0.5]})
    with pytest.raises(ConfigError, match="model.align_corners"):
        load_fgla_config(overrides={"model.align_corners": "no"})
    with pytest.raises(ConfigError, match="divisible"):
        load_fgla_config(overrides={"model.image_size": 100})
