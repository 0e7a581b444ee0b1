"""Smooth procedural noise and small helpers for painting synthetic landscapes."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike


def fbm(
    rng: np.random.Generator,
    shape: tuple[int, int],
    scale: float,
    *,
    slope: float = 1.5,
    stretch: float = 1.0,
) -> np.ndarray:
    """Fractal noise of `shape` (float32, zero mean, unit std), periodic in both axes.

    White noise is filtered in the Fourier domain with amplitude ``(f**2 + f0**2)**(-slope/2)``:
    `scale` (pixels, ``1/f0``) is the size of the largest features, a larger `slope` gives a
    smoother field, and `stretch` > 1 elongates features horizontally.
    """
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :] * stretch
    amplitude = (fx**2 + fy**2 + scale**-2.0) ** (-slope / 2.0)
    field = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * amplitude, s=shape)
    field -= field.mean()
    return (field / max(float(field.std()), 1e-12)).astype(np.float32)


def fbm1d(rng: np.random.Generator, length: int, scale: float, slope: float = 1.8) -> np.ndarray:
    """One-dimensional fractal noise (zero mean, unit std), e.g. for skylines."""
    return fbm(rng, (1, length), scale, slope=slope)[0]


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at `edge0` to 1 at `edge1`."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def lerp(a: ArrayLike, b: ArrayLike, t: ArrayLike) -> np.ndarray:
    """Linear blend of colours `a` and `b`; `t` (H, W) broadcasts over the channel axis."""
    weight = np.asarray(t, dtype=np.float32)
    if weight.ndim == 2:
        weight = weight[..., None]
    return (np.asarray(a, np.float32) * (1.0 - weight) + np.asarray(b, np.float32) * weight).astype(
        np.float32
    )


def star_field(
    rng: np.random.Generator, shape: tuple[int, int], density: float, sigma: float
) -> np.ndarray:
    """Grey-level star field (float32, 0-255): `density` stars per pixel, Gaussian dots."""
    h, w = shape
    count = rng.poisson(density * h * w)
    ys = rng.integers(0, h, count)
    xs = rng.integers(0, w, count)
    brightness = np.minimum(40.0 + rng.exponential(70.0, count), 255.0)
    dots = np.zeros(shape, np.float32)
    np.add.at(dots, (ys, xs), brightness.astype(np.float32))
    field = cv2.GaussianBlur(dots, (0, 0), sigma) * (2.0 * np.pi * sigma**2)
    return np.minimum(field, 255.0)
