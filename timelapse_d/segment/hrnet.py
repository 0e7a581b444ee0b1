"""HRNetV2-W48 encoder and C1 decoder for ADE20K-150 scene parsing, in plain PyTorch.

Module names, and so state-dict keys, follow the CSAIL ``semantic-segmentation-pytorch``
checkpoints ``encoder_epoch_30.pth`` and ``decoder_epoch_30.pth`` (plain state dicts, weights
supplied by the user), which load strictly once their synchronized-batch-norm buffers are
dropped. The encoder keeps four parallel branches (1/4 .. 1/32 resolution, 48/96/192/384
channels) and returns them concatenated at 1/4 resolution (720 channels); the C1 decoder maps
those to 150 class logits (3x3 conv 720->180 + BN + ReLU, then a 1x1 conv with bias).
Inference is single-scale at the size given; the class map is the argmax of the logits
upsampled bilinearly to that size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from timelapse_d.checkpoints import load_strict, read_state_dict
from timelapse_d.segment.groups import NUM_CLASSES

ENCODER_FILE = "encoder_epoch_30.pth"
DECODER_FILE = "decoder_epoch_30.pth"
STEM_CHANNELS = 64
BOTTLENECK_EXPANSION = 4
BRANCH_WIDTHS = (48, 96, 192, 384)  # W48; each branch has half the resolution of the previous
BLOCKS_PER_BRANCH = 4
ENCODER_CHANNELS = sum(BRANCH_WIDTHS)  # 720
EXTRA_BN_BUFFERS = ("_tmp_running_mean", "_tmp_running_var", "_running_iter")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv_bn(
    cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = False
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize (half-pixel centres) of an N,C,H,W tensor; a no-op at the same size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut: the unit of every branch."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a projected shortcut when widths differ."""

    def __init__(self, cin: int, planes: int) -> None:
        super().__init__()
        cout = planes * BOTTLENECK_EXPANSION
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = _conv_bn(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.downsample(x) + self.bn3(self.conv3(out)))


def _fuse_layer(widths: Sequence[int], src: int, dst: int) -> nn.Module:
    """Brings branch ``src`` to the width (and, with stride-2 convs, the scale) of ``dst``."""
    if src == dst:
        return nn.Identity()
    if src > dst:  # 1x1 conv here, bilinear upsampling in the forward pass
        return _conv_bn(widths[src], widths[dst], 1)
    steps = [_conv_bn(widths[src], widths[src], 3, 2, relu=True) for _ in range(dst - src - 1)]
    return nn.Sequential(*steps, _conv_bn(widths[src], widths[dst], 3, 2))


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks, then each branch's output summed into every other."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(w) for _ in range(BLOCKS_PER_BRANCH))) for w in widths
        )
        n = len(widths)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse_layer(widths, src, dst) for src in range(n)) for dst in range(n)
        )

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        fused = []
        for dst, row in enumerate(self.fuse_layers):
            assert isinstance(row, nn.ModuleList)  # one layer per source branch
            size = xs[dst].shape[-2:]
            terms = [_resize(layer(x), size) for layer, x in zip(row, xs, strict=True)]
            fused.append(F.relu(sum(terms[1:], terms[0])))
        return fused


def _transition(prev: Sequence[int], widths: Sequence[int]) -> nn.ModuleList:
    """Adapts the previous stage's branches to ``widths``; the one new branch halves the last."""
    layers: list[nn.Module] = [
        nn.Identity() if p == w else _conv_bn(p, w, 3, relu=True)
        for p, w in zip(prev, widths, strict=False)
    ]
    layers.append(nn.Sequential(_conv_bn(prev[-1], widths[-1], 3, 2, relu=True)))
    return nn.ModuleList(layers)


def _stage(widths: Sequence[int], modules: int) -> nn.Sequential:
    return nn.Sequential(*(HighResolutionModule(widths) for _ in range(modules)))


class HRNetV2Encoder(nn.Module):
    """HRNetV2-W48: (N,3,H,W) normalised RGB -> (N,720,ceil(H/4),ceil(W/4)) features."""

    def __init__(self) -> None:
        super().__init__()
        w = BRANCH_WIDTHS
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(STEM_CHANNELS)
        layer1_width = STEM_CHANNELS * BOTTLENECK_EXPANSION
        self.layer1 = nn.Sequential(
            Bottleneck(STEM_CHANNELS, STEM_CHANNELS),
            *(Bottleneck(layer1_width, STEM_CHANNELS) for _ in range(3)),
        )
        self.transition1 = _transition((layer1_width,), w[:2])
        self.stage2 = _stage(w[:2], 1)
        self.transition2 = _transition(w[:2], w[:3])
        self.stage3 = _stage(w[:3], 4)
        self.transition3 = _transition(w[:3], w)
        self.stage4 = _stage(w, 3)

    def forward(self, images: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(images)))
        x = F.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for transition, stage in (
            (self.transition1, self.stage2),
            (self.transition2, self.stage3),
            (self.transition3, self.stage4),
        ):
            inputs = [*xs, xs[-1]]  # the new, lower-resolution branch starts from the last one
            xs = stage([layer(x) for layer, x in zip(transition, inputs, strict=True)])
        size = xs[0].shape[-2:]
        return torch.cat([_resize(x, size) for x in xs], dim=1)


class C1Decoder(nn.Module):
    """CSAIL C1 head: 3x3 conv-BN-ReLU to a quarter of the width, then 1x1 conv to class logits."""

    def __init__(self, channels: int = ENCODER_CHANNELS, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.cbr = _conv_bn(channels, channels // 4, 3, relu=True)
        self.conv_last = nn.Conv2d(channels // 4, num_classes, 1)

    def forward(self, features: Tensor) -> Tensor:
        return self.conv_last(self.cbr(features))


class Segmenter(nn.Module):
    """Encoder + decoder: (N,3,H,W) RGB in [0,1] -> (N,150,H,W) class logits."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = HRNetV2Encoder()
        self.decoder = C1Decoder()

    @staticmethod
    def normalize(images: Tensor) -> Tensor:
        """RGB in [0,1] -> the encoder's input (ImageNet mean and std per channel)."""
        mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (images - mean) / std

    def forward(self, images: Tensor) -> Tensor:
        logits = self.decoder(self.encoder(self.normalize(images)))
        return _resize(logits, images.shape[-2:])


def load_segmenter(
    encoder_path: Path | str, decoder_path: Path | str, device: str | torch.device = "cpu"
) -> Segmenter:
    """A :class:`Segmenter` in eval mode on ``device``, with both checkpoints loaded strictly."""
    with torch.device("meta"):  # no random initialisation: the strict load assigns every entry
        model = Segmenter()
    _load_strict(model.decoder, Path(decoder_path))  # the small file first: mistakes fail fast
    _load_strict(model.encoder, Path(encoder_path))
    return model.to(device).eval()


def is_extra_bn_buffer(key: str) -> bool:
    """True for the synchronized-batch-norm bookkeeping buffers CSAIL checkpoints carry."""
    return key.rpartition(".")[2] in EXTRA_BN_BUFFERS


def _load_strict(module: nn.Module, path: Path) -> None:
    state = read_state_dict(path, drop=is_extra_bn_buffer)
    load_strict(module, state, path)


@torch.inference_mode()
def segment(model: Segmenter, images: np.ndarray) -> np.ndarray:
    """ADE20K class map (N,H,W uint8, ids 0..149) of a uint8 RGB batch (N,H,W,3) of any size.

    Runs on the model's device under whatever autocast context the caller has entered.
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB images (N,H,W,3), got {images.dtype} {images.shape}")
    batch = torch.tensor(images, device=next(model.parameters()).device)
    logits = model(batch.permute(0, 3, 1, 2).float() / 255.0)
    return logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
