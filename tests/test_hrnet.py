"""HRNetV2-W48 + C1 segmenter: checkpoint layout, strict loading, forward shapes; FGLA groups."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import SHARED_MEDIA
from torch import nn

from timelapse_d.checkpoints import CheckpointError
from timelapse_d.errors import ConfigError
from timelapse_d.segment.groups import (
    GROUP_NAMES,
    class_map_to_groups,
    default_groups_path,
    group_masks,
    load_groups,
)
from timelapse_d.segment.hrnet import (
    ENCODER_CHANNELS,
    EXTRA_BN_BUFFERS,
    Segmenter,
    load_segmenter,
    segment,
)

GROUPS = "ade20k_groups.yaml"
MODEL_CONFIGS = Path(__file__).resolve().parents[1] / "timelapse_d" / "model_configs"
ENCODER_KEYS = SHARED_MEDIA.parent / "reference" / "hrnetv2_encoder_state_dict_keys.txt"


def csail_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's state dict plus the synchronized-BN buffers CSAIL checkpoints carry."""
    state = dict(module.state_dict())
    for name, child in module.named_modules():
        if isinstance(child, nn.BatchNorm2d):
            state[f"{name}._tmp_running_mean"] = child.running_mean.clone()
            state[f"{name}._tmp_running_var"] = child.running_var.clone()
            state[f"{name}._running_iter"] = torch.ones(1)
    return state


def key_pattern(key: str) -> str:
    """The reference file's generalisation: every all-digit key component becomes N."""
    return ".".join("N" if part.isdigit() else part for part in key.split("."))


@pytest.fixture(scope="module")
def model() -> Segmenter:
    torch.manual_seed(0)
    return Segmenter().eval()


@pytest.fixture(scope="module")
def checkpoints(model: Segmenter, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("csail")
    with torch.no_grad():  # distinct, non-default BN statistics so loading is observable
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    paths = folder / "encoder_epoch_30.pth", folder / "decoder_epoch_30.pth"
    torch.save(csail_state(model.encoder), paths[0])
    torch.save(csail_state(model.decoder), paths[1])
    return paths


@pytest.mark.skipif(not ENCODER_KEYS.is_file(), reason="../shared/reference is absent")
def test_encoder_keys_match_reference_checkpoint(model: Segmenter) -> None:
    lines = ENCODER_KEYS.read_text().splitlines()
    total = int(lines[0])
    end = next(i for i, line in enumerate(lines) if line.startswith("---"))
    reference = Counter()
    for line in lines[1:end]:
        count, pattern = line.split()
        reference[pattern] += int(count)
    state = csail_state(model.encoder)
    assert sum(reference.values()) == total == len(state)
    assert Counter(key_pattern(key) for key in state) == reference
    shaped = [re.fullmatch(r"(\S+) \((.*)\)", line) for line in lines[end:]]
    listed = {m[1]: tuple(int(d) for d in m[2].split(",") if d.strip()) for m in shaped if m}
    assert len(listed) > 50
    assert {key: tuple(state[key].shape) for key in listed} == listed


def test_decoder_keys_match_csail_c1(model: Segmenter) -> None:
    """CSAIL's C1 head for 720 input channels (no reference file lists the decoder): a 3x3 conv
    without bias to 720 // 4 = 180 channels, its batch norm (with the synchronized-BN extras),
    and a 1x1 conv with bias to the 150 classes."""
    bn = {
        "weight": (180,),
        "bias": (180,),
        "running_mean": (180,),
        "running_var": (180,),
        "num_batches_tracked": (),
        "_tmp_running_mean": (180,),
        "_tmp_running_var": (180,),
        "_running_iter": (1,),
    }
    expected = {
        "cbr.0.weight": (180, 720, 3, 3),
        **{f"cbr.1.{name}": shape for name, shape in bn.items()},
        "conv_last.weight": (150, 180, 1, 1),
        "conv_last.bias": (150,),
    }
    state = csail_state(model.decoder)
    assert {key: tuple(value.shape) for key, value in state.items()} == expected


def test_checkpoints_load_strictly(model: Segmenter, checkpoints: tuple[Path, Path]) -> None:
    loaded = load_segmenter(*checkpoints)
    assert not loaded.training
    expected = model.state_dict()
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_renamed_key_is_refused(checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    state = torch.load(checkpoints[1], weights_only=True)
    state["conv_final.weight"] = state.pop("conv_last.weight")
    bad = tmp_path / "renamed.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match=r"renamed\.pth.*missing.*'conv_last\.weight'"):
        load_segmenter(checkpoints[0], bad)


def test_wrong_width_is_refused(checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    state = torch.load(checkpoints[1], weights_only=True)
    state["cbr.0.weight"] = torch.zeros(ENCODER_CHANNELS, ENCODER_CHANNELS, 3, 3)
    bad = tmp_path / "wide.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match=r"wide\.pth.*'cbr\.0\.weight'.*\(720, 720, 3, 3\)"):
        load_segmenter(checkpoints[0], bad)


def test_swapped_files_are_refused(checkpoints: tuple[Path, Path]) -> None:
    encoder, decoder = checkpoints
    with pytest.raises(CheckpointError, match=r"encoder_epoch_30\.pth.*missing.*'cbr\.0\.weight'"):
        load_segmenter(decoder, encoder)


def test_missing_and_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_segmenter(tmp_path / "none.pth", tmp_path / "none.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"<html>not a checkpoint</html>")
    with pytest.raises(CheckpointError, match=r"junk\.pth: not a readable"):
        load_segmenter(junk, junk)


def test_extra_bn_buffers_are_only_the_three(model: Segmenter) -> None:
    bn_count = sum(isinstance(m, nn.BatchNorm2d) for m in model.decoder.modules())
    extra = set(csail_state(model.decoder)) - set(model.decoder.state_dict())
    assert len(extra) == 3 * bn_count
    assert {key.rpartition(".")[2] for key in extra} == set(EXTRA_BN_BUFFERS)


def test_forward_at_odd_size(model: Segmenter) -> None:
    images = np.random.default_rng(0).integers(0, 256, (2, 97, 130, 3), dtype=np.uint8)
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        model.register_forward_pre_hook(lambda _m, args: seen.setdefault("input", args[0])),
        model.encoder.register_forward_hook(lambda _m, _i, out: seen.setdefault("features", out)),
        model.register_forward_hook(lambda _m, _i, out: seen.setdefault("logits", out)),
    ]
    try:
        classes = segment(model, images)
    finally:
        for hook in hooks:
            hook.remove()
    expected_input = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(seen["input"], expected_input, rtol=0, atol=1e-7)
    assert seen["features"].shape == (2, ENCODER_CHANNELS, 25, 33)  # ceil(ceil(n / 2) / 2)
    assert seen["logits"].shape == (2, 150, 97, 130)
    assert classes.shape == (2, 97, 130) and classes.dtype == np.uint8
    assert classes.max() < 150
    np.testing.assert_array_equal(classes, seen["logits"].argmax(1).numpy())


def test_segment_under_bf16_autocast(model: Segmenter) -> None:
    images = np.random.default_rng(1).integers(0, 256, (1, 37, 29, 3), dtype=np.uint8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        classes = segment(model, images)
    assert classes.shape == (1, 37, 29) and classes.dtype == np.uint8
    assert classes.max() < 150


@pytest.mark.parametrize(
    "images", [np.zeros((8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.float32)]
)
def test_segment_refuses_other_layouts(model: Segmenter, images: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"uint8 RGB images \(N,H,W,3\)"):
        segment(model, images)


FGLA_GROUPS = {
    "sky": {2},
    "tree": {4, 72},
    "grass": {9, 17, 29, 66},
    "water": {21, 26, 60, 109, 128},
    "waterfall": {113},
}


def test_shipped_mapping_is_the_fgla_proposal() -> None:
    assert default_groups_path() == MODEL_CONFIGS / GROUPS
    mapping = load_groups()
    assert mapping.classes[GROUP_NAMES.index("sky")] == {2}
    assert dict(zip(GROUP_NAMES[:5], mapping.classes, strict=False)) == FGLA_GROUPS
    listed = set().union(*FGLA_GROUPS.values())
    assert mapping.classes[5] == set(range(150)) - listed


def test_class_map_to_groups_and_masks() -> None:
    class_map = np.array(
        [[[2, 4, 72, 9], [17, 29, 66, 21], [26, 60, 109, 128], [113, 0, 1, 149]]], np.uint8
    )
    expected = np.array([[[0, 1, 1, 2], [2, 2, 2, 3], [3, 3, 3, 3], [4, 5, 5, 5]]], np.uint8)
    assert default_groups_path() == MODEL_CONFIGS / GROUPS
    mapping = load_groups()
    groups = class_map_to_groups(class_map, mapping)
    assert groups.dtype == np.uint8
    np.testing.assert_array_equal(groups, expected)
    masks = group_masks(groups)
    assert masks.shape == (1, 6, 4, 4) and masks.dtype == bool
    assert (masks.sum(axis=1) == 1).all()
    for g in range(6):
        np.testing.assert_array_equal(masks[:, g], expected == g)
    with pytest.raises(ValueError, match="0..149"):
        class_map_to_groups(np.array([150]), mapping)


def write_mapping(tmp_path: Path, **overrides: object) -> Path:
    groups = {name: sorted(ids) for name, ids in FGLA_GROUPS.items()} | overrides
    path = tmp_path / "groups.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in groups.items() if v != "drop"}))
    return path


def test_custom_mapping_moves_a_class(tmp_path: Path) -> None:
    mapping = load_groups(write_mapping(tmp_path, waterfall=[], water=[21, 113]))
    assert mapping.classes[3] == {21, 113} and mapping.classes[4] == frozenset()
    assert 26 in mapping.classes[5]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tree": [4, 2]}, "class 2 is listed in both sky and tree"),
        ({"others": [0]}, "must map exactly"),
        ({"waterfall": "drop"}, "must map exactly"),
        ({"grass": [150]}, "not a class id in 0..149"),
        ({"grass": 9}, "grass must be a list"),
    ],
)
def test_invalid_mappings_are_refused(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_groups(write_mapping(tmp_path, **overrides))
