"""Random-weight LPIPS, FID Inception and I3D networks, saved in the published files' layouts
under the published names (no real weights in the tests)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from timelapse_d.metrics.i3d import I3D_FILE, InceptionI3d
from timelapse_d.metrics.inception import FID_INCEPTION_FILE, FIDInception
from timelapse_d.metrics.lpips import ALEXNET_CLASSIFIER, ALEXNET_FILE, HEADS_FILE, LPIPS


def randomize(module: nn.Module) -> nn.Module:
    """Weights that keep activations of order one, and non-trivial batch-norm statistics."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            leaf = name.rpartition(".")[2]
            if leaf == "weight" and tensor.ndim > 1:
                nn.init.kaiming_normal_(tensor, nonlinearity="relu")
            elif leaf in ("weight", "running_var"):
                tensor.uniform_(0.8, 1.2)
            elif leaf in ("bias", "running_mean"):
                tensor.uniform_(-0.1, 0.1)
    return module.eval()


def metric_networks(seed: int = 0) -> dict[str, nn.Module]:
    """``lpips``, ``inception`` and ``i3d`` with random weights; the LPIPS heads non-negative,
    as trained ones are, which makes LPIPS a distance."""
    torch.manual_seed(seed)
    lpips = randomize(LPIPS())
    with torch.no_grad():
        for weight in lpips.heads.parameters():
            weight.abs_()
    return {
        "lpips": lpips,
        "inception": randomize(FIDInception()),
        "i3d": randomize(InceptionI3d()),
    }


def write_metric_files(networks: dict[str, nn.Module], folder: Path) -> dict[str, Path]:
    """The four files of ``networks`` in ``folder``: ``alexnet``, ``heads``, ``inception`` and
    ``i3d`` -> path, each with exactly the published keys and shapes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "alexnet": folder / ALEXNET_FILE,
        "heads": folder / HEADS_FILE,
        "inception": folder / FID_INCEPTION_FILE,
        "i3d": folder / I3D_FILE,
    }
    lpips = networks["lpips"]
    # the classifier is checked, not loaded: zero-stride tensors keep the file small
    classifier = {key: torch.zeros(1).expand(shape) for key, shape in ALEXNET_CLASSIFIER.items()}
    torch.save({**lpips.alexnet.state_dict(), **classifier}, paths["alexnet"])
    torch.save(lpips.heads.state_dict(), paths["heads"])
    torch.save(networks["inception"].state_dict(), paths["inception"])
    # the published I3D file predates zip serialisation and batch norm's step counter
    torch.save(networks["i3d"].state_dict(), paths["i3d"], _use_new_zipfile_serialization=False)
    return paths
