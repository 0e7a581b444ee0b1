"""Masked PSNR and SSIM between an input frame and the frames generated from it.

Images are H x W x C arrays (uint8, or float on the same 0-255 scale). Pixels that move in the
ground-truth clip are left out, so the scores measure how well the still parts of the scene
are preserved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAX_VALUE = 255.0
DYNAMIC_THRESHOLD = 2.5
# The variance of rounding to integers (uniform error on [-0.5, 0.5]): the MSE floor of a video
# frame's PSNR in score_video, which caps it at 10 log10(255^2 * 12) = 58.92 dB.
ROUNDING_MSE = 1.0 / 12.0
PSNR_CAP = 10.0 * math.log10(MAX_VALUE**2 / ROUNDING_MSE)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_BORDER = SSIM_WINDOW // 2


def _as_float(array: np.ndarray, ndim: int, what: str) -> np.ndarray:
    out = np.asarray(array, dtype=np.float64)
    if out.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dimensions, got shape {out.shape}")
    return out


def _check_pair(reference: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = _as_float(reference, 3, "reference")
    gen = _as_float(generated, 3, "generated")
    if ref.shape != gen.shape:
        raise ValueError(f"reference {ref.shape} and generated {gen.shape} differ in shape")
    return ref, gen


def _static_or_all(static_mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if static_mask is None:
        return np.ones(shape[:2], dtype=bool)
    mask = np.asarray(static_mask, dtype=bool)
    if mask.shape != shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image size {shape[:2]}")
    return mask


def dynamic_mask(frames: np.ndarray, threshold: float = DYNAMIC_THRESHOLD) -> np.ndarray:
    """Pixels that move in a ground-truth clip (T x H x W x C, T >= 2, values 0-255).

    A pixel is dynamic when its mean change between consecutive frames, measured as the L1
    norm over the colour channels (sum of absolute differences of the 0-255 values, so at
    most 765 per step for RGB), is strictly greater than `threshold`. The mean is over the
    T - 1 consecutive pairs. Returns a boolean H x W mask, True where dynamic.
    """
    clip = _as_float(frames, 4, "frames")
    if clip.shape[0] < 2:
        raise ValueError("a dynamic mask needs at least 2 frames")
    steps = np.abs(np.diff(clip, axis=0)).sum(axis=-1)
    return steps.mean(axis=0) > threshold


def masked_psnr(
    reference: np.ndarray, generated: np.ndarray, static_mask: np.ndarray | None = None
) -> float:
    """PSNR in dB (peak 255) over the pixels where `static_mask` is True, all channels.

    `static_mask=None` scores every pixel. Returns `math.inf` when the selected pixels are
    identical. Raises ValueError when the mask selects no pixel (an all-dynamic scene).
    """
    ref, gen = _check_pair(reference, generated)
    mask = _static_or_all(static_mask, ref.shape)
    if not mask.any():
        raise ValueError("the static mask selects no pixel (every pixel is dynamic)")
    mse = float(np.mean((ref[mask] - gen[mask]) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(MAX_VALUE**2 / mse)


def _gaussian_kernel() -> np.ndarray:
    offsets = np.arange(SSIM_WINDOW) - _BORDER
    kernel = np.exp(-(offsets**2) / (2.0 * SSIM_SIGMA**2))
    return kernel / kernel.sum()


def _filter_valid(image: np.ndarray) -> np.ndarray:
    """Separable Gaussian weighted mean over every window that lies inside the image."""
    kernel = _gaussian_kernel()
    rows = sliding_window_view(image, SSIM_WINDOW, axis=0) @ kernel
    return sliding_window_view(rows, SSIM_WINDOW, axis=1) @ kernel


def ssim_map(reference: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM, averaged over channels, for every pixel whose window fits in the image.

    Standard SSIM (Wang et al. 2004): 11 x 11 Gaussian window with sigma 1.5, K1 = 0.01,
    K2 = 0.03, dynamic range 255, population (weighted) variances, each colour channel scored
    separately. The map is (H - 10) x (W - 10): a 5-pixel border has no full window. Its
    mean equals scikit-image's `structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)`.
    """
    ref, gen = _check_pair(reference, generated)
    if min(ref.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels")
    c1 = (SSIM_K1 * MAX_VALUE) ** 2
    c2 = (SSIM_K2 * MAX_VALUE) ** 2
    mu_r = _filter_valid(ref)
    mu_g = _filter_valid(gen)
    var_r = _filter_valid(ref * ref) - mu_r**2
    var_g = _filter_valid(gen * gen) - mu_g**2
    cov = _filter_valid(ref * gen) - mu_r * mu_g
    numerator = (2.0 * mu_r * mu_g + c1) * (2.0 * cov + c2)
    denominator = (mu_r**2 + mu_g**2 + c1) * (var_r + var_g + c2)
    return (numerator / denominator).mean(axis=-1)


def masked_ssim(
    reference: np.ndarray, generated: np.ndarray, static_mask: np.ndarray | None = None
) -> float:
    """Mean of `ssim_map` over the pixels where `static_mask` is True (None: every pixel).

    The 5-pixel image border, which has no SSIM value, is left out. Raises ValueError when no
    static pixel remains inside it.
    """
    values = ssim_map(reference, generated)
    mask = _static_or_all(static_mask, np.shape(reference))
    inner = mask[_BORDER:-_BORDER, _BORDER:-_BORDER]
    if not inner.any():
        raise ValueError("the static mask selects no pixel inside the SSIM border")
    return float(values[inner].mean())


@dataclass(frozen=True)
class VideoScore:
    """Masked scores of one generated video, averaged over its frames."""

    psnr: float
    ssim: float
    static_fraction: float


def score_video(
    first_frame: np.ndarray,
    generated: np.ndarray,
    ground_truth: np.ndarray,
    threshold: float = DYNAMIC_THRESHOLD,
) -> VideoScore:
    """Score generated frames (T x H x W x C) against the input frame they were made from.

    The static mask comes from the ground-truth clip with `dynamic_mask(ground_truth,
    threshold)`. PSNR and SSIM are averaged over the generated frames; a frame's PSNR is capped
    at :data:`PSNR_CAP` (its error is below the rounding of 8-bit frames), so one frame that
    reproduces the static pixels exactly does not make the mean infinite. Pass only frames the
    model generated, not a copy of the input it may return as frame 0.
    """
    frames = _as_float(generated, 4, "generated")
    if frames.shape[0] == 0:
        raise ValueError("no generated frame to score")
    static = ~dynamic_mask(ground_truth, threshold)
    psnrs = [min(masked_psnr(first_frame, frame, static), PSNR_CAP) for frame in frames]
    ssims = [masked_ssim(first_frame, frame, static) for frame in frames]
    return VideoScore(
        psnr=float(np.mean(psnrs)), ssim=float(np.mean(ssims)), static_fraction=float(static.mean())
    )
