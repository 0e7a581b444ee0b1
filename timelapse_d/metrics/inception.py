"""The Inception-v3 of FID (TensorFlow's 2015-12-05 graph, as ported for PyTorch), in plain
PyTorch.

Module names follow ``pt_inception-2015-12-05-6726825d.pth`` (a plain state dict supplied by the
user, loaded strictly): torchvision's Inception-v3 layout without the auxiliary classifier and
with a 1008-way ``fc`` (kept for the strict load, unused). The forward pass follows the
TensorFlow graph where it differs from torchvision's: the pool branch of the 35x35, 17x17 and
first 8x8 mixed blocks averages without counting the zero padding, and that of the last 8x8
block max-pools. Features are the 2048-d global average of the last block (pool3) for images
resized bilinearly to 299x299 and scaled to [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timelapse_d.checkpoints import load_strict, read_state_dict

FID_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INPUT_SIZE = 299
FEATURES = 2048
CLASSES = 1008
BN_EPS = 1e-3

Kernel = int | tuple[int, int]


class ConvBN(nn.Module):
    """Bias-free convolution, batch norm, ReLU; zero padding keeps the size at stride 1 when
    ``same``."""

    def __init__(
        self, cin: int, cout: int, kernel: Kernel, stride: int = 1, same: bool = True
    ) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        padding = (kh // 2, kw // 2) if same else (0, 0)
        self.conv = nn.Conv2d(cin, cout, (kh, kw), stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: Tensor) -> Tensor:
    """3x3 stride-1 average that ignores the padding, as TensorFlow's 'SAME' pooling does."""
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


def _reduce_pool(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 3, 2)


class MixedA(nn.Module):
    """35x35 block: 1x1 | 1x1, 5x5 | 1x1, 3x3, 3x3 | pool, 1x1 (``pool_features``)."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 64, 1)
        self.branch5x5_1 = ConvBN(cin, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3)
        self.branch_pool = ConvBN(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        wide = self.branch5x5_2(self.branch5x5_1(x))
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = self.branch_pool(_avg_pool(x))
        return torch.cat([self.branch1x1(x), wide, deep, pooled], 1)


class ReductionB(nn.Module):
    """35x35 -> 17x17: 3x3/2 | 1x1, 3x3, 3x3/2 | max-pool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(cin, 384, 3, 2, same=False)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, 2, same=False)

    def forward(self, x: Tensor) -> Tensor:
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), deep, _reduce_pool(x)], 1)


class MixedC(nn.Module):
    """17x17 block with factorised 7x7 convolutions of ``mid`` channels."""

    def __init__(self, cin: int, mid: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 192, 1)
        self.branch7x7_1 = ConvBN(cin, mid, 1)
        self.branch7x7_2 = ConvBN(mid, mid, (1, 7))
        self.branch7x7_3 = ConvBN(mid, 192, (7, 1))
        self.branch7x7dbl_1 = ConvBN(cin, mid, 1)
        self.branch7x7dbl_2 = ConvBN(mid, mid, (7, 1))
        self.branch7x7dbl_3 = ConvBN(mid, mid, (1, 7))
        self.branch7x7dbl_4 = ConvBN(mid, mid, (7, 1))
        self.branch7x7dbl_5 = ConvBN(mid, 192, (1, 7))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        wide = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        deep = self.branch7x7dbl_1(x)
        for layer in (
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            deep = layer(deep)
        pooled = self.branch_pool(_avg_pool(x))
        return torch.cat([self.branch1x1(x), wide, deep, pooled], 1)


class ReductionD(nn.Module):
    """17x17 -> 8x8: 1x1, 3x3/2 | 1x1, 1x7, 7x1, 3x3/2 | max-pool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, 2, same=False)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, 2, same=False)

    def forward(self, x: Tensor) -> Tensor:
        short = self.branch3x3_2(self.branch3x3_1(x))
        deep = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            deep = layer(deep)
        return torch.cat([short, deep, _reduce_pool(x)], 1)


class MixedE(nn.Module):
    """8x8 block whose 3x3 branches split into parallel 1x3 and 3x1 convolutions; the pool
    branch averages (``max_pool`` False) or max-pools (the graph's last block)."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBN(cin, 320, 1)
        self.branch3x3_1 = ConvBN(cin, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1))
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        short = self.branch3x3_1(x)
        deep = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, 1, 1) if self.max_pool else _avg_pool(x)
        parts = [
            self.branch1x1(x),
            self.branch3x3_2a(short),
            self.branch3x3_2b(short),
            self.branch3x3dbl_3a(deep),
            self.branch3x3dbl_3b(deep),
            self.branch_pool(pooled),
        ]
        return torch.cat(parts, 1)


class FIDInception(nn.Module):
    """Inception-v3 of FID: (N,3,H,W) images in [-1, 1] -> (N,2048) pool3 features."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, 2, same=False)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3, same=False)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3, same=False)
        self.Mixed_5b = MixedA(192, 32)
        self.Mixed_5c = MixedA(256, 64)
        self.Mixed_5d = MixedA(288, 64)
        self.Mixed_6a = ReductionB(288)
        self.Mixed_6b = MixedC(768, 128)
        self.Mixed_6c = MixedC(768, 160)
        self.Mixed_6d = MixedC(768, 160)
        self.Mixed_6e = MixedC(768, 192)
        self.Mixed_7a = ReductionD(768)
        self.Mixed_7b = MixedE(1280, max_pool=False)
        self.Mixed_7c = MixedE(FEATURES, max_pool=True)
        self.fc = nn.Linear(FEATURES, CLASSES)  # the classifier: in the file, not used here

    def forward(self, images: Tensor) -> Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(images)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(_reduce_pool(x)))
        x = _reduce_pool(x)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        return x.mean(dim=(2, 3))


def load_fid_inception(path: Path | str, device: str | torch.device = "cpu") -> FIDInception:
    """A :class:`FIDInception` in eval mode on ``device``, its file loaded strictly."""
    with torch.device("meta"):  # no random initialisation: the strict load assigns every entry
        model = FIDInception()
    load_strict(model, read_state_dict(path), path)
    return model.to(device).eval()


@torch.inference_mode()
def inception_features(model: FIDInception, images: Tensor) -> Tensor:
    """Pool3 features (N,2048 float32, on the CPU) of an N,3,H,W batch: uint8 in [0, 255] or
    float in [-1, 1], resized bilinearly to 299x299 unless already that size."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected N,3,H,W images, got shape {tuple(images.shape)}")
    x = images.to(next(model.parameters()).device)
    x = x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float()
    if tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return model(x).float().cpu()
