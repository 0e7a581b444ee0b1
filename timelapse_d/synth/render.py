"""Render a parametric scene into frames (see :mod:`timelapse_d.synth.motion`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from timelapse_d.synth.landscape import Box, Painter
from timelapse_d.synth.motion import Motion, apply_affine, is_identity

FLASH_WHITE = 0.8  # a flash frame is blended this far towards white


@dataclass
class Scene:
    """Everything needed to render one segment and to describe its truth."""

    labels: np.ndarray  # world region labels (uint8)
    cameras: np.ndarray  # (n, 2, 3) frame -> world, per frame
    motions: dict[int, Motion]  # moving regions; the others stay still in the world
    painters: dict[int, Painter]  # texture of every region present in `labels`
    gains: np.ndarray  # (n,) global brightness factor per frame
    flashes: tuple[int, ...] = ()  # local indices of single white frames
    noise: float = 0.0  # std of per-frame sensor noise (grey levels)
    hold: int = 1  # each rendered picture is shown this many frames (a photo slideshow)

    @property
    def num_frames(self) -> int:
        return len(self.cameras)


@dataclass
class _Layer:
    image: np.ndarray
    x0: int
    y0: int
    motion: Motion | None
    alpha: np.ndarray  # soft mask of the region in world coordinates; masks sum to 1


def _texture_box(scene: Scene, motion: Motion | None, shape: tuple[int, int]) -> Box:
    """Texture coordinates reached by any frame of the scene (coarse grid, padded)."""
    h, w = shape
    y, x = np.meshgrid(np.r_[0:h:8, h - 1], np.r_[0:w:8, w - 1], indexing="ij")
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for k, camera in enumerate(scene.cameras):
        u, v = apply_affine(camera, x, y)
        if motion is not None:
            u, v = motion.forward(k, u, v)
        lo = np.minimum(lo, [u.min(), v.min()])
        hi = np.maximum(hi, [u.max(), v.max()])
    x0, y0 = np.floor(lo).astype(int) - 4
    x1, y1 = np.ceil(hi).astype(int) + 5
    return int(x0), int(y0), int(y1 - y0), int(x1 - x0)


def _layers(scene: Scene, shape: tuple[int, int], rng: np.random.Generator) -> list[_Layer]:
    layers = []
    for label in np.unique(scene.labels):
        motion = scene.motions.get(int(label))
        box = _texture_box(scene, motion, shape)
        image = scene.painters[int(label)](box, rng).astype(np.float32)
        alpha = cv2.GaussianBlur((scene.labels == label).astype(np.float32), (0, 0), 0.7)
        layers.append(_Layer(image, box[0], box[1], motion, alpha))
    return layers


def _remap(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear sampling at coordinates that broadcast against each other."""
    shape = np.broadcast_shapes(np.shape(x), np.shape(y))
    map_x = np.broadcast_to(x, shape).astype(np.float32)
    map_y = np.broadcast_to(y, shape).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _texture(layer: _Layer, k: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The layer's texture at local frame `k`, world coordinates (x, y)."""
    u, v = (x, y) if layer.motion is None else layer.motion.forward(k, x, y)
    return _remap(layer.image, u - layer.x0, v - layer.y0)


def _rows(alpha: np.ndarray) -> tuple[int, int]:
    """First and past-the-last rows where a mask is not zero."""
    rows = np.flatnonzero(alpha.max(axis=1) > 0)
    return (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 0)


def _static_camera_frames(
    layers: list[_Layer], n: int, shape: tuple[int, int], hold: int = 1
) -> Iterator[np.ndarray]:
    """Frames of a static camera: still regions once, moving ones in their rows only; the
    scene advances every `hold` frames."""
    h, w = shape
    x = np.arange(w, dtype=np.float32)[None, :]
    y = np.arange(h, dtype=np.float32)[:, None]
    base = np.zeros((h, w, 3), np.float32)
    for layer in layers:
        if layer.motion is None:
            base += layer.alpha[..., None] * _texture(layer, 0, x, y)
    bands = [(layer, *_rows(layer.alpha)) for layer in layers if layer.motion is not None]
    for k in range(n):
        frame = base.copy()
        for layer, r0, r1 in bands:
            time = k - k % hold
            frame[r0:r1] += layer.alpha[r0:r1, :, None] * _texture(layer, time, x, y[r0:r1])
        yield frame


def _moving_camera_frames(
    layers: list[_Layer], cameras: np.ndarray, shape: tuple[int, int]
) -> Iterator[np.ndarray]:
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    for k, camera in enumerate(cameras):
        wx, wy = apply_affine(camera.astype(np.float32), x, y)
        frame = np.zeros((h, w, 3), np.float32)
        for layer in layers:
            frame += _remap(layer.alpha, wx, wy)[..., None] * _texture(layer, k, wx, wy)
        yield frame


def render(scene: Scene, shape: tuple[int, int], rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Yield the scene's frames as (H, W, 3) uint8 RGB."""
    layers = _layers(scene, shape, rng)
    static = scene.labels.shape == shape and all(is_identity(c) for c in scene.cameras)
    if static:
        frames = _static_camera_frames(layers, scene.num_frames, shape, scene.hold)
    else:
        frames = _moving_camera_frames(layers, scene.cameras, shape)
    for k, frame in enumerate(frames):
        yield _finish(frame, float(scene.gains[k]), k in scene.flashes, scene.noise, rng)


def _finish(
    frame: np.ndarray, gain: float, flash: bool, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Apply brightness, noise and flash; round to uint8."""
    if noise > 0:
        frame = frame + noise * rng.standard_normal(frame.shape, dtype=np.float32)
        np.maximum(frame, 0.0, out=frame)  # convertScaleAbs would mirror negative values
    image = cv2.convertScaleAbs(frame, alpha=gain)
    if flash:
        image = cv2.convertScaleAbs(image, alpha=1.0 - FLASH_WHITE, beta=255.0 * FLASH_WHITE)
    return image
