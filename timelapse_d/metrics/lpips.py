"""LPIPS v0.1 with the AlexNet trunk: a learned perceptual distance between images, in plain
PyTorch.

Two user-supplied files, loaded strictly: torchvision's ImageNet AlexNet
(``alexnet-owt-7be5be79.pth``; its five convolutions ``features.{0,3,6,8,10}`` are used, and its
classifier keys must be present with their published shapes but are not loaded) and the LPIPS
linear heads (``alex.pth`` of v0.1: ``lin{0..4}.model.1.weight``, one bias-free 1x1 convolution
per compared layer). The distance: each image is shifted and scaled per channel by LPIPS's
constants, the output of every ReLU after a convolution is unit-normalised along channels, the
squared difference of the two images' normalised features is weighted by the head, averaged
over space, and the five layers are summed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from timelapse_d.checkpoints import (
    check_state_dict,
    load_strict,
    read_state_dict,
    state_dict_shapes,
)

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
HEADS_FILE = "alex.pth"
SHIFT = (-0.030, -0.088, -0.188)  # LPIPS's input scaling, applied to images in [-1, 1]
SCALE = (0.458, 0.448, 0.450)
CHANNELS = (64, 192, 384, 256, 256)  # of the five compared layers
TAPS = (1, 4, 7, 9, 11)  # indices in ``features`` of the ReLUs whose outputs are compared
NORM_EPS = 1e-10
# The classifier of the published AlexNet file: checked, not loaded.
ALEXNET_CLASSIFIER = {
    "classifier.1.weight": (4096, 9216),
    "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096),
    "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096),
    "classifier.6.bias": (1000,),
}


class AlexNetFeatures(nn.Module):
    """The convolutional part of torchvision's AlexNet (without its last max-pool)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        """The five compared activations of an N,3,H,W batch."""
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in TAPS:
                taps.append(x)
        return taps


def _heads() -> nn.ModuleDict:
    """``lin0`` .. ``lin4``; index 0 of each ``model`` was a dropout while LPIPS was trained."""
    return nn.ModuleDict(
        {
            f"lin{i}": nn.ModuleDict(
                {"model": nn.Sequential(nn.Identity(), nn.Conv2d(c, 1, 1, bias=False))}
            )
            for i, c in enumerate(CHANNELS)
        }
    )


def _unit(x: Tensor) -> Tensor:
    """Features divided by their norm along channels."""
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + NORM_EPS)


class LPIPS(nn.Module):
    """AlexNet trunk + linear heads: two N,3,H,W batches in [-1, 1] -> N distances."""

    def __init__(self) -> None:
        super().__init__()
        self.alexnet = AlexNetFeatures()
        self.heads = _heads()

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        shift = a.new_tensor(SHIFT).view(1, 3, 1, 1)
        scale = a.new_tensor(SCALE).view(1, 3, 1, 1)
        taps = self.alexnet((torch.cat([a, b]) - shift) / scale)
        total = a.new_zeros(a.shape[0])
        for index, features in enumerate(taps):
            fa, fb = features.chunk(2)
            weighted = self.heads.get_submodule(f"lin{index}.model")((_unit(fa) - _unit(fb)) ** 2)
            total = total + weighted.mean(dim=(1, 2, 3))
        return total


def alexnet_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the published AlexNet file (features and classifier), without
    allocating."""
    with torch.device("meta"):
        features = AlexNetFeatures()
    return {**state_dict_shapes(features), **ALEXNET_CLASSIFIER}


def heads_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the LPIPS v0.1 AlexNet heads file, without allocating."""
    with torch.device("meta"):
        return state_dict_shapes(_heads())


def read_alexnet(path: Path | str) -> dict[str, torch.Tensor]:
    """The ``features.*`` tensors of an AlexNet file whose every key and shape match the
    published one (CheckpointError naming the first mismatch otherwise)."""
    state = read_state_dict(path)
    check_state_dict(alexnet_shapes(), state, path, "AlexNet")
    return {key: value for key, value in state.items() if key not in ALEXNET_CLASSIFIER}


def read_heads(path: Path | str) -> dict[str, torch.Tensor]:
    """The tensors of an LPIPS AlexNet heads file that matches the published one exactly."""
    state = read_state_dict(path)
    check_state_dict(heads_shapes(), state, path, "LPIPS AlexNet heads")
    return state


def load_lpips(
    alexnet_path: Path | str, heads_path: Path | str, device: str | torch.device = "cpu"
) -> LPIPS:
    """An :class:`LPIPS` in eval mode on ``device``, with both files loaded strictly."""
    with torch.device("meta"):  # no random initialisation: the strict load assigns every entry
        model = LPIPS()
    load_strict(model.heads, read_heads(heads_path), heads_path)  # the small file first
    load_strict(model.alexnet, read_alexnet(alexnet_path), alexnet_path)
    return model.to(device).eval()


@torch.inference_mode()
def lpips_distance(model: LPIPS, a: Tensor, b: Tensor) -> Tensor:
    """LPIPS between matching images of two N,3,H,W float batches in [-1, 1] (H, W >= 32):
    N distances (float32, on the CPU), 0 for identical images."""
    if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
        raise ValueError(f"expected two N,3,H,W batches of one shape, got {a.shape}, {b.shape}")
    if min(a.shape[-2:]) < 32:
        raise ValueError(f"images must be at least 32x32 for AlexNet, got {tuple(a.shape[-2:])}")
    device = next(model.parameters()).device
    return model(a.to(device).float(), b.to(device).float()).float().cpu()
