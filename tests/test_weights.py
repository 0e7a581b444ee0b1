"""Weights registry: entries, strict import, checked download, and the missing-file message."""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from metric_weights import metric_networks, write_metric_files

from timelapse_d import weights
from timelapse_d.errors import ConfigError
from timelapse_d.flow import flownet2
from timelapse_d.metrics import i3d, inception, lpips
from timelapse_d.segment import hrnet
from timelapse_d.weights import (
    MissingWeights,
    WeightsError,
    fetch,
    import_weights,
    list_weights,
    require,
    require_all,
    resolve_weights_dir,
)


def _files(folder: Path) -> list[str]:
    """Every entry in ``folder`` (hidden temporary files included)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def flownet2_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NVIDIA's layout with random weights, all views of one buffer (about 38 MB)."""
    shapes = flownet2.flownet2_shapes()
    base = torch.randn(max(int(np.prod(s)) for s in shapes.values()))
    state = {key: base[: int(np.prod(s))].view(s) for key, s in shapes.items()}
    path = tmp_path_factory.mktemp("nvidia") / flownet2.WEIGHTS_FILE
    torch.save({"arch": "FlowNet2", "epoch": 0, "state_dict": state}, path)
    return path


def _csail_decoder_state() -> dict[str, torch.Tensor]:
    """A random C1 decoder with the synchronized-BN buffers CSAIL's files carry."""
    state = dict(hrnet.C1Decoder().state_dict())
    for extra in hrnet.EXTRA_BN_BUFFERS:
        state[f"cbr.1.{extra}"] = torch.ones(1)
    return state


@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("csail") / hrnet.DECODER_FILE
    torch.save(_csail_decoder_state(), path)
    return path


# --- registry and directory -----------------------------------------------------------------


def test_registry_entries_are_complete() -> None:
    assert set(weights.REGISTRY) == {
        "flownet2",
        "hrnetv2_encoder",
        "hrnetv2_decoder",
        "raft_large",
        "lpips_alexnet",
        "lpips_alex_heads",
        "fid_inception",
        "fvd_i3d",
    }
    for name, spec in weights.REGISTRY.items():
        assert spec.name == name and spec.file and spec.licence and spec.purpose
        assert re.fullmatch(r"https?://\S+", spec.url)
        assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        assert callable(spec.verify)
    files = {name: spec.file for name, spec in weights.REGISTRY.items()}
    assert files["flownet2"] == flownet2.WEIGHTS_FILE
    assert files["hrnetv2_encoder"] == hrnet.ENCODER_FILE
    assert files["hrnetv2_decoder"] == hrnet.DECODER_FILE
    assert files["lpips_alexnet"] == lpips.ALEXNET_FILE
    assert files["lpips_alex_heads"] == lpips.HEADS_FILE
    assert files["fid_inception"] == inception.FID_INCEPTION_FILE
    assert files["fvd_i3d"] == i3d.I3D_FILE
    assert all(weights.REGISTRY[name].direct for name in ("lpips_alexnet", "fid_inception"))
    raft = weights.REGISTRY["raft_large"]
    assert raft.sha256 is not None and raft.file.endswith(f"-{raft.sha256[:8]}.pth")


def test_weights_dir_argument_then_environment_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_weights_dir() == tmp_path / "home" / ".cache" / "timelapse-d" / "weights"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert resolve_weights_dir() == tmp_path / "home" / ".cache" / "timelapse-d" / "weights"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_weights_dir() == tmp_path / "xdg" / "timelapse-d" / "weights"
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path / "env"))
    assert resolve_weights_dir() == tmp_path / "env"
    assert resolve_weights_dir(tmp_path / "arg") == tmp_path / "arg"


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="unknown weights 'pwc'; known: flownet2, hrnetv2"):
        require("pwc", tmp_path)


@pytest.fixture(scope="module")
def metric_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The LPIPS, FID and FVD files with random weights (tests/metric_weights.py)."""
    return write_metric_files(metric_networks(), tmp_path_factory.mktemp("metrics"))


# --- import ----------------------------------------------------------------------------------


def test_import_installs_flownet2_and_list_shows_it(flownet2_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    before = {row.name: row for row in list_weights(folder)}
    assert not before["flownet2"].installed and before["flownet2"].sha256 == "unknown"
    installed = import_weights("flownet2", flownet2_file, folder)
    assert installed == folder / flownet2.WEIGHTS_FILE
    assert _sha256(installed) == _sha256(flownet2_file)
    assert _files(folder) == [flownet2.WEIGHTS_FILE]  # no temporary file left
    rows = {row.name: row for row in list_weights(folder)}
    assert rows["flownet2"].installed and rows["flownet2"].size == flownet2_file.stat().st_size
    assert not rows["hrnetv2_encoder"].installed
    assert rows["raft_large"].sha256 == weights.REGISTRY["raft_large"].sha256
    assert require("flownet2", folder) == installed


def test_import_installs_a_csail_decoder_with_extra_buffers(
    decoder_file: Path, tmp_path: Path
) -> None:
    installed = import_weights("hrnetv2_decoder", decoder_file, tmp_path)
    assert _files(tmp_path) == [hrnet.DECODER_FILE]
    assert require("hrnetv2_decoder", tmp_path) == installed


def test_import_refuses_a_renamed_key_and_installs_nothing(
    flownet2_file: Path, tmp_path: Path
) -> None:
    payload = torch.load(flownet2_file, weights_only=True)
    state = payload["state_dict"]
    state["flownetc.conv_redirect.0.weight"] = state.pop("flownetc.conv_redir.0.weight")
    bad = tmp_path / "renamed.pth.tar"
    torch.save(payload, bad)
    folder = tmp_path / "weights"
    with pytest.raises(WeightsError, match=r"renamed\.pth\.tar.*'flownetc\.conv_redir\.0\.weight'"):
        import_weights("flownet2", bad, folder)
    assert _files(folder) == []


def test_tld_weights_import_refuses_a_reshaped_tensor_naming_it(
    flownet2_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The command itself: exit status 2, the file and the first mismatching key named."""
    from timelapse_d.cli import main

    payload = torch.load(flownet2_file, weights_only=True)
    payload["state_dict"]["flownetc.conv1.0.weight"] = torch.zeros(64, 3, 5, 5)
    bad = tmp_path / "reshaped.pth.tar"
    torch.save(payload, bad)
    folder = tmp_path / "weights"
    argv = ["tld", "weights", "import", "flownet2", str(bad), "--weights-dir", str(folder)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert f"error: refusing flownet2 from {bad}" in error
    assert "key 'flownetc.conv1.0.weight' has shape (64, 3, 5, 5), expected (64, 3, 7, 7)" in error
    assert "more problems" not in error and "nothing installed" in error
    assert _files(folder) == []


def test_import_refuses_the_wrong_network_and_installs_nothing(
    decoder_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(WeightsError, match="not a HRNetV2Encoder checkpoint: missing key"):
        import_weights("hrnetv2_encoder", decoder_file, tmp_path)
    assert _files(tmp_path) == []


def test_import_checks_a_known_checksum(
    decoder_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = replace(weights.REGISTRY["hrnetv2_decoder"], sha256="0" * 64)
    monkeypatch.setitem(weights.REGISTRY, "hrnetv2_decoder", spec)
    with pytest.raises(WeightsError, match=f"sha256 {_sha256(decoder_file)} is not the registry"):
        import_weights("hrnetv2_decoder", decoder_file, tmp_path)
    assert _files(tmp_path) == []


def test_raft_import_without_torchvision_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("torchvision", "torchvision.models.optical_flow"):
        monkeypatch.setitem(sys.modules, module, None)
    source = tmp_path / "raft.pth"
    torch.save({"w": torch.zeros(1)}, source)
    with pytest.raises(ConfigError, match="torchvision"):
        import_weights("raft_large", source, tmp_path / "weights")
    assert _files(tmp_path / "weights") == []


def test_import_installs_the_metric_networks(metric_files: dict[str, Path], tmp_path: Path) -> None:
    for name, file in (
        ("lpips_alexnet", "alexnet"),
        ("fid_inception", "inception"),
        ("fvd_i3d", "i3d"),
    ):
        installed = import_weights(name, metric_files[file], tmp_path)
        assert installed == tmp_path / metric_files[file].name
        assert _sha256(installed) == _sha256(metric_files[file])
    # a copy of the I3D file re-saved with batch norm's step counters is accepted too
    state = torch.load(metric_files["i3d"], weights_only=True)
    counters = [
        k.replace("running_var", "num_batches_tracked") for k in state if "running_var" in k
    ]
    resaved = tmp_path / "resaved.pt"
    torch.save(state | dict.fromkeys(counters, torch.tensor(3)), resaved)
    other = tmp_path / "other"
    assert import_weights("fvd_i3d", resaved, other) == other / i3d.I3D_FILE


def test_the_lpips_heads_must_be_the_published_file(
    metric_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = weights.REGISTRY["lpips_alex_heads"]
    assert spec.size == 6009 and spec.sha256 is not None
    with pytest.raises(WeightsError, match="sha256 .* is not the registry's df73285e"):
        import_weights("lpips_alex_heads", metric_files["heads"], tmp_path)
    assert _files(tmp_path) == []
    monkeypatch.setitem(weights.REGISTRY, spec.name, replace(spec, sha256=None))
    installed = import_weights("lpips_alex_heads", metric_files["heads"], tmp_path)
    assert _files(tmp_path) == [lpips.HEADS_FILE]
    assert require("lpips_alex_heads", tmp_path) == installed


@pytest.mark.parametrize(
    ("name", "file", "message"),
    [
        ("lpips_alexnet", "heads", "not a AlexNet checkpoint: missing key 'features.0.weight'"),
        ("lpips_alex_heads", "alexnet", "missing key 'lin0.model.1.weight'"),
        ("fid_inception", "i3d", "not a FIDInception checkpoint: missing key"),
        ("fvd_i3d", "inception", "not a InceptionI3d checkpoint: missing key"),
    ],
)
def test_import_refuses_another_metric_network(
    metric_files: dict[str, Path], tmp_path: Path, name: str, file: str, message: str
) -> None:
    with pytest.raises(WeightsError, match=f"refusing {name} from .*{re.escape(message)}"):
        import_weights(name, metric_files[file], tmp_path)
    assert _files(tmp_path) == []


def test_the_alexnet_classifier_is_checked_though_lpips_does_not_use_it(
    metric_files: dict[str, Path], tmp_path: Path
) -> None:
    state = torch.load(metric_files["alexnet"], weights_only=True)
    del state["classifier.6.bias"]
    cut = tmp_path / "cut.pth"
    torch.save(state, cut)
    with pytest.raises(WeightsError, match="missing key 'classifier.6.bias'"):
        import_weights("lpips_alexnet", cut, tmp_path / "weights")
    assert _files(tmp_path / "weights") == []


# --- fetch -----------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A file server on 127.0.0.1 (free port) for the test's ``served`` folder."""
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(variable, "127.0.0.1")
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_fetch_downloads_verifies_and_installs(
    server: tuple[str, Path], decoder_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = server
    (root / "mirror.pth").write_bytes(decoder_file.read_bytes())
    spec = replace(weights.REGISTRY["hrnetv2_decoder"], sha256=_sha256(decoder_file))
    monkeypatch.setitem(weights.REGISTRY, "hrnetv2_decoder", spec)
    folder = tmp_path / "weights"
    installed = fetch("hrnetv2_decoder", folder, url=f"{base}/mirror.pth")
    assert installed == folder / hrnet.DECODER_FILE
    assert _sha256(installed) == spec.sha256 and _files(folder) == [hrnet.DECODER_FILE]


def test_fetch_refuses_a_wrong_checksum_and_leaves_nothing(
    server: tuple[str, Path], decoder_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = server
    (root / hrnet.DECODER_FILE).write_bytes(decoder_file.read_bytes())
    spec = replace(weights.REGISTRY["hrnetv2_decoder"], sha256="f" * 64)
    monkeypatch.setitem(weights.REGISTRY, "hrnetv2_decoder", spec)
    folder = tmp_path / "weights"
    with pytest.raises(WeightsError, match=f"sha256 {_sha256(decoder_file)} is not the registry"):
        fetch("hrnetv2_decoder", folder, url=f"{base}/{hrnet.DECODER_FILE}")
    assert _files(folder) == []


def test_fetch_refuses_a_file_with_other_keys(
    server: tuple[str, Path], decoder_file: Path, tmp_path: Path
) -> None:
    base, root = server
    (root / "encoder.pth").write_bytes(decoder_file.read_bytes())  # a decoder posing as encoder
    folder = tmp_path / "weights"
    with pytest.raises(WeightsError, match="refusing hrnetv2_encoder from http.*missing key"):
        fetch("hrnetv2_encoder", folder, url=f"{base}/encoder.pth")
    assert _files(folder) == []


def test_fetch_network_failure_is_clear_and_leaves_nothing(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    base, _ = server
    folder = tmp_path / "weights"
    with pytest.raises(WeightsError, match=r"could not download hrnetv2_encoder .*404.*import"):
        fetch("hrnetv2_encoder", folder, url=f"{base}/gone.pth")
    assert _files(folder) == []
    with pytest.raises(WeightsError, match="not a download URL"):
        fetch("hrnetv2_encoder", folder, url="mirror/encoder.pth")


def test_fetch_without_a_direct_download_says_where_to_get_it(tmp_path: Path) -> None:
    expected = "download FlowNet2_checkpoint.pth.tar from https://drive.google.com/"
    with pytest.raises(WeightsError, match=expected):
        fetch("flownet2", tmp_path)


# --- require ---------------------------------------------------------------------------------


def test_require_names_the_missing_file_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(MissingWeights) as missing:
        require("flownet2", tmp_path)
    message = str(missing.value)
    assert str(tmp_path / "FlowNet2_checkpoint.pth.tar") in message
    assert "tld weights import flownet2 /path/to/FlowNet2_checkpoint.pth.tar" in message
    assert isinstance(missing.value, ConfigError)  # the CLI exits 2
    with pytest.raises(MissingWeights, match="tld weights fetch hrnetv2_encoder"):
        require("hrnetv2_encoder", tmp_path)
    with pytest.raises(MissingWeights, match="nowhere.pth: no such weight file for flownet2"):
        require("flownet2", tmp_path, path=tmp_path / "nowhere.pth")


def test_require_prefers_an_explicit_path(decoder_file: Path, tmp_path: Path) -> None:
    assert require("hrnetv2_decoder", tmp_path, path=decoder_file) == decoder_file


def test_require_all_names_every_missing_file_at_once(decoder_file: Path, tmp_path: Path) -> None:
    users = {"hrnetv2_encoder": "masks", "hrnetv2_decoder": "masks", "flownet2": "flow"}
    with pytest.raises(MissingWeights) as missing:
        require_all(users, tmp_path, hint="or use --masks truth")
    lines = str(missing.value).splitlines()
    assert lines[0] == "3 weight file(s) not installed:"
    assert lines[1].startswith(
        f"  {tmp_path / hrnet.ENCODER_FILE} (hrnetv2_encoder, for masks): run: tld weights fetch"
    )
    assert "FlowNet2_checkpoint.pth.tar (flownet2, for flow): download" in lines[3]
    assert lines[4] == "or use --masks truth"
    import_weights("hrnetv2_decoder", decoder_file, tmp_path)
    with pytest.raises(MissingWeights) as missing:
        require_all(users, tmp_path)
    assert str(missing.value).startswith("2 weight file(s)") and "decoder" not in str(missing.value)
    users.pop("hrnetv2_encoder"), users.pop("flownet2")
    assert require_all(users, tmp_path) == {"hrnetv2_decoder": tmp_path / hrnet.DECODER_FILE}
    with pytest.raises(WeightsError, match="unknown weights 'pwc'"):
        require_all({"pwc": "flow"}, tmp_path)
