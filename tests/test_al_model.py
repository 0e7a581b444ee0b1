"""The Animating Landscape baseline (global-code encoder, code-tiled predictor) and its codebook,
on small CPU models."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from timelapse_d.errors import ConfigError
from timelapse_d.fgla.al import AnimatingLandscape
from timelapse_d.fgla.codebook import build_codebook, codebook_latents
from timelapse_d.fgla.config import (
    ALConfig,
    FGLAConfig,
    GeneratorConfig,
    ModelConfig,
    load_fgla_config,
)
from timelapse_d.fgla.data import clip_shards, training_pair
from timelapse_d.fgla.losses import fgla_losses
from timelapse_d.fgla.trained import build_model
from timelapse_d.shards.reader import iter_joined
from timelapse_d.synth.control import write_control_build

REPO = Path(__file__).resolve().parents[1]

SIZE, FLOW_SIZE, GROUPS = 64, 32, 6
SMALL = ModelConfig(
    image_size=SIZE,
    flow_size=FLOW_SIZE,
    flow_scale=64.0,
    generator=GeneratorConfig(base_channels=8, max_channels=16, depth=3, residual_blocks=1),
)
AL = ALConfig(code_dim=8, encoder_channels=(4, 8, 8, 8))


def model(seed: int = 0) -> AnimatingLandscape:
    torch.manual_seed(seed)
    return AnimatingLandscape(SMALL, AL)


def images(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, SIZE // 8, SIZE // 8, generator=gen) * 2 - 1
    return F.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)


def flows(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, FLOW_SIZE, FLOW_SIZE, generator=gen) / 64


def masks(n: int, size: int, split: int) -> torch.Tensor:
    """Sky (group 0) above row ``split``, water (group 3) below."""
    groups = torch.zeros(n, size, size, dtype=torch.long)
    groups[:, split:] = 3
    return F.one_hot(groups, GROUPS).permute(0, 3, 1, 2).float()


# --- model -----------------------------------------------------------------------------------


def test_shapes_and_forward_is_generate_of_encode() -> None:
    net = model()
    image, flow = images(2), flows(2)
    small, full = masks(2, FLOW_SIZE, 16), masks(2, SIZE, 32)
    latents, present = net.encode(flow, small)
    assert latents.shape == (2, GROUPS, AL.code_dim)
    assert present.dtype == torch.bool and present.shape == (2, GROUPS) and present.all()
    assert torch.equal(latents, latents[:, :1].expand_as(latents))  # one code in every row
    out = net.generate(image, latents, full)
    assert out.shape == (2, 2, SIZE, SIZE)
    assert torch.allclose(net(image, flow, small, full), out)


def test_code_is_tiled_into_the_first_three_convs() -> None:
    net = model()
    widths = [8, 16, 16]  # base 8 doubling, capped at 16
    convs = [block[0] for block in net.predictor.down]
    assert [c.in_channels for c in convs] == [3 + 8, widths[0] + 8, widths[1] + 8]


def test_changing_the_code_changes_the_output() -> None:
    net = model()
    image = images(1)
    a = torch.zeros(1, GROUPS, AL.code_dim)
    b = a.clone()
    b[:, :, 0] = 1.0
    assert (net.generate(image, a, None) - net.generate(image, b, None)).abs().max() > 1e-6


def test_only_the_first_latent_row_drives_the_predictor() -> None:
    net = model()
    image = images(2)
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(2, GROUPS, AL.code_dim, generator=gen)
    b = torch.randn(2, GROUPS, AL.code_dim, generator=gen)
    b[:, 0] = a[:, 0]
    assert torch.equal(net.generate(image, a, None), net.generate(image, b, None))


def test_encoder_ignores_masks_but_sees_the_flow() -> None:
    net = model()
    flow = flows(2)
    z1, _ = net.encode(flow, masks(2, FLOW_SIZE, 4))
    z2, _ = net.encode(flow, masks(2, FLOW_SIZE, 28))
    assert torch.equal(z1, z2)
    assert torch.equal(z1, net.encode(flow, None)[0])
    other, _ = net.encode(flows(2, seed=1), None)
    assert (other - z1).abs().max() > 1e-6


def test_code_of_a_sample_does_not_depend_on_its_batch() -> None:
    net = model()
    flow = flows(3)
    alone, _ = net.encode(flow[:1], None)
    batched, _ = net.encode(flow, None)
    assert torch.allclose(alone[0], batched[0], atol=1e-6)


def test_output_is_bounded_by_one_over_flow_scale() -> None:
    net = model()
    with torch.no_grad():
        net.predictor.out.weight.mul_(1e3)  # saturate tanh
    out = net.generate(images(2), torch.randn(2, GROUPS, AL.code_dim), None)
    bound = 1 / SMALL.flow_scale
    assert out.abs().max() <= bound
    assert out.abs().max() > 0.99 * bound


def test_both_networks_get_gradients() -> None:
    net = model()
    target = torch.zeros(2, 2, SIZE, SIZE)
    loss = (net(images(2), flows(2), None, None) - target).square().mean()
    loss.backward()
    assert net.encoder.head.weight.grad.abs().sum() > 0
    assert net.predictor.down[0][0].weight.grad.abs().sum() > 0


def test_generate_rejects_latents_of_another_width() -> None:
    with pytest.raises(ValueError, match="N x G x 8"):
        model().generate(images(1), torch.zeros(1, GROUPS, 2), None)


def test_builds_on_the_meta_device_with_the_same_keys() -> None:
    with torch.device("meta"):
        meta = AnimatingLandscape(SMALL, AL)
    real = model()
    assert {k: v.shape for k, v in meta.state_dict().items()} == {
        k: v.shape for k, v in real.state_dict().items()
    }


@pytest.mark.parametrize(
    "kwargs", [{"code_dim": 0}, {"codebook_size": 0}, {"encoder_channels": ()}]
)
def test_al_config_refuses_bad_sizes(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="model.al"):
        ALConfig(**kwargs)


def test_flow_too_small_for_the_encoder_is_refused() -> None:
    deep = ALConfig(encoder_channels=(4, 8, 8, 8, 8, 8))  # six halvings need 64 pixels
    with pytest.raises(ConfigError, match="flow_size 32 is too small"):
        AnimatingLandscape(SMALL, deep)


# --- codebook --------------------------------------------------------------------------------


def clustered(centres: np.ndarray, per: int, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codes = np.repeat(centres, per, axis=0) + rng.normal(scale=noise, size=(len(centres) * per, 8))
    return rng.permutation(codes)


def test_kmeans_recovers_well_separated_centres() -> None:
    centres = np.random.default_rng(7).normal(scale=3.0, size=(5, 8))
    book = build_codebook(clustered(centres, 40, 0.01), size=5)
    assert book.shape == (5, 8)
    distance = np.linalg.norm(book[:, None] - centres[None], axis=2)
    assert distance.min(1).max() < 0.02
    assert sorted(distance.argmin(1)) == list(range(5))  # one entry per true centre


def test_codebook_is_ordered_along_the_first_principal_component() -> None:
    t = np.linspace(-2.0, 2.0, 60)
    direction = np.array([0.1, -0.9, 0.3, 0, 0, 0, 0, 0.2])  # largest entry negative
    rng = np.random.default_rng(0)
    codes = rng.permutation(t[:, None] * direction + rng.normal(scale=1e-3, size=(60, 8)))
    book = build_codebook(codes, size=6)
    # the axis is flipped so its largest entry is positive: positions run from +t to -t
    position = book @ direction / (direction @ direction)
    assert np.all(np.diff(position) < 0)
    assert np.array_equal(book, build_codebook(codes, size=6))  # same seed, same book
    assert np.array_equal(book, build_codebook(-codes, size=6)[::-1] * -1)


def test_fewer_distinct_codes_than_size_gives_those_codes() -> None:
    distinct = np.array([[0.0] * 8, [1.0] + [0.0] * 7, [3.0] + [0.0] * 7])
    codes = np.repeat(distinct, [5, 2, 4], axis=0)
    book = build_codebook(codes, size=10)
    assert np.array_equal(book, distinct)  # sorted along +x


def test_more_codes_than_size_gives_at_most_size_centres() -> None:
    codes = np.random.default_rng(2).normal(size=(500, 8))
    book = build_codebook(codes, size=20, seed=1)
    assert 1 <= len(book) <= 20
    assert np.array_equal(book, build_codebook(codes, size=20, seed=1))


def test_codebook_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        build_codebook(np.zeros((0, 8)), size=4)
    with pytest.raises(ValueError, match="positive"):
        build_codebook(np.zeros((3, 8)), size=0)


def test_codebook_latents_repeat_the_entry() -> None:
    book = np.arange(24, dtype=np.float64).reshape(3, 8)
    z = codebook_latents(book, 2, GROUPS)
    assert z.shape == (GROUPS, 8) and z.dtype == torch.float32
    assert torch.equal(z, torch.as_tensor(book[2], dtype=torch.float32).expand(GROUPS, -1))
    for bad in (3, -1):
        with pytest.raises(IndexError, match=f"index {bad} is out of range.*3 codes"):
            codebook_latents(book, bad, GROUPS)


# --- config, loss and data of an AL run --------------------------------------------------------


def test_al_yaml_builds_the_baseline_with_its_paper_values() -> None:
    config = load_fgla_config(REPO / "timelapse_d" / "model_configs" / "al.yaml")
    assert config.model.kind == "al" and config.model.code_dim == 8
    assert config.model.al.encoder_channels == (64, 128, 192, 256)
    assert config.model.flow_scale == 64.0 and config.loss.frame_norm == "l2"
    assert config.loss.flow_weight == 0.0 and config.data.min_frame_change == 0.02
    with torch.device("meta"):
        assert isinstance(build_model(config), AnimatingLandscape)
    default = load_fgla_config()
    assert default.model.kind == "fgla" and default.model.code_dim == default.model.latent_dim


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model.kind": "gan"}, "model.kind must be one of fgla, al"),
        ({"model.al.encoder_channels": [64, "wide"]}, "model.al.encoder_channels expects"),
        ({"loss.frame_norm": "l3"}, "loss.frame_norm must be one of l1, l2"),
        ({"data.min_frame_change": -0.1}, "data.min_frame_change must be 0 or more"),
    ],
)
def test_al_config_values_are_checked(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_fgla_config(REPO / "timelapse_d" / "model_configs" / "al.yaml", overrides)


def test_frame_norm_l2_squares_the_per_pixel_error() -> None:
    config = load_fgla_config(overrides={"loss.flow_weight": 0.0, "loss.tv_weight": 0.0})
    image = torch.zeros(1, 3, 4, 4)
    target = torch.full((1, 3, 4, 4), 0.5)
    still = torch.zeros(1, 2, 4, 4)
    l1 = fgla_losses(still, still, image, target, config)
    l2 = fgla_losses(still, still, image, target, replace_loss(config, frame_norm="l2"))
    assert float(l1.frame) == pytest.approx(1.5) and float(l2.frame) == pytest.approx(0.75)


def replace_loss(config: FGLAConfig, **values: object) -> FGLAConfig:
    return dataclasses.replace(config, loss=dataclasses.replace(config.loss, **values))


def test_pairs_below_the_frame_change_threshold_are_skipped(tmp_path: Path) -> None:
    """Control clips whose sky and water both hold still change by 0 between frames."""
    write_control_build(tmp_path, seed=4, clips=12, size=32, still_share=0.6)
    shard = clip_shards(tmp_path / "shards")[0]
    joined = list(iter_joined(shard))
    kept = [training_pair(j, random.Random(0), 0.02) is not None for j in joined]
    changes = []
    for j in joined:
        pair = training_pair(j, random.Random(0))
        assert pair is not None
        changes.append(float(np.abs(pair["image_t1"] - pair["image_t"]).mean()))
    assert kept == [c >= 0.02 for c in changes] and 0 < sum(kept) < len(kept)
