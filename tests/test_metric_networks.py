"""LPIPS, FID Inception and I3D: published checkpoint layouts, strict loading, forward passes.

The networks get random weights saved in the published files' layouts (no real weights here).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from metric_weights import metric_networks, write_metric_files
from torch import nn

from timelapse_d.checkpoints import CheckpointError, state_dict_shapes
from timelapse_d.metrics.i3d import (
    I3D_FILE,
    InceptionI3d,
    MaxPool3dSame,
    Unit3D,
    i3d_features,
    load_i3d,
)
from timelapse_d.metrics.inception import (
    FIDInception,
    inception_features,
    load_fid_inception,
)
from timelapse_d.metrics.lpips import (
    ALEXNET_CLASSIFIER,
    alexnet_shapes,
    heads_shapes,
    load_lpips,
    lpips_distance,
)


@pytest.fixture(scope="module")
def networks() -> dict[str, nn.Module]:
    return metric_networks()


@pytest.fixture(scope="module")
def files(
    networks: dict[str, nn.Module], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    return write_metric_files(networks, tmp_path_factory.mktemp("weights"))


def test_published_layouts() -> None:
    with torch.device("meta"):  # what a registry check builds: nothing is allocated
        inception, i3d = FIDInception(), InceptionI3d()
    assert all(t.is_meta for t in [*inception.parameters(), *i3d.parameters()])
    inception_shapes, i3d_shapes = state_dict_shapes(inception), state_dict_shapes(i3d)
    # 94 conv + batch-norm units (6 entries each, step counter included) and the 1008-way fc
    assert len(inception_shapes) == 94 * 6 + 2
    assert inception_shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert inception_shapes["Mixed_6e.branch7x7dbl_5.conv.weight"] == (192, 192, 1, 7)
    assert inception_shapes["Mixed_7c.branch_pool.bn.num_batches_tracked"] == ()
    assert inception_shapes["fc.weight"] == (1008, 2048)
    # 57 conv + batch-norm units (no step counter) and the 400-way logits with a bias
    assert len(i3d_shapes) == 57 * 5 + 2
    assert i3d_shapes["Conv3d_1a_7x7.conv3d.weight"] == (64, 3, 7, 7, 7)
    assert i3d_shapes["Mixed_3b.b1b.bn.running_var"] == (128,)
    assert i3d_shapes["Mixed_5c.b3b.conv3d.weight"] == (128, 832, 1, 1, 1)
    assert i3d_shapes["logits.conv3d.weight"] == (400, 1024, 1, 1, 1)
    assert i3d_shapes["logits.conv3d.bias"] == (400,)
    alexnet = alexnet_shapes()
    assert sorted(alexnet) == sorted(
        [f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")]
        + list(ALEXNET_CLASSIFIER)
    )
    assert alexnet["features.0.weight"] == (64, 3, 11, 11)
    assert alexnet["features.10.weight"] == (256, 256, 3, 3)
    assert heads_shapes() == {
        f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))
    }


def _load(name: str, path: Path, files: dict[str, Path]) -> nn.Module:
    loaders: dict[str, Callable[[], nn.Module]] = {
        "alexnet": lambda: load_lpips(path, files["heads"]),
        "heads": lambda: load_lpips(files["alexnet"], path),
        "inception": lambda: load_fid_inception(path),
        "i3d": lambda: load_i3d(path),
    }
    return loaders[name]()


@pytest.mark.parametrize(
    ("name", "key", "change", "message"),
    [
        ("alexnet", "classifier.6.bias", "drop", "missing key 'classifier.6.bias'"),
        ("alexnet", "features.10.weight", "reshape", "key 'features.10.weight' has shape"),
        ("heads", "lin4.model.1.weight", "drop", "missing key 'lin4.model.1.weight'"),
        ("heads", "lin0.model.1.weight", "reshape", "key 'lin0.model.1.weight' has shape"),
        ("inception", "fc.bias", "drop", "missing key 'fc.bias'"),
        (
            "inception",
            "Mixed_7c.branch_pool.conv.weight",
            "reshape",
            "key 'Mixed_7c.branch_pool.conv.weight' has shape",
        ),
        ("i3d", "logits.conv3d.bias", "drop", "missing key 'logits.conv3d.bias'"),
        ("i3d", "Mixed_4f.b1b.bn.running_var", "reshape", "'Mixed_4f.b1b.bn.running_var' has"),
        ("i3d", "Mixed_5c.b0.conv3d.bias", "add", "unexpected key 'Mixed_5c.b0.conv3d.bias'"),
    ],
)
def test_wrong_files_are_refused_naming_the_key(
    files: dict[str, Path], tmp_path: Path, name: str, key: str, change: str, message: str
) -> None:
    state: dict[str, Any] = torch.load(files[name], map_location="cpu", weights_only=True)
    if change == "drop":
        del state[key]
    elif change == "reshape":
        state[key] = torch.zeros(*state[key].shape[:-1], state[key].shape[-1] + 1)
    else:
        state[key] = torch.zeros(1)
    bad = tmp_path / files[name].name
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match=re.escape(message)) as error:
        _load(name, bad, files)
    assert str(bad) in str(error.value)


def test_lpips_loads_strictly_and_is_a_distance(
    files: dict[str, Path], networks: dict[str, nn.Module]
) -> None:
    model = load_lpips(files["alexnet"], files["heads"])
    torch.manual_seed(2)
    a, b = torch.rand(2, 2, 3, 48, 64).mul(2).sub(1).unbind(0)
    distance = lpips_distance(model, a, b)
    assert distance.shape == (2,) and distance.dtype == torch.float32
    assert (distance > 0).all()
    with torch.no_grad():  # every loaded weight is the saved one
        assert torch.allclose(distance, networks["lpips"](a, b), rtol=1e-5, atol=1e-7)
    assert torch.allclose(lpips_distance(model, b, a), distance, rtol=1e-5, atol=1e-7)
    assert torch.equal(lpips_distance(model, a, a), torch.zeros(2))
    closer = lpips_distance(model, a, (a + 0.05 * (b - a)).clamp(-1, 1))
    assert (closer < distance).all()


def test_inception_loads_strictly_and_is_deterministic(
    files: dict[str, Path], networks: dict[str, nn.Module]
) -> None:
    model = load_fid_inception(files["inception"])
    torch.manual_seed(3)
    images = torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8)
    features = inception_features(model, images)
    assert features.shape == (2, 2048) and features.dtype == torch.float32
    assert torch.equal(inception_features(model, images), features)
    scaled = images.float() / 127.5 - 1.0  # a float batch is read in [-1, 1]
    assert torch.allclose(inception_features(model, scaled), features, rtol=1e-4, atol=1e-5)
    alone = inception_features(model, images[1:])
    assert torch.allclose(alone[0], features[1], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(features[0], features[1], rtol=1e-2)
    resized = torch.nn.functional.interpolate(
        scaled, size=(299, 299), mode="bilinear", align_corners=False
    )
    with torch.no_grad():
        reference = networks["inception"](resized)
    assert torch.allclose(features, reference, rtol=1e-4, atol=1e-5)


def test_i3d_loads_strictly_and_is_deterministic(
    files: dict[str, Path], networks: dict[str, nn.Module], tmp_path: Path
) -> None:
    i3d_net = networks["i3d"]
    model = load_i3d(files["i3d"])
    torch.manual_seed(4)
    videos = torch.rand(2, 4, 3, 32, 40) * 2 - 1
    features = i3d_features(model, videos)
    assert features.shape == (2, 1024) and features.dtype == torch.float32
    assert torch.equal(i3d_features(model, videos), features)
    alone = i3d_features(model, videos[1:])
    assert torch.allclose(alone[0], features[1], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(features[0], features[1], rtol=1e-2)
    # small clips straight through the trunk: the loaded weights are the saved ones
    clips = videos.transpose(1, 2)
    with torch.no_grad():
        assert torch.allclose(model(clips), i3d_net(clips), rtol=1e-5, atol=1e-6)
    # a copy re-saved with batch norm's step counters loads to the same network
    state = dict(i3d_net.state_dict())
    state.update(
        {
            k.replace("running_mean", "num_batches_tracked"): torch.tensor(7)
            for k in state
            if k.endswith("running_mean")
        }
    )
    resaved = tmp_path / I3D_FILE
    torch.save(state, resaved)
    with torch.no_grad():
        assert torch.equal(load_i3d(resaved)(clips), model(clips))


def test_i3d_pads_like_tensorflow_same() -> None:
    # 'SAME': ceil(size / stride) outputs, odd padding puts the extra pixel after
    pooled = MaxPool3dSame((1, 3, 3), (1, 2, 2))(torch.arange(16.0).view(1, 1, 1, 4, 4))
    assert pooled.flatten().tolist() == [10.0, 11.0, 14.0, 15.0]
    unit = Unit3D(3, 4, (7, 7, 7), (2, 2, 2))
    assert unit(torch.zeros(1, 3, 5, 9, 10)).shape == (1, 4, 3, 5, 5)


@pytest.mark.parametrize(
    ("call", "shape"),
    [
        (lambda m, x: lpips_distance(m["lpips"], x, x[:1]), (2, 3, 32, 32)),
        (lambda m, x: lpips_distance(m["lpips"], x, x), (2, 3, 24, 32)),
        (lambda m, x: inception_features(m["inception"], x), (2, 32, 32, 3)),
        (lambda m, x: i3d_features(m["i3d"], x), (2, 3, 4, 32, 32)),
    ],
)
def test_bad_input_shapes_are_refused(
    networks: dict[str, nn.Module], call: Callable, shape: tuple[int, ...]
) -> None:
    with pytest.raises(ValueError, match="got"):
        call(networks, torch.zeros(shape))
