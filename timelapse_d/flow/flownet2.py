"""FlowNet 2.0 in plain PyTorch, loading NVIDIA's converted checkpoint strictly.

Layer names and shapes follow NVIDIA's ``FlowNet2_checkpoint.pth.tar`` (220 tensors,
162,518,834 parameters). The stack: FlowNetC, then two FlowNetS refining the flow given the
second frame warped by it, FlowNetSD for small displacements, and a fusion network merging the
last two. Only inference outputs are computed (the finest flow of each sub-network).

Flow convention: channels (u, v) in pixels with ``im1(p) ~= im2(p + flow(p))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from timelapse_d.checkpoints import load_strict, read_state_dict, state_dict_shapes
from timelapse_d.flow.ops import channel_norm, correlation, resample2d

WEIGHTS_FILE = "FlowNet2_checkpoint.pth.tar"
PARAMETER_COUNT = 162_518_834
SIZE_MULTIPLE = 64  # input height and width must be multiples of this

# Conv specs (name, in, out, kernel, stride) of the encoder stages shared by C, S and SD.
_DEEP_ENCODER = (
    ("conv4", 256, 512, 3, 2),
    ("conv4_1", 512, 512, 3, 1),
    ("conv5", 512, 512, 3, 2),
    ("conv5_1", 512, 512, 3, 1),
    ("conv6", 512, 1024, 3, 2),
    ("conv6_1", 1024, 1024, 3, 1),
)
# Decoder levels (level, skip channels, deconv channels) below level 6 for C, S and SD.
_DEEP_DECODER = ((5, 512, 512), (4, 512, 256), (3, 256, 128), (2, 128, 64))


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2),
        nn.LeakyReLU(0.1),
    )


class _FlowNetBase(nn.Module):
    """Convolution stack plus FlowNet's coarse-to-fine decoder.

    At each decoder level L the features of level L+1 are deconvolved, concatenated with the
    encoder's level-L skip features and the upsampled coarser flow, and a flow is predicted
    (optionally after an intermediate convolution, as in FlowNetSD and the fusion network).
    """

    if TYPE_CHECKING:
        # Layers are added by name (the checkpoint's names) and read back as attributes.
        def __getattr__(self, name: str) -> nn.Module: ...

    def _add_convs(self, specs: Sequence[tuple[str, int, int, int, int]]) -> None:
        for name, cin, cout, kernel, stride in specs:
            self.add_module(name, _conv(cin, cout, kernel, stride))

    def _add_decoder(
        self,
        top: int,
        top_channels: int,
        levels: Sequence[tuple[int, int, int]],
        inter: bool,
        up_bias: bool,
    ) -> None:
        self._top, self._levels, self._inter = top, [lv for lv, _, _ in levels], inter
        self.add_module(f"predict_flow{top}", nn.Conv2d(top_channels, 2, 3, 1, 1))
        x_channels = top_channels
        for level, skip, out in levels:
            deconv = nn.ConvTranspose2d(x_channels, out, 4, 2, 1)
            self.add_module(f"deconv{level}", nn.Sequential(deconv, nn.LeakyReLU(0.1)))
            upsample = nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=up_bias)
            self.add_module(f"upsampled_flow{level + 1}_to_{level}", upsample)
            x_channels = skip + out + 2
            if inter:
                inter_conv = nn.Conv2d(x_channels, out, 3, 1, 1)
                self.add_module(f"inter_conv{level}", nn.Sequential(inter_conv))
            head_channels = out if inter else x_channels
            self.add_module(f"predict_flow{level}", nn.Conv2d(head_channels, 2, 3, 1, 1))

    def _decode(self, top: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        """Finest flow from the top features and the skips (one per level, coarse to fine)."""
        x = top
        flow = getattr(self, f"predict_flow{self._top}")(x)
        for level, skip in zip(self._levels, skips, strict=True):
            up = getattr(self, f"upsampled_flow{level + 1}_to_{level}")(flow)
            x = torch.cat((skip, getattr(self, f"deconv{level}")(x), up), dim=1)
            head = getattr(self, f"inter_conv{level}")(x) if self._inter else x
            flow = getattr(self, f"predict_flow{level}")(head)
        return flow


class FlowNetC(_FlowNetBase):
    """Correlation network on two normalized frames (N, 6, H, W); flow at 1/4 size / div_flow."""

    def __init__(self) -> None:
        super().__init__()
        self._add_convs(
            (
                ("conv1", 3, 64, 7, 2),
                ("conv2", 64, 128, 5, 2),
                ("conv3", 128, 256, 5, 2),
                ("conv_redir", 256, 32, 1, 1),
                ("conv3_1", 473, 256, 3, 1),
                *_DEEP_ENCODER,
            )
        )
        self._add_decoder(6, 1024, _DEEP_DECODER, inter=False, up_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv2a, conv2b = (self.conv2(self.conv1(im)) for im in x.split(3, dim=1))
        conv3a, conv3b = self.conv3(conv2a), self.conv3(conv2b)
        with torch.autocast(conv3a.device.type, enabled=False):  # fp32, as the original layer
            corr = correlation(conv3a.float(), conv3b.float())
        corr = F.leaky_relu(corr.to(conv3a.dtype), 0.1)
        conv3 = self.conv3_1(torch.cat((self.conv_redir(conv3a), corr), dim=1))
        conv4 = self.conv4_1(self.conv4(conv3))
        conv5 = self.conv5_1(self.conv5(conv4))
        conv6 = self.conv6_1(self.conv6(conv5))
        return self._decode(conv6, (conv5, conv4, conv3, conv2a))


class FlowNetS(_FlowNetBase):
    """Plain stacked-input network (FlowNet2 feeds it 12 channels); flow at 1/4 size / div_flow."""

    def __init__(self, in_channels: int = 12) -> None:
        super().__init__()
        self._add_convs(
            (
                ("conv1", in_channels, 64, 7, 2),
                ("conv2", 64, 128, 5, 2),
                ("conv3", 128, 256, 5, 2),
                ("conv3_1", 256, 256, 3, 1),
                *_DEEP_ENCODER,
            )
        )
        self._add_decoder(6, 1024, _DEEP_DECODER, inter=False, up_bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv2 = self.conv2(self.conv1(x))
        conv3 = self.conv3_1(self.conv3(conv2))
        conv4 = self.conv4_1(self.conv4(conv3))
        conv5 = self.conv5_1(self.conv5(conv4))
        conv6 = self.conv6_1(self.conv6(conv5))
        return self._decode(conv6, (conv5, conv4, conv3, conv2))


class FlowNetSD(_FlowNetBase):
    """Small-displacement network on two normalized frames (N, 6, H, W); flow at 1/4 size."""

    def __init__(self) -> None:
        super().__init__()
        self._add_convs(
            (
                ("conv0", 6, 64, 3, 1),
                ("conv1", 64, 64, 3, 2),
                ("conv1_1", 64, 128, 3, 1),
                ("conv2", 128, 128, 3, 2),
                ("conv2_1", 128, 128, 3, 1),
                ("conv3", 128, 256, 3, 2),
                ("conv3_1", 256, 256, 3, 1),
                *_DEEP_ENCODER,
            )
        )
        self._add_decoder(6, 1024, _DEEP_DECODER, inter=True, up_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv2 = self.conv2_1(self.conv2(self.conv1_1(self.conv1(self.conv0(x)))))
        conv3 = self.conv3_1(self.conv3(conv2))
        conv4 = self.conv4_1(self.conv4(conv3))
        conv5 = self.conv5_1(self.conv5(conv4))
        conv6 = self.conv6_1(self.conv6(conv5))
        return self._decode(conv6, (conv5, conv4, conv3, conv2))


class FlowNetFusion(_FlowNetBase):
    """Fuses the SD and stacked flows (11 input channels) into full-resolution flow in pixels."""

    def __init__(self) -> None:
        super().__init__()
        self._add_convs(
            (
                ("conv0", 11, 64, 3, 1),
                ("conv1", 64, 64, 3, 2),
                ("conv1_1", 64, 128, 3, 1),
                ("conv2", 128, 128, 3, 2),
                ("conv2_1", 128, 128, 3, 1),
            )
        )
        self._add_decoder(2, 128, ((1, 128, 32), (0, 64, 16)), inter=True, up_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv0 = self.conv0(x)
        conv1 = self.conv1_1(self.conv1(conv0))
        conv2 = self.conv2_1(self.conv2(conv1))
        return self._decode(conv2, (conv1, conv0))


class FlowNet2(nn.Module):
    """The full FlowNet 2.0 stack (NVIDIA's layout and pre/post-processing).

    ``forward(im1, im2)`` takes float RGB frames in 0..255, (N, 3, H, W) with H and W multiples
    of 64, and returns the flow (N, 2, H, W) in pixels, ``im1(p) ~= im2(p + flow(p))``.
    """

    def __init__(self, rgb_max: float = 255.0, div_flow: float = 20.0) -> None:
        super().__init__()
        self.rgb_max, self.div_flow = rgb_max, div_flow
        self.flownetc = FlowNetC()
        self.flownets_1 = FlowNetS()
        self.flownets_2 = FlowNetS()
        self.flownets_d = FlowNetSD()
        self.flownetfusion = FlowNetFusion()

    def _refine_input(self, x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """FlowNetS input: both frames, frame 2 warped by ``flow``, scaled flow, error norm."""
        warped = resample2d(x[:, 3:], flow)
        error = channel_norm(x[:, :3] - warped)
        return torch.cat((x, warped, flow / self.div_flow, error), dim=1)

    def forward(self, im1: torch.Tensor, im2: torch.Tensor) -> torch.Tensor:
        h, w = im1.shape[-2:]
        if im1.shape != im2.shape or h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(
                f"FlowNet2 needs two equal (N, 3, H, W) frames with H, W multiples of "
                f"{SIZE_MULTIPLE}, got {tuple(im1.shape)} and {tuple(im2.shape)}"
            )
        mean = (im1.mean(dim=(2, 3), keepdim=True) + im2.mean(dim=(2, 3), keepdim=True)) / 2
        x = torch.cat(((im1 - mean) / self.rgb_max, (im2 - mean) / self.rgb_max), dim=1)
        frame1, frame2 = x[:, :3], x[:, 3:]

        def up(flow: torch.Tensor, mode: str) -> torch.Tensor:
            return F.interpolate(flow, scale_factor=4, mode=mode)

        flow_c = up(self.flownetc(x) * self.div_flow, "bilinear")
        flow_s1 = up(self.flownets_1(self._refine_input(x, flow_c)) * self.div_flow, "bilinear")
        flow_s2 = up(self.flownets_2(self._refine_input(x, flow_s1)) * self.div_flow, "nearest")
        # NVIDIA's layout divides the SD output by div_flow; the fusion weights expect that.
        flow_sd = up(self.flownets_d(x) / self.div_flow, "nearest")
        fusion_input = torch.cat(
            (
                frame1,
                flow_sd,
                flow_s2,
                channel_norm(flow_sd),
                channel_norm(flow_s2),
                channel_norm(frame1 - resample2d(frame2, flow_sd)),
                channel_norm(frame1 - resample2d(frame2, flow_s2)),
            ),
            dim=1,
        )
        return self.flownetfusion(fusion_input)


def flownet2_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of FlowNet2's state dict (built on the meta device: no memory)."""
    with torch.device("meta"):
        return state_dict_shapes(FlowNet2())


def load_flownet2(path: Path, device: torch.device | str = "cpu") -> FlowNet2:
    """FlowNet2 in eval mode with the weights of ``path`` (a dict with 'state_dict' or a bare one).

    Loading is strict (see :mod:`timelapse_d.checkpoints`): any missing, unexpected or
    mis-shaped tensor raises CheckpointError naming the first one and the file.
    """
    state = read_state_dict(path, nested="state_dict")
    with torch.device("meta"):
        model = FlowNet2()
    load_strict(model, state, path)
    return model.to(device=device, dtype=torch.float32).eval()


def _multiple_up(size: int) -> int:
    return math.ceil(size / SIZE_MULTIPLE) * SIZE_MULTIPLE


def estimate_flow(model: FlowNet2, im1: np.ndarray, im2: np.ndarray) -> np.ndarray:
    """Flow from ``im1`` to ``im2``: uint8 RGB batches (N, H, W, 3) of any size.

    Frames are resized (bilinear) to the next multiples of 64, run on the model's device, and
    the flow is resized back with u and v rescaled. Returns float32 (N, 2, H, W) in pixels,
    ``im1(p) ~= im2(p + flow(p))``. Wrap the call in ``torch.autocast`` for reduced precision.
    """
    if im1.shape != im2.shape or im1.ndim != 4 or im1.shape[-1] != 3:
        raise ValueError(f"need two equal (N, H, W, 3) RGB batches, got {im1.shape}, {im2.shape}")
    if im1.dtype != np.uint8 or im2.dtype != np.uint8:
        raise ValueError(f"need uint8 frames, got {im1.dtype} and {im2.dtype}")
    device = next(model.parameters()).device
    h, w = im1.shape[1:3]
    size = (_multiple_up(h), _multiple_up(w))

    def prepare(frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float()
        return x if size == (h, w) else F.interpolate(x, size=size, mode="bilinear")

    with torch.inference_mode():
        flow = model(prepare(im1), prepare(im2)).float()
        if size != (h, w):
            flow = F.interpolate(flow, size=(h, w), mode="bilinear")
            scale = torch.tensor([w / size[1], h / size[0]], device=device).view(1, 2, 1, 1)
            flow = flow * scale
    return flow.cpu().numpy()
