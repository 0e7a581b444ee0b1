"""Parametric motion of synthetic scenes, and the exact backward flow it implies.

A segment is rendered as ``frame[k](p) = layer_r(M_r,k(C_k(p)))``: the camera ``C_k`` (a 2x3
affine matrix per frame) maps frame pixels to *world* coordinates, where the region label map
lives; the region motion ``M_r,k`` maps world coordinates to the coordinates of the region's
texture at local frame ``k``. Content therefore moves by the motion, and the backward flow
``frame[k+1](p) = frame[k](p + flow(p))`` is ``C_k^-1(M_k^-1(M_k+1(C_k+1(p)))) - p``, taken with
the region of ``p`` at frame ``k+1``. Every motion below has a closed-form inverse.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import cv2
import numpy as np


class Motion(Protocol):
    """World -> texture coordinates of one region at local frame `k`, and back.

    Every motion is a dataclass: its fields are its JSON form (:func:`motion_to_dict`).
    """

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def forward(self, k: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def inverse(self, k: int, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Drift:
    """Content translates by (vx, vy) pixels per frame (clouds, water currents)."""

    vx: float
    vy: float = 0.0

    def forward(self, k: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x - self.vx * k, y - self.vy * k

    def inverse(self, k: int, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return u + self.vx * k, v + self.vy * k


@dataclass(frozen=True)
class Rotate:
    """Content rotates by `omega` radians per frame about (cx, cy) (stars about the pole)."""

    cx: float
    cy: float
    omega: float

    def _turn(self, angle: float, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, s = np.cos(angle), np.sin(angle)
        dx, dy = x - self.cx, y - self.cy
        return self.cx + c * dx - s * dy, self.cy + s * dx + c * dy

    def forward(self, k: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._turn(-self.omega * k, x, y)

    def inverse(self, k: int, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._turn(self.omega * k, u, v)


@dataclass(frozen=True)
class Wave:
    """Horizontal drift `vx` plus a horizontal oscillation that depends on the row only.

    The shift at row y and frame k is ``amp * a(y) * sin(2 pi y / wavelength + omega k +
    phase)``, where ``a`` ramps linearly from 0 at row `y_zero` to 1 at row `y_full` (clamped):
    ripples on water (``y_zero`` at the far shore) and trees swaying in the wind (``y_zero`` at
    the foot of the trees, ``y_full`` at their tops).
    """

    vx: float
    amp: float
    wavelength: float
    omega: float
    phase: float
    y_zero: float
    y_full: float

    def _shift(self, k: int, y: np.ndarray) -> np.ndarray:
        profile = np.clip((y - self.y_zero) / (self.y_full - self.y_zero), 0.0, 1.0)
        angle = 2.0 * np.pi * y / self.wavelength + self.omega * k + self.phase
        return self.amp * profile * np.sin(angle)

    def forward(self, k: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x - self.vx * k - self._shift(k, y), y

    def inverse(self, k: int, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return u + self.vx * k + self._shift(k, v), v


MOTION_TYPES: dict[str, type[Motion]] = {"drift": Drift, "rotate": Rotate, "wave": Wave}


def motion_to_dict(motion: Motion) -> dict[str, Any]:
    """JSON form of a motion: ``{"type": "drift", "vx": ..., ...}``."""
    name = next(key for key, cls in MOTION_TYPES.items() if isinstance(motion, cls))
    return {"type": name, **dataclasses.asdict(motion)}


def motion_from_dict(data: dict[str, Any]) -> Motion:
    """Inverse of :func:`motion_to_dict`."""
    params = {key: value for key, value in data.items() if key != "type"}
    return MOTION_TYPES[data["type"]](**params)


def apply_affine(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply a 2x3 affine matrix to coordinate arrays."""
    return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


def is_identity(m: np.ndarray) -> bool:
    """True for the 2x3 identity (a static camera looking at a frame-sized world)."""
    return bool(np.array_equal(m, np.eye(2, 3)))


def static_camera(n: int) -> np.ndarray:
    """Identity cameras for `n` frames."""
    return np.tile(np.eye(2, 3), (n, 1, 1))


def pan_camera(n: int, speed: float) -> np.ndarray:
    """Camera moving right by `speed` pixels per frame across a wider world."""
    mats = static_camera(n)
    mats[:, 0, 2] = speed * np.arange(n)
    return mats


def zoom_camera(n: int, rate: float, cx: float, cy: float) -> np.ndarray:
    """Camera zooming in by `rate` (relative scale per frame) towards (cx, cy)."""
    scale = (1.0 + rate) ** -np.arange(n, dtype=np.float64)
    mats = np.zeros((n, 2, 3))
    mats[:, 0, 0] = mats[:, 1, 1] = scale
    mats[:, 0, 2] = cx * (1.0 - scale)
    mats[:, 1, 2] = cy * (1.0 - scale)
    return mats


def shake_camera(
    rng: np.random.Generator,
    n: int,
    shape: tuple[int, int],
    margin: float,
    shift: tuple[float, float],
    max_angle: float,
) -> np.ndarray:
    """Hand-held jitter: every frame a random shift of `shift` pixels (min, max) and a rotation
    of up to `max_angle` radians about the frame centre, inside a world `margin` larger."""
    h, w = shape
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    radius = rng.uniform(shift[0], shift[1], n)
    direction = rng.uniform(0.0, 2.0 * np.pi, n)
    angles = np.degrees(rng.uniform(-max_angle, max_angle, n))
    mats = np.zeros((n, 2, 3))
    for k in range(n):
        mats[k] = cv2.getRotationMatrix2D((cx, cy), angles[k], 1.0)
        mats[k, 0, 2] += margin + radius[k] * np.cos(direction[k])
        mats[k, 1, 2] += margin + radius[k] * np.sin(direction[k])
    return mats


def warp_labels(labels: np.ndarray, camera: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The region label map seen by `camera` (nearest neighbour), shape (H, W) uint8."""
    h, w = shape
    if labels.shape == (h, w) and is_identity(camera):
        return labels.copy()
    flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(labels, camera, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def backward_flow(
    labels: np.ndarray,
    cameras: np.ndarray,
    motions: dict[int, Motion],
    k: int,
    shape: tuple[int, int],
    step: int = 1,
) -> np.ndarray:
    """Exact backward flow from local frame `k` to `k + step`: (H, W, 2) float32, pixels."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    wx, wy = apply_affine(cameras[k + step], x, y)
    back = cv2.invertAffineTransform(cameras[k])
    region = warp_labels(labels, cameras[k + step], shape)
    flow = np.zeros((h, w, 2), np.float32)
    for label in np.unique(region):
        sel = region == label
        u, v = wx[sel], wy[sel]
        motion = motions.get(int(label))
        if motion is not None:
            u, v = motion.inverse(k, *motion.forward(k + step, u, v))
        px, py = apply_affine(back, u, v)
        flow[sel, 0] = px - x[sel]
        flow[sel, 1] = py - y[sel]
    return flow
