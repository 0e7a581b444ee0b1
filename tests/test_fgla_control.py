"""FGLA's fine-grained control, tested on ground truth.

A small FGLA is trained on CPU with the real `train` on the control corpus (sky and water
drifting in independent random 2-D directions over still ground). Held-out images are then
animated with references whose sky drifts along d and whose water drifts along e: the mean
generated motion must point along d over the sky and along e over the water, and a reference
without water must leave the water still. Fast tests cover the corpus and the inference path.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from control_model import HELD_OUT, SEED, SIZE

from timelapse_d.fgla.config import load_fgla_config
from timelapse_d.fgla.data import FGLAStream, StreamConfig
from timelapse_d.fgla.direction import direction_cosine, region_motion
from timelapse_d.fgla.inference import (
    Reference,
    chosen_motion,
    generate_flow,
    reference_latents,
    region_latents,
    step_flow,
    still_latents,
)
from timelapse_d.fgla.model import FGLA, encoder_inputs
from timelapse_d.fgla.trained import load_trained
from timelapse_d.fgla.warp import pixel_to_grid, warp
from timelapse_d.segment.groups import GROUP_NAMES, group_masks
from timelapse_d.synth.control import ControlClip, Vector, render_clip, write_control_build

SKY, TREE, WATER, OTHERS = (GROUP_NAMES.index(n) for n in ("sky", "tree", "water", "others"))
SPEED = 0.6  # reference drift, px per frame at 64 px (the generator reaches 1 px: 1/c grid)
COMBOS = [  # (sky drift d, water drift e), image axes (x right, y down)
    ((1.0, 0.0), (-1.0, 0.0)),  # opposite
    ((0.0, -1.0), (1.0, 0.0)),  # sky up, water right
    ((-0.6, 0.8), (0.8, 0.6)),  # sky down-left, water down-right
]
# Within 45 degrees of the reference (benchmarks/region_direction.py's criterion). The water of
# the first case (opposite drifts) scores 0.79 on one CPU and over 0.8 on another: the trained
# weights depend on the CPU's float kernels.
MIN_COSINE = math.cos(math.radians(45))
# A reference without water leaves the water still: its generated motion there stays under a
# tenth of the drift it would follow if referenced (0.06 px per frame: under 2 px over the 32
# frames of the paper's protocol, against 19 px). The drift itself is the yardstick, not the
# generated water speed, because the encoder keeps direction better than speed.
STILL_SPEED = 0.1 * SPEED * 2.0 / SIZE  # in grid units, where a pixel is 2 / SIZE


def as_tensors(clip: ControlClip) -> tuple[torch.Tensor, torch.Tensor]:
    """First frame (1 x 3 x S x S in [-1, 1]) and its one-hot masks (1 x G x S x S)."""
    image = torch.from_numpy(clip.frames[:1]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return image, torch.from_numpy(group_masks(clip.groups[:1])).float()


def as_reference(clip: ControlClip) -> Reference:
    """Every frame pair of a clip: grid-unit flow and the masks of the pair's first frame."""
    masks = torch.from_numpy(group_masks(clip.groups[:-1])).float()
    return Reference(pixel_to_grid(torch.from_numpy(clip.flow)), masks)


def held_out(index: int, sky: Vector, water: Vector | None, pace: float = SPEED) -> ControlClip:
    """A clip never trained on; sky and water drift at ``pace`` along the given directions."""
    rng = np.random.default_rng([SEED, HELD_OUT + index])
    lake = None if water is None else (pace * water[0], pace * water[1])
    return render_clip(rng, SIZE, 3, (pace * sky[0], pace * sky[1]), lake)


def speed(flow: torch.Tensor, masks: torch.Tensor, group: int) -> float:
    """Mean per-pixel flow magnitude over the group's pixels."""
    return float(flow.norm(dim=1)[masks[:, group] > 0].mean())


@pytest.fixture(scope="module")
def trained(control_checkpoint: Path) -> FGLA:
    return load_trained(control_checkpoint).model


@pytest.fixture(scope="module")
def targets() -> tuple[torch.Tensor, torch.Tensor]:
    """Four held-out images with sky and water, and their masks."""
    pairs = [as_tensors(held_out(i, (0.0, 0.0), (0.0, 0.0))) for i in range(4)]
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


@pytest.mark.slow
@pytest.mark.parametrize(("d", "e"), COMBOS)
def test_regions_follow_their_references_and_missing_water_holds_still(
    trained: FGLA,
    targets: tuple[torch.Tensor, torch.Tensor],
    d: Vector,
    e: Vector,
) -> None:
    images, masks = targets
    both = as_reference(held_out(100, d, e))
    flow = generate_flow(
        trained, images, masks, region_latents(trained, {"sky": both, "water": both})
    )
    sky, water = (
        direction_cosine(region_motion(flow, masks, SKY), d),
        direction_cosine(region_motion(flow, masks, WATER), e),
    )
    assert sky >= MIN_COSINE and water >= MIN_COSINE, (sky, water)

    sky_only = as_reference(held_out(101, d, None))
    choice = {"sky": sky_only, "water": sky_only}  # the reference lacks water: z_water = 0
    still = generate_flow(trained, images, masks, region_latents(trained, choice))
    assert speed(still, masks, WATER) < STILL_SPEED, speed(still, masks, WATER)


@pytest.mark.slow
@pytest.mark.parametrize(("d", "e"), COMBOS)
def test_reference_speed_sets_the_generated_speed_and_a_still_reference_holds_still(
    trained: FGLA, targets: tuple[torch.Tensor, torch.Tensor], d: Vector, e: Vector
) -> None:
    """References 1x and 3x as fast (0.26 and 0.78 px per frame, the training range) give
    generated motion at least 2x apart in each region; a reference whose sky holds still gives
    a still sky (mean flow under 0.05 px per frame at 64 px)."""
    images, masks = targets

    def flow_of(clip: ControlClip) -> torch.Tensor:
        choice = dict.fromkeys(GROUP_NAMES, as_reference(clip))
        return generate_flow(trained, images, masks, region_latents(trained, choice))

    slow, fast = (flow_of(held_out(102, d, e, pace)) for pace in (0.26, 0.78))
    for group in (SKY, WATER):
        assert speed(fast, masks, group) >= 2 * speed(slow, masks, group), group
    still = flow_of(held_out(103, (0.0, 0.0), e))
    assert speed(still, masks, SKY) < 0.05 * 2 / SIZE, speed(still, masks, SKY) * SIZE / 2


@pytest.fixture
def control_build(tmp_path: Path) -> Path:
    write_control_build(tmp_path, seed=3, clips=6, size=32, water_share=0.5, clips_per_shard=4)
    return tmp_path


def test_control_build_streams_with_exact_flow(control_build: Path) -> None:
    samples = list(FGLAStream(StreamConfig(str(control_build / "shards"), mirror=False)))
    assert sorted(s["key"] for s in samples) == [f"control-{i:06d}" for i in range(6)]
    checked = 0
    for sample in samples:
        image_t, image_t1, flow_px, masks = (
            torch.from_numpy(sample[k]) for k in ("image_t", "image_t1", "flow", "masks")
        )
        assert image_t.shape == (3, 32, 32) and torch.equal(masks.sum(0), torch.ones(32, 32))
        assert flow_px[:, masks[OTHERS] > 0].abs().max() == 0  # the ground holds still
        moving = flow_px.norm(dim=0) > 0
        if moving.sum() < 50:
            continue  # every region of this clip holds still
        errors = [  # after warping by the flow, by no flow and by the reversed flow
            (warp(image_t[None], pixel_to_grid(f[None]))[0] - image_t1).abs().sum(0)[moving].mean()
            for f in (flow_px, 0 * flow_px, -flow_px)
        ]
        assert errors[0] < errors[1] and errors[0] < 0.7 * errors[2], (sample["key"], errors)
        checked += 1
    assert checked >= 4


def test_clips_without_water_have_no_water_pixels() -> None:
    rng = np.random.default_rng(0)
    dry = render_clip(rng, 32, 2, (0.5, 0.0), None)
    wet = render_clip(rng, 32, 2, (0.5, 0.0), (0.0, 0.5))
    assert not (dry.groups == WATER).any() and (wet.groups == WATER).any()
    assert dry.frames.shape == (2, 32, 32, 3) and dry.flow.shape == (1, 2, 32, 32)
    sky = wet.groups[1] == SKY
    np.testing.assert_allclose(wet.flow[0][:, sky].mean(1), (-0.5, 0.0), atol=1e-5)


def tiny_model() -> FGLA:
    torch.manual_seed(0)
    overrides = {
        "model.image_size": 32,
        "model.flow_size": 16,
        "model.encoder.base_channels": 4,
        "model.encoder.max_channels": 8,
        "model.encoder.depth": 2,
        "model.generator.base_channels": 4,
        "model.generator.max_channels": 8,
        "model.generator.depth": 2,
        "model.generator.residual_blocks": 0,
    }
    return FGLA(load_fgla_config(overrides=overrides).model)


def band_masks(pairs: int, *groups: int) -> torch.Tensor:
    """One-hot masks (pairs x 6 x 32 x 32): the rows split into equal bands of ``groups``."""
    rows = torch.tensor(groups).repeat_interleave(-(-32 // len(groups)))[:32]
    ids = rows[:, None].expand(32, 32).expand(pairs, 32, 32)
    return F.one_hot(ids, len(GROUP_NAMES)).permute(0, 3, 1, 2).float()


def reference(*groups: int, seed: int) -> Reference:
    """One pair of random flow over bands of ``groups``."""
    gen = torch.Generator().manual_seed(seed)
    return Reference(torch.randn(1, 2, 32, 32, generator=gen) * 0.02, band_masks(1, *groups))


def test_chosen_motion_takes_each_row_from_its_reference_and_holds_the_rest_still() -> None:
    model = tiny_model()
    lake = reference(SKY, WATER, OTHERS, seed=1)
    clouds = reference(SKY, OTHERS, seed=2)
    motion = chosen_motion(model, {"sky": clouds, "water": lake, "tree": lake})
    z = region_latents(model, {"sky": clouds, "water": lake, "tree": lake})
    lake_z, lake_present = reference_latents(model, lake)
    clouds_z, _ = reference_latents(model, clouds)
    assert z.shape == (6, 2) and lake_present.tolist() == [1, 0, 0, 1, 0, 1]
    assert torch.equal(z[SKY], clouds_z[SKY]) and torch.equal(z[WATER], lake_z[WATER])
    assert not torch.equal(z[SKY], lake_z[SKY])
    assert motion.moving.tolist() == [True, False, False, True, False, False]
    others = [g for g in range(len(GROUP_NAMES)) if g not in (SKY, WATER)]
    torch.testing.assert_close(z[others], still_latents(model)[others])  # tree: absent from lake
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    masks = band_masks(1, SKY, TREE, WATER, OTHERS)
    flow = step_flow(model, motion, 0, images, masks)
    still = (masks[:, TREE] + masks[:, OTHERS]) > 0
    assert flow.abs().sum(1)[still].max() == 0 and flow.abs().sum(1)[~still].min() > 0
    with pytest.raises(ValueError, match="unknown group 'lake'"):
        region_latents(model, {"lake": lake})


def test_a_still_latent_does_not_depend_on_the_mask() -> None:
    model = tiny_model()
    still = torch.zeros(1, 2, 16, 16)
    latents = [
        model.encode(still, band_masks(1, *groups)[:, :, ::2, ::2])[0]
        for groups in ((SKY, WATER), (SKY, OTHERS, WATER, TREE))
    ]
    torch.testing.assert_close(latents[0][0, SKY], latents[1][0, SKY], rtol=0, atol=0)


def test_per_pair_latents_follow_the_reference_pairs() -> None:
    model = tiny_model()
    first, second = reference(SKY, WATER, seed=3), reference(SKY, OTHERS, seed=4)
    both = Reference(torch.cat((first.flow, second.flow)), torch.cat((first.masks, second.masks)))
    motion = chosen_motion(model, dict.fromkeys(GROUP_NAMES, both), per_pair=True)
    z1, z2 = reference_latents(model, first)[0], reference_latents(model, second)[0]
    assert len(motion.latents) == 2
    torch.testing.assert_close(motion.at(0)[SKY], z1[SKY])
    torch.testing.assert_close(motion.at(3)[SKY], z2[SKY])  # cycling: step 3 uses pair 1
    mean = reference_latents(model, both)[0]
    torch.testing.assert_close(motion.at(1)[WATER], mean[WATER])  # pair 1 has no water


def test_reference_latents_average_the_pairs_holding_the_group() -> None:
    model = tiny_model()
    first, second = reference(SKY, WATER, seed=3), reference(SKY, OTHERS, seed=4)
    both = Reference(torch.cat((first.flow, second.flow)), torch.cat((first.masks, second.masks)))
    z, present = reference_latents(model, both)
    z1, z2 = reference_latents(model, first)[0], reference_latents(model, second)[0]
    torch.testing.assert_close(z[SKY], (z1[SKY] + z2[SKY]) / 2)
    torch.testing.assert_close(z[WATER], z1[WATER])  # absent from the second pair
    assert present.tolist() == [True, False, False, True, False, True]
    small = Reference(*encoder_inputs(both.flow, both.masks, model.config))
    torch.testing.assert_close(reference_latents(model, small)[0], z)


def test_generate_flow_shares_the_latents_over_the_batch() -> None:
    model = tiny_model()
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    masks = band_masks(2, *range(6))
    latents = torch.randn(6, 2)
    flow = generate_flow(model, images, masks, latents)
    assert flow.shape == (2, 2, 32, 32) and not flow.requires_grad and not model.training
    with torch.no_grad():
        torch.testing.assert_close(flow, model.generate(images, latents.expand(2, 6, 2), masks))
    assert 0 < flow.abs().max() <= 1.0 / model.config.flow_scale
