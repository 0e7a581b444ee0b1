"""Flow backends: FGLA's backward-flow convention, DIS accuracy on Middlebury, .flo files."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import SHARED_MEDIA

from timelapse_d.errors import ConfigError
from timelapse_d.flow.backends import BACKENDS, make_flow_backend
from timelapse_d.flow.dis import DISBackend
from timelapse_d.flow.flo import end_point_error, known_pixels, read_flo, write_flo
from timelapse_d.flow.flownet2 import WEIGHTS_FILE, flownet2_shapes
from timelapse_d.weights import ENV_VAR, MissingWeights

RUBBER_WHALE = SHARED_MEDIA / "flow_gt" / "RubberWhale"
needs_rubber_whale = pytest.mark.skipif(
    not RUBBER_WHALE.is_dir(), reason="../shared/media/flow_gt/RubberWhale is absent"
)
SHIFT = (3, -2)  # (dx, dy): the content moves 3 px right and 2 px up from previous to following


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _shifted_pair(h: int = 96, w: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(previous, following) batches of one smooth random texture, following = previous moved by
    SHIFT: following(x, y) = previous(x - dx, y - dy)."""
    rng = np.random.default_rng(0)
    margin = 8
    noise = rng.random((h + 2 * margin, w + 2 * margin, 3)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), 2.0)
    texture = ((texture - texture.min()) / np.ptp(texture) * 255).astype(np.uint8)
    dx, dy = SHIFT
    previous = texture[margin : margin + h, margin : margin + w]
    following = texture[margin - dy : margin - dy + h, margin - dx : margin - dx + w]
    return previous[None], following[None]


def test_dis_backward_flow_sign_on_a_shift() -> None:
    """following(p) = previous(p - SHIFT), and backward flow F has following(p) ~=
    previous(p + F(p)), so F = -SHIFT = (-3, +2) everywhere."""
    previous, following = _shifted_pair()
    flow = make_flow_backend("dis").backward_flow(previous, following)
    assert flow.shape == (1, 2, 96, 128) and flow.dtype == np.float32
    interior = flow[0, :, 12:-12, 12:-12].reshape(2, -1)
    expected = -np.array(SHIFT, dtype=np.float32)[:, None]
    np.testing.assert_allclose(np.median(interior, axis=1), expected[:, 0], atol=0.1)
    assert np.abs(interior - expected).mean() < 0.05  # measured 0.01
    # The backward flow warps previous onto following (what FGLA's generator does).
    grid = np.stack(np.meshgrid(np.arange(128), np.arange(96)), axis=-1).astype(np.float32)
    warped = cv2.remap(previous[0], grid + flow[0].transpose(1, 2, 0), None, cv2.INTER_LINEAR)
    error = np.abs(warped.astype(int) - following[0])[12:-12, 12:-12].mean()
    assert error < 1.0  # grey levels; measured 0.02, against 26.5 without the warp


@needs_rubber_whale
def test_dis_end_point_error_on_rubberwhale() -> None:
    """Middlebury's flow10.flo is the forward flow F: frame10(p) ~= frame11(p + F(p)).
    backward_flow(previous, following) gives following(p) ~= previous(p + F(p)), so with
    following = frame10 and previous = frame11 it estimates that same field.

    Measured with the default MEDIUM preset: 0.225 px (FAST 0.44, ULTRAFAST 0.54); the
    opposite direction measures 2.39 px.
    """
    frame10, frame11 = (_rgb(RUBBER_WHALE / f"frame{i}.png")[None] for i in (10, 11))
    truth = read_flo(RUBBER_WHALE / "flow10.flo")
    dis = make_flow_backend("dis")
    flow = dis.backward_flow(previous=frame11, following=frame10)[0]
    assert end_point_error(flow, truth) < 0.30
    reversed_flow = dis.backward_flow(previous=frame10, following=frame11)[0]
    assert end_point_error(reversed_flow, truth) > 1.5


def test_dis_processes_every_pair_of_a_batch() -> None:
    previous, following = _shifted_pair()
    batch = make_flow_backend("dis").backward_flow(
        np.concatenate([previous, following]), np.concatenate([following, previous])
    )
    assert batch.shape == (2, 2, 96, 128)
    centre = batch[:, :, 12:-12, 12:-12].reshape(2, 2, -1)
    np.testing.assert_allclose(np.median(centre[0], axis=1), [-3, 2], atol=0.1)
    np.testing.assert_allclose(np.median(centre[1], axis=1), [3, -2], atol=0.1)


def test_frames_must_be_equal_uint8_rgb_batches() -> None:
    previous, following = _shifted_pair()
    dis = DISBackend()
    with pytest.raises(ValueError, match="uint8"):
        dis.backward_flow(previous.astype(np.float32), following.astype(np.float32))
    with pytest.raises(ValueError, match="RGB batches"):
        dis.backward_flow(previous[0], following[0])
    with pytest.raises(ValueError, match="unknown DIS preset"):
        DISBackend("slow")


def test_wrong_backend_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown flow backend 'pwc'.*dis, flownet2, raft"):
        make_flow_backend("pwc")
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        make_flow_backend("dis", precision="fp8")
    with pytest.raises(ConfigError, match="dis flow backend takes no weights"):
        make_flow_backend("dis", weights=Path("FlowNet2_checkpoint.pth.tar"))
    assert BACKENDS == ("dis", "flownet2", "raft")


def test_raft_without_torchvision_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("torchvision", "torchvision.models.optical_flow"):
        monkeypatch.setitem(sys.modules, module, None)  # makes importing it fail
    with pytest.raises(ConfigError, match="torchvision.*pip install torchvision"):
        make_flow_backend("raft")


def test_flownet2_without_weights_names_file_and_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    expected = f"tld weights import flownet2 /path/to/{WEIGHTS_FILE}"
    with pytest.raises(MissingWeights, match=expected.replace(".", r"\.")):
        make_flow_backend("flownet2")


def _small_random_checkpoint(shapes: dict[str, tuple[int, ...]], path: Path) -> Path:
    """Small random weights of the given shapes: views of one buffer, saved once."""
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(max(int(np.prod(s)) for s in shapes.values()), generator=generator)
    base *= 0.01  # keeps activations finite through the stacked networks
    torch.save(
        {"state_dict": {k: base[: int(np.prod(s))].view(s) for k, s in shapes.items()}}, path
    )
    return path


@pytest.fixture(scope="module")
def flownet2_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("flownet2")
    return _small_random_checkpoint(flownet2_shapes(), folder / WEIGHTS_FILE)


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=pytest.mark.slow)])
def test_flownet2_backend_with_random_weights(flownet2_weights: Path, precision: str) -> None:
    """Random weights: only the layout (shape, dtype, finiteness) can be checked."""
    backend = make_flow_backend("flownet2", weights=flownet2_weights, precision=precision)
    previous, following = _shifted_pair(h=60, w=70)
    flow = backend.backward_flow(previous, following)
    assert backend.name == "flownet2"
    assert flow.shape == (1, 2, 60, 70) and flow.dtype == np.float32
    assert np.isfinite(flow).all()


def test_flownet2_backend_runs_the_network_from_following_to_previous(
    flownet2_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """estimate_flow(model, a, b) gives a(p) ~= b(p + F): FGLA's backward flow is (following,
    previous)."""
    backend = make_flow_backend("flownet2", weights=flownet2_weights)
    calls = []
    monkeypatch.setattr(
        "timelapse_d.flow.flownet2.estimate_flow", lambda model, a, b: calls.append((a, b))
    )
    previous, following = _shifted_pair(h=64, w=64)
    backend.backward_flow(previous, following)
    assert len(calls) == 1 and calls[0][0] is following and calls[0][1] is previous


def test_raft_backend_with_random_weights(tmp_path: Path) -> None:
    """Runs only where torchvision is installed (an optional extra)."""
    optical_flow = pytest.importorskip("torchvision.models.optical_flow")
    torch.manual_seed(0)
    path = tmp_path / "raft.pth"
    torch.save(optical_flow.raft_large(weights=None).state_dict(), path)
    previous, following = _shifted_pair(h=60, w=70)
    flow = make_flow_backend("raft", weights=path).backward_flow(previous, following)
    assert flow.shape == (1, 2, 60, 70) and flow.dtype == np.float32
    assert np.isfinite(flow).all()


# --- .flo files ------------------------------------------------------------------------------


def test_flo_round_trip_and_unknown_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(0, 5, (2, 7, 9)).astype(np.float32)
    truth[:, 2, 3] = 1e9  # unknown pixels, as Middlebury marks them
    truth[0, 5, 1] = 1.7e9
    write_flo(tmp_path / "t.flo", truth)
    assert (tmp_path / "t.flo").stat().st_size == 12 + 7 * 9 * 8
    loaded = read_flo(tmp_path / "t.flo")
    np.testing.assert_array_equal(loaded, truth)
    assert known_pixels(loaded).sum() == 7 * 9 - 2
    flow = truth.copy()
    flow[:, ~known_pixels(truth)] = 123.0  # ignored
    assert end_point_error(flow, truth) == 0.0
    flow += np.array([3.0, 4.0], dtype=np.float32)[:, None, None]
    assert end_point_error(flow, truth) == pytest.approx(5.0)


def test_flo_reader_refuses_other_files(tmp_path: Path) -> None:
    write_flo(tmp_path / "t.flo", np.zeros((2, 4, 5), np.float32))
    data = (tmp_path / "t.flo").read_bytes()
    (tmp_path / "short.flo").write_bytes(data[:-4])
    with pytest.raises(ValueError, match="needs 172 bytes, the file has 168"):
        read_flo(tmp_path / "short.flo")
    (tmp_path / "png.flo").write_bytes(b"\x89PNG" + data[4:])
    with pytest.raises(ValueError, match="not a .flo file"):
        read_flo(tmp_path / "png.flo")
    with pytest.raises(ValueError, match="no known pixel"):
        end_point_error(np.zeros((2, 2, 2)), np.full((2, 2, 2), 1e10))


@needs_rubber_whale
def test_rubberwhale_truth_reads_at_image_size() -> None:
    truth = read_flo(RUBBER_WHALE / "flow10.flo")
    assert truth.shape == (2, 388, 584)
    assert 0.005 < 1 - known_pixels(truth).mean() < 0.05  # occlusions and borders are unknown
