"""Inception-I3D (RGB, 400 Kinetics classes), the video network of FVD, in plain PyTorch.

Module names follow ``rgb_imagenet.pt`` (the ImageNet-inflated, Kinetics-trained RGB model
converted from the DeepMind release for PyTorch; a plain state dict supplied by the user, loaded
strictly). That file predates batch norm's step counter; a copy re-saved with
``num_batches_tracked`` entries loads too, those counters being ignored. Every convolution and
max-pool pads like TensorFlow's 'SAME' (the extra pixel after, not before, when the padding is
odd); zero padding before a max-pool equals TensorFlow's since its inputs follow a ReLU.
Features are the 1024-d average of the last mixed block over time and space (the published
2x7x7 average pool for 16 frames at 224x224) for frames resized bilinearly to 224x224, RGB in
[-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timelapse_d.checkpoints import load_strict, read_state_dict

I3D_FILE = "rgb_imagenet.pt"
INPUT_SIZE = 224
FEATURES = 1024
CLASSES = 400
BN_EPS = 1e-3
BN_COUNTER = "num_batches_tracked"
Triple = tuple[int, int, int]

# name: (input channels, widths of b0, b1a, b1b, b2a, b2b, b3b), in network order
MIXED: dict[str, tuple[int, tuple[int, int, int, int, int, int]]] = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}
TRUNK = (  # the order of the forward pass
    "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
    "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3",
    "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "MaxPool3d_5a_2x2",
    "Mixed_5b", "Mixed_5c",
)  # fmt: skip


def is_bn_counter(key: str) -> bool:
    """True for batch norm's step counter, which some copies of the file carry."""
    return key.rpartition(".")[2] == BN_COUNTER


def _same_padding(x: Tensor, kernel: Triple, stride: Triple) -> Tensor:
    """Zero-pad the T,H,W axes of an N,C,T,H,W tensor as TensorFlow's 'SAME' does."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride), strict=True):
        total = max(k - (size % s or s), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class FrozenBatchNorm3d(nn.Module):
    """Batch norm with fixed statistics (inference only, no step counter)."""

    running_mean: Tensor
    running_var: Tensor

    def __init__(self, channels: int, eps: float = BN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )


class Unit3D(nn.Module):
    """'SAME'-padded 3D convolution, then batch norm and ReLU (or a biased linear output)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: Triple = (1, 1, 1),
        stride: Triple = (1, 1, 1),
        output: bool = False,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.output = kernel, stride, output
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride, bias=output)
        if not output:
            self.bn = FrozenBatchNorm3d(cout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(_same_padding(x, self.kernel, self.stride))
        return x if self.output else F.relu(self.bn(x))


class MaxPool3dSame(nn.Module):
    """'SAME'-padded 3D max-pool."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(_same_padding(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """1x1 | 1x1, 3x3x3 | 1x1, 3x3x3 | 3x3x3 max-pool, 1x1; concatenated along channels."""

    def __init__(self, cin: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(cin, w0)
        self.b1a = Unit3D(cin, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(cin, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, w3b)

    def forward(self, x: Tensor) -> Tensor:
        parts = [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))]
        return torch.cat(parts, 1)


class InceptionI3d(nn.Module):
    """I3D trunk: (N,3,T,H,W) RGB in [-1, 1] -> (N,1024) features averaged over T,H,W."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        for name, (cin, widths) in MIXED.items():
            self.add_module(name, InceptionModule(cin, widths))
        # the Kinetics classifier: in the file, not used for features
        self.logits = Unit3D(FEATURES, CLASSES, output=True)

    def forward(self, videos: Tensor) -> Tensor:
        x = videos
        for name in TRUNK:
            x = self.get_submodule(name)(x)
        return x.mean(dim=(2, 3, 4))


def load_i3d(path: Path | str, device: str | torch.device = "cpu") -> InceptionI3d:
    """An :class:`InceptionI3d` in eval mode on ``device``, its file loaded strictly (batch
    norm step counters, when present, are ignored)."""
    with torch.device("meta"):  # no random initialisation: the strict load assigns every entry
        model = InceptionI3d()
    load_strict(model, read_state_dict(path, drop=is_bn_counter), path)
    return model.to(device).eval()


@torch.inference_mode()
def i3d_features(model: InceptionI3d, videos: Tensor) -> Tensor:
    """Features (N,1024 float32, on the CPU) of N,T,3,H,W float videos in [-1, 1], every frame
    resized bilinearly to 224x224 unless already that size."""
    if videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(f"expected N,T,3,H,W videos, got shape {tuple(videos.shape)}")
    n, t = videos.shape[:2]
    x = videos.to(next(model.parameters()).device).float().flatten(0, 1)
    if tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    x = x.unflatten(0, (n, t)).transpose(1, 2)  # N,3,T,H,W
    return model(x).float().cpu()
