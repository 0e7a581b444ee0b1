"""FlowNet 2.0 in plain PyTorch: checkpoint layout, custom ops, strict loading, forward pass."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from timelapse_d.checkpoints import CheckpointError, state_dict_shapes  # noqa: E402
from timelapse_d.flow.flownet2 import (  # noqa: E402
    PARAMETER_COUNT,
    FlowNet2,
    estimate_flow,
    flownet2_shapes,
    load_flownet2,
)
from timelapse_d.flow.ops import channel_norm, correlation, resample2d  # noqa: E402

REFERENCE_KEYS = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "flownet2_state_dict_keys.txt"
)


@pytest.fixture(scope="module")
def model() -> FlowNet2:
    """One random-weight FlowNet2 for the module (building it takes seconds)."""
    torch.manual_seed(0)
    return FlowNet2().eval()


@pytest.fixture(scope="module")
def meta_model() -> FlowNet2:
    """FlowNet2 with shapes but no storage: instant, for layout and argument checks."""
    with torch.device("meta"):
        return FlowNet2()


def _reference_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in REFERENCE_KEYS.read_text().splitlines():
        match = re.fullmatch(r"\s+(\S+) \(([\d, ]*)\)", line)
        if match:
            shapes[match[1]] = tuple(int(v) for v in match[2].split(",") if v.strip())
    return shapes


@pytest.mark.skipif(not REFERENCE_KEYS.is_file(), reason="../shared/reference is absent")
def test_state_dict_matches_nvidia_checkpoint(meta_model: FlowNet2) -> None:
    reference = _reference_shapes()
    assert len(reference) == 220
    assert state_dict_shapes(meta_model) == reference
    assert flownet2_shapes() == reference
    assert sum(p.numel() for p in meta_model.parameters()) == PARAMETER_COUNT == 162_518_834


# --- correlation -------------------------------------------------------------------------------


def _slow_correlation(
    f1: torch.Tensor, f2: torch.Tensor, md: int, stride2: int, pad: int, kernel: int
) -> np.ndarray:
    """The correlation layer's definition, one output value at a time, in float64."""
    p1 = np.pad(f1.double().numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    p2 = np.pad(f2.double().numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, w = f1.shape
    kr, radius = kernel // 2, md // stride2
    d = 2 * radius + 1
    out = np.zeros((n, d * d, h + 2 * pad - 2 * (md + kr), w + 2 * pad - 2 * (md + kr)))
    for b in range(n):
        for y in range(out.shape[2]):
            for x in range(out.shape[3]):
                y1, x1 = y + md + kr, x + md + kr
                for i in range(d):
                    for j in range(d):
                        dy, dx = (i - radius) * stride2, (j - radius) * stride2
                        total = 0.0
                        for ky in range(-kr, kr + 1):
                            for kx in range(-kr, kr + 1):
                                a = p1[b, :, y1 + ky, x1 + kx]
                                total += a @ p2[b, :, y1 + dy + ky, x1 + dx + kx]
                        out[b, i * d + j, y, x] = total / (c * kernel * kernel)
    return out


@pytest.mark.parametrize(
    ("md", "stride2", "pad", "kernel"),
    [(20, 2, 20, 1), (4, 2, 4, 1), (3, 1, 2, 1), (3, 2, 3, 1), (2, 2, 3, 3)],
    ids=[
        "flownetc",
        "flownetc-like",
        "pad-below-displacement",
        "displacement-not-stride-multiple",
        "kernel3",
    ],
)
def test_correlation_matches_direct_computation(md: int, stride2: int, pad: int, kernel: int):
    gen = torch.Generator().manual_seed(md * 10 + pad)
    f1 = torch.randn(2, 5, 6, 7, generator=gen)
    f2 = torch.randn(2, 5, 6, 7, generator=gen)
    expected = _slow_correlation(f1, f2, md, stride2, pad, kernel)
    got = correlation(f1, f2, md, stride2, pad, kernel)
    assert got.shape == expected.shape and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_correlation_peaks_at_the_true_displacement() -> None:
    f1 = torch.randn(1, 64, 12, 14, generator=torch.Generator().manual_seed(1))
    f2 = torch.zeros_like(f1)
    f2[:, :, 2:, :-4] = f1[:, :, :-2, 4:]  # f2(p + (dy, dx)) = f1(p) for (dy, dx) = (2, -4)
    corr = correlation(f1, f2, max_displacement=4, stride2=2, pad=4)
    assert corr.shape == (1, 25, 12, 14)
    channel = (2 // 2 + 2) * 5 + (-4 // 2 + 2)  # displacement index (row 3, column 0) of 5x5
    assert (corr[0, :, 2:10, 4:12].argmax(dim=0) == channel).all()


def test_correlation_flownetc_settings_and_half_precision() -> None:
    f1 = torch.randn(2, 8, 5, 6)
    corr = correlation(f1, f1.flip(0))
    assert corr.shape == (2, 441, 5, 6)
    for dtype in (torch.float16, torch.bfloat16):
        low = correlation(f1.to(dtype), f1.flip(0).to(dtype))
        assert low.dtype == dtype
        torch.testing.assert_close(low.float(), corr, atol=0.05, rtol=0.05)


# --- resample2d and channel_norm ---------------------------------------------------------------


def _constant_flow(u: float, v: float, h: int, w: int) -> torch.Tensor:
    return torch.tensor([u, v]).view(1, 2, 1, 1).expand(1, 2, h, w)


def test_resample2d_integer_shift_with_border_clamping() -> None:
    image = torch.randn(1, 3, 5, 6)
    warped = resample2d(image, _constant_flow(1, 2, 5, 6))
    for y in range(5):
        for x in range(6):
            source = image[0, :, min(y + 2, 4), min(x + 1, 5)]
            torch.testing.assert_close(warped[0, :, y, x], source)
    far_left = resample2d(image, _constant_flow(-10, 0, 5, 6))
    torch.testing.assert_close(far_left, image[:, :, :, :1].expand(1, 3, 5, 6))


def test_resample2d_bilinear_and_per_pixel_flow() -> None:
    image = torch.arange(20.0).view(1, 1, 4, 5)  # value = 5 y + x
    flow = torch.zeros(1, 2, 4, 5)
    flow[0, :, 1, 2] = torch.tensor([0.25, 1.5])  # sample (x, y) = (2.25, 2.5)
    warped = resample2d(image, flow)
    assert warped[0, 0, 1, 2].item() == pytest.approx(5 * 2.5 + 2.25)
    elsewhere = torch.ones(1, 1, 4, 5, dtype=torch.bool)
    elsewhere[0, 0, 1, 2] = False
    torch.testing.assert_close(warped[elsewhere], image[elsewhere])
    low = resample2d(image.bfloat16(), torch.zeros(1, 2, 4, 5, dtype=torch.bfloat16))
    assert low.dtype == torch.bfloat16


def test_resample2d_matches_direct_bilinear_sampling() -> None:
    """Fractional flows, many pointing outside the image: bilinear at the clamped position."""
    gen = torch.Generator().manual_seed(3)
    image = torch.randn(2, 3, 5, 7, generator=gen)
    flow = torch.randn(2, 2, 5, 7, generator=gen) * 4
    img, fl = image.double().numpy(), flow.double().numpy()
    n, _, h, w = img.shape
    expected = np.zeros_like(img)
    outside = 0
    for b in range(n):
        for y in range(h):
            for x in range(w):
                sx, sy = x + fl[b, 0, y, x], y + fl[b, 1, y, x]
                outside += not (0 <= sx <= w - 1 and 0 <= sy <= h - 1)
                sx, sy = min(max(sx, 0.0), w - 1.0), min(max(sy, 0.0), h - 1.0)
                x0, y0 = int(sx), int(sy)
                x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
                ax, ay = sx - x0, sy - y0
                top = (1 - ax) * img[b, :, y0, x0] + ax * img[b, :, y0, x1]
                bottom = (1 - ax) * img[b, :, y1, x0] + ax * img[b, :, y1, x1]
                expected[b, :, y, x] = (1 - ay) * top + ay * bottom
    assert 10 < outside < n * h * w - 10
    warped = resample2d(image, flow)
    assert warped.dtype == torch.float32
    np.testing.assert_allclose(warped.numpy(), expected, atol=1e-5)


def test_channel_norm_is_l2_over_channels() -> None:
    x = torch.randn(2, 5, 3, 4)
    norm = channel_norm(x)
    assert norm.shape == (2, 1, 3, 4)
    torch.testing.assert_close(norm, torch.linalg.norm(x, dim=1, keepdim=True))
    torch.testing.assert_close(norm[1, 0, 2, 3], x[1, :, 2, 3].pow(2).sum().sqrt())


# --- strict loading ----------------------------------------------------------------------------


def _random_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Random weights of the given shapes, all views of one buffer (a small file once saved)."""
    base = torch.randn(max(int(np.prod(s)) for s in shapes.values()))
    return {key: base[: int(np.prod(s))].view(s) for key, s in shapes.items()}


@pytest.mark.parametrize("wrapped", [True, False], ids=["nvidia-dict", "bare-state-dict"])
def test_checkpoint_round_trips_strictly(tmp_path: Path, wrapped: bool) -> None:
    state = _random_state(flownet2_shapes())
    path = tmp_path / "FlowNet2_checkpoint.pth.tar"
    if wrapped:  # NVIDIA's layout and legacy serialization, with numpy metadata
        payload = {"arch": "FlowNet2", "epoch": 0, "best_EPE": np.float64(1.5), "state_dict": state}
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(state, path)
    loaded = load_flownet2(path, "cpu")
    assert isinstance(loaded, FlowNet2) and not loaded.training
    for key, tensor in loaded.state_dict().items():
        assert tensor.device.type == "cpu" and tensor.dtype == torch.float32
        torch.testing.assert_close(tensor, state[key], rtol=0, atol=0)


def test_checkpoint_with_renamed_key_is_refused(tmp_path: Path) -> None:
    state = _random_state(flownet2_shapes())
    state["flownetc.conv_redirect.0.weight"] = state.pop("flownetc.conv_redir.0.weight")
    path = tmp_path / "renamed.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError, match=r"renamed\.pth.*'flownetc\.conv_redir\.0\.weight'"):
        load_flownet2(path, "cpu")


def test_checkpoint_with_changed_shape_is_refused(tmp_path: Path) -> None:
    shapes = flownet2_shapes()
    shapes["flownets_d.predict_flow2.weight"] = (2, 63, 3, 3)
    path = tmp_path / "reshaped.pth"
    torch.save(_random_state(shapes), path)
    expected = r"reshaped\.pth.*'flownets_d\.predict_flow2\.weight'"
    with pytest.raises(CheckpointError, match=expected):
        load_flownet2(path, "cpu")


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nowhere.pth: checkpoint not found"):
        load_flownet2(tmp_path / "nowhere.pth", "cpu")


# --- forward pass ------------------------------------------------------------------------------


def _frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.mark.slow
def test_forward_at_any_size_gives_float32_flow_at_input_size(model: FlowNet2) -> None:
    flow = estimate_flow(model, _frames(1, 100, 150, 0), _frames(1, 100, 150, 1))
    assert flow.shape == (1, 2, 100, 150) and flow.dtype == np.float32
    assert np.isfinite(flow).all()


class _ConstantFlow(torch.nn.Module):
    """Stands in for FlowNet2: one pixel of flow in u and v, at the (padded) size it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))
        self.sizes: list[tuple[int, int]] = []

    def forward(self, im1: torch.Tensor, im2: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(im1.shape[-2:]))
        return torch.ones(im1.shape[0], 2, *im1.shape[-2:])


class _SubNetwork(torch.nn.Module):
    """Stands in for one of FlowNet2's five networks: records its input and returns a constant
    (u, v) at 1/``scale`` of the input size."""

    def __init__(self, u: float, v: float, scale: int = 4) -> None:
        super().__init__()
        self.value, self.scale = torch.tensor([u, v]).view(1, 2, 1, 1), scale
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x)
        n, _, h, w = x.shape
        return self.value.expand(n, 2, h // self.scale, w // self.scale)


def _shifted(image: torch.Tensor, u: int, v: int) -> torch.Tensor:
    """image(p + (u, v)) with positions clamped to the border, by indexing."""
    h, w = image.shape[-2:]
    rows = (torch.arange(h) + v).clamp(0, h - 1)
    cols = (torch.arange(w) + u).clamp(0, w - 1)
    return image[:, :, rows][:, :, :, cols]


def _norm(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).sum(dim=1).sqrt()


def test_flownet2_input_handling_and_output_scaling() -> None:
    """NVIDIA's pipeline around the five networks: per-channel mean of both frames subtracted,
    divided by 255; C, S1 and S2 outputs times div_flow = 20, the SD output divided by it; each
    refinement sees frame 2 warped by the previous flow, that flow / 20 and the error norm; the
    fusion network's output is returned unscaled."""
    with torch.device("meta"):
        model = FlowNet2()
    c, s1, s2 = _SubNetwork(0.05, -0.1), _SubNetwork(0.1, 0.05), _SubNetwork(0.15, 0.0)
    sd, fusion = _SubNetwork(20.0, -40.0), _SubNetwork(0.5, 0.25, scale=1)
    model.flownetc, model.flownets_1, model.flownets_2 = c, s1, s2
    model.flownets_d, model.flownetfusion = sd, fusion
    gen = torch.Generator().manual_seed(5)
    im1, im2 = (torch.rand(2, 3, 64, 128, generator=gen) * 255 for _ in range(2))
    flow = model(im1, im2)

    mean = (im1.sum(dim=(2, 3)) + im2.sum(dim=(2, 3))).view(2, 3, 1, 1) / (2 * 64 * 128)
    x1, x2 = (im1 - mean) / 255, (im2 - mean) / 255
    x = torch.cat((x1, x2), dim=1)
    close = functools.partial(torch.testing.assert_close, atol=2e-5, rtol=1e-5)
    close(c.inputs[0], x)
    close(sd.inputs[0], x)
    for net, (u, v) in ((s1, (1, -2)), (s2, (2, 1))):  # C gives (1, -2) px, S1 (2, 1) px
        seen = net.inputs[0]
        assert seen.shape == (2, 12, 64, 128)
        close(seen[:, :6], x)
        close(seen[:, 6:9], _shifted(x2, u, v))
        close(seen[:, 9:11], torch.tensor([u / 20, v / 20]).view(1, 2, 1, 1).expand(2, 2, 64, 128))
        close(seen[:, 11], _norm(x1 - _shifted(x2, u, v)))
    seen = fusion.inputs[0]  # SD gives (20, -40) / 20 = (1, -2) px, S2 (0.15 * 20, 0) = (3, 0)
    assert seen.shape == (2, 11, 64, 128)
    close(seen[:, :3], x1)
    close(seen[:, 3:7], torch.tensor([1.0, -2.0, 3.0, 0.0]).view(1, 4, 1, 1).expand(2, 4, 64, 128))
    close(seen[:, 7], torch.full((2, 64, 128), 5**0.5))
    close(seen[:, 8], torch.full((2, 64, 128), 3.0))
    close(seen[:, 9], _norm(x1 - _shifted(x2, 1, -2)))
    close(seen[:, 10], _norm(x1 - _shifted(x2, 3, 0)))
    close(flow, torch.tensor([0.5, 0.25]).view(1, 2, 1, 1).expand(2, 2, 64, 128))


def test_estimate_flow_resizes_to_multiples_of_64_and_scales_back() -> None:
    stub = _ConstantFlow()
    flow = estimate_flow(stub, _frames(2, 100, 150, 0), _frames(2, 100, 150, 1))
    assert stub.sizes == [(128, 192)]
    assert flow.shape == (2, 2, 100, 150)
    np.testing.assert_allclose(flow[:, 0], 150 / 192, rtol=1e-6)
    np.testing.assert_allclose(flow[:, 1], 100 / 128, rtol=1e-6)
    flow = estimate_flow(stub, _frames(1, 64, 128, 0), _frames(1, 64, 128, 1))
    assert stub.sizes[-1] == (64, 128) and np.all(flow == 1)


def test_bad_inputs_are_refused(meta_model: FlowNet2) -> None:
    frames = torch.zeros(1, 3, 100, 150, device="meta")
    with pytest.raises(ValueError, match="multiples of 64"):
        meta_model(frames, frames)
    with pytest.raises(ValueError, match="uint8"):
        estimate_flow(meta_model, _frames(1, 8, 8, 0).astype(np.float32), _frames(1, 8, 8, 1))
    with pytest.raises(ValueError, match="equal"):
        estimate_flow(meta_model, _frames(1, 8, 8, 0), _frames(1, 8, 9, 1))


@pytest.mark.slow
def test_forward_runs_in_bfloat16_autocast(model: FlowNet2) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        flow = estimate_flow(model, _frames(1, 64, 64, 0), _frames(1, 64, 64, 1))
    assert flow.shape == (1, 2, 64, 64) and flow.dtype == np.float32
    assert np.isfinite(flow).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_correlation_and_half_precision_forward(model: FlowNet2) -> None:
    f1, f2 = torch.randn(2, 256, 32, 40), torch.randn(2, 256, 32, 40)
    expected = correlation(f1, f2)
    torch.testing.assert_close(correlation(f1.cuda(), f2.cuda()).cpu(), expected)
    half = correlation(f1.cuda().half(), f2.cuda().half())
    torch.testing.assert_close(half.float().cpu(), expected, atol=0.02, rtol=0.02)
    im1, im2 = _frames(2, 200, 300, 0), _frames(2, 200, 300, 1)
    cuda_model = model.cuda()
    try:
        full = estimate_flow(cuda_model, im1, im2)
        with torch.autocast("cuda", dtype=torch.float16):
            half_flow = estimate_flow(cuda_model, im1, im2)
    finally:
        model.cpu()
    assert half_flow.shape == full.shape == (2, 2, 200, 300)
    np.testing.assert_allclose(half_flow, full, atol=0.05 * (np.abs(full).max() + 1))


def test_flownetc_correlation_runs_in_float32_under_autocast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As NVIDIA's layer, the cost volume is computed in fp32 even when the convs run in bf16."""
    import timelapse_d.flow.flownet2 as flownet2

    seen = []

    def spy(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        seen.append((f1.dtype, torch.is_autocast_enabled("cpu")))
        return correlation(f1, f2)

    monkeypatch.setattr(flownet2, "correlation", spy)
    torch.manual_seed(0)
    net = flownet2.FlowNetC().eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        net(torch.randn(1, 6, 64, 64))
    assert seen == [(torch.float32, False)]
