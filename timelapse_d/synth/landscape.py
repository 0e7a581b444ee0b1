"""Procedural landscape layouts (region label maps) and the painters of their regions.

A painter receives the box ``(x0, y0, height, width)`` of texture coordinates it must cover and
a random generator, and returns an RGB float32 image (0-255) of that box. Every painter works in
world coordinates, so what is baked into a texture (a sky gradient, the glow of a night sky)
stays consistent with the region's motion (horizontal drift, rotation about the pole).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from timelapse_d.synth.noise import fbm, fbm1d, lerp, smoothstep, star_field

GROUND, SKY, WATER, TREE = 0, 1, 2, 3
REGION_NAMES = {GROUND: "ground", SKY: "sky", WATER: "water", TREE: "tree"}

Box = tuple[int, int, int, int]
Painter = Callable[[Box, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Palette:
    """Colours (RGB, 0-255) of one landscape look."""

    name: str
    sky_top: tuple[int, int, int]
    sky_horizon: tuple[int, int, int]
    cloud: tuple[int, int, int]
    cloud_shadow: tuple[int, int, int]
    far: tuple[int, int, int]
    near: tuple[int, int, int]
    water: tuple[int, int, int]
    tree: tuple[int, int, int]


DAY_PALETTES = (
    Palette("noon", (40, 100, 205), (175, 210, 240), (250, 250, 252), (165, 175, 195),
            (95, 125, 150), (75, 125, 50), (35, 85, 125), (30, 80, 35)),
    Palette("sunset", (70, 60, 140), (250, 165, 90), (255, 205, 165), (140, 85, 95),
            (110, 70, 95), (90, 65, 50), (130, 85, 95), (40, 30, 35)),
    Palette("overcast", (120, 130, 145), (205, 205, 208), (228, 228, 230), (125, 130, 140),
            (105, 115, 115), (100, 110, 75), (95, 110, 120), (45, 65, 50)),
    Palette("desert", (60, 125, 215), (225, 215, 195), (248, 244, 238), (185, 175, 175),
            (175, 120, 80), (205, 155, 95), (60, 115, 145), (95, 105, 45)),
    Palette("dusk", (45, 45, 110), (215, 125, 160), (235, 170, 200), (100, 70, 115),
            (80, 65, 110), (70, 65, 90), (85, 75, 130), (35, 40, 55)),
    Palette("snow", (85, 140, 215), (215, 228, 242), (255, 255, 255), (170, 180, 205),
            (150, 160, 195), (232, 236, 242), (80, 110, 145), (35, 60, 50)),
    Palette("autumn", (75, 140, 205), (230, 220, 185), (250, 246, 236), (165, 155, 155),
            (125, 95, 75), (175, 115, 45), (60, 95, 105), (180, 75, 30)),
)  # fmt: skip
NIGHT = Palette("night", (4, 6, 18), (30, 36, 70), (60, 60, 70), (20, 20, 30),
                (10, 10, 16), (6, 6, 10), (12, 16, 30), (5, 8, 8))  # fmt: skip
# Star time-lapses usually show a foreground lit by the moon or the glow of the horizon.
MOONLIT = Palette("moonlit", (4, 6, 18), (30, 36, 70), (60, 60, 70), (20, 20, 30),
                  (28, 32, 44), (40, 44, 52), (12, 16, 30), (8, 12, 12))  # fmt: skip


@dataclass(frozen=True)
class Layout:
    """Where sky, ground, water and trees are, in world coordinates (pixels)."""

    labels: np.ndarray  # (H, W) uint8 region labels
    ridge: np.ndarray  # (W,) row of the skyline per column
    near: np.ndarray  # (W,) row where the near ground starts
    water_top: float | None  # row of the water surface (far shore), if any
    horizon: float  # mean skyline row
    tree_rows: tuple[float, float]  # (foot, top) rows of the trees, if any


def make_layout(
    rng: np.random.Generator,
    shape: tuple[int, int],
    horizon: float,
    *,
    water: bool = False,
    trees: int = 0,
) -> Layout:
    """Random hills at `horizon` (fraction of the height), optionally a lake and trees."""
    h, w = shape
    base = horizon * h
    ridge = np.clip(base - h * 0.07 * (1.3 + fbm1d(rng, w, 0.5 * w)), 0.12 * h, 0.8 * h)
    if water:
        water_top = base + 0.03 * h
        ridge = np.minimum(ridge, water_top - 2.0)
        near = 0.9 * h + 0.04 * h * fbm1d(rng, w, 0.3 * w)
    else:
        water_top = None
        near = ridge + h * (0.1 + 0.05 * (1.5 + fbm1d(rng, w, 0.4 * w)))
    rows = np.arange(h, dtype=np.float32)[:, None]
    labels = np.where(rows < ridge[None, :], SKY, GROUND).astype(np.uint8)
    if water_top is not None:
        labels[(rows >= water_top) & (rows < near[None, :])] = WATER
    tree_rows = (0.0, 0.0)
    if trees:
        tree_mask, tree_rows = _tree_mask(rng, shape, near, trees)
        labels[tree_mask] = TREE
    return Layout(labels, ridge, near, water_top, float(ridge.mean()), tree_rows)


def _tree_mask(
    rng: np.random.Generator, shape: tuple[int, int], near: np.ndarray, count: int
) -> tuple[np.ndarray, tuple[float, float]]:
    """Canopies (noisy ellipses) on trunks standing on the near ground."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    wobble = fbm(rng, shape, 0.03 * w, slope=1.2)
    mask = np.zeros(shape, bool)
    feet, tops = [], []
    for x in (np.arange(count) + rng.uniform(0.2, 0.8, count)) * w / count:
        foot = float(near[int(x)]) + rng.uniform(0.02, 0.08) * h
        height = rng.uniform(0.3, 0.45) * h
        cy, ry, rx = foot - 0.62 * height, 0.36 * height, rng.uniform(0.2, 0.3) * height
        blob = ((cols - x) / rx) ** 2 + ((rows - cy) / ry) ** 2 + 0.25 * wobble < 1.0
        trunk = (np.abs(cols - x) < 0.035 * height) & (rows > cy) & (rows < foot)
        mask |= blob | trunk
        feet.append(foot)
        tops.append(cy - ry)
    return mask, (max(feet), min(tops))


def _grid(box: Box) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, bh, bw = box
    return (
        np.arange(x0, x0 + bw, dtype=np.float32)[None, :],
        np.arange(y0, y0 + bh, dtype=np.float32)[:, None],
    )


def sky_painter(layout: Layout, palette: Palette, scale: float, cover: float) -> Painter:
    """Gradient sky with fractal clouds; `cover` in [0, 1] is the cloud cover."""

    def paint(box: Box, rng: np.random.Generator) -> np.ndarray:
        _, rows = _grid(box)
        shape = (box[2], box[3])
        t = np.clip(rows / max(layout.horizon, 1.0), 0.0, 1.0) ** 0.8
        sky = lerp(palette.sky_top, palette.sky_horizon, np.broadcast_to(t, shape))
        body = fbm(rng, shape, 110.0 * scale, slope=1.8, stretch=2.0)
        body += 0.25 * fbm(rng, shape, 16.0 * scale, slope=1.2)
        light = np.clip(0.6 + 0.35 * fbm(rng, shape, 40.0 * scale, slope=1.5), 0.0, 1.0)
        threshold = 1.1 - 1.6 * cover
        density = smoothstep(threshold, threshold + 1.0, body) * (0.4 + 0.6 * (1.0 - t))
        clouds = lerp(palette.cloud_shadow, palette.cloud, light)
        return lerp(sky, clouds, density)

    return paint


def night_painter(layout: Layout, pole: tuple[float, float], scale: float) -> Painter:
    """Dark sky glowing towards the horizon, faint haze and stars; glow is radial about
    `pole` so it is unchanged when the sky rotates about it."""
    top = float(np.hypot(0.0, pole[1]))
    bottom = float(np.hypot(0.0, layout.horizon - pole[1]))

    def paint(box: Box, rng: np.random.Generator) -> np.ndarray:
        cols, rows = _grid(box)
        shape = (box[2], box[3])
        radius = np.hypot(cols - pole[0], rows - pole[1])
        t = np.clip((radius - top) / (bottom - top), 0.0, 1.0) ** 1.5
        sky = lerp(NIGHT.sky_top, NIGHT.sky_horizon, t)
        haze = 6.0 * smoothstep(0.5, 2.0, fbm(rng, shape, 60.0 * scale, slope=1.5))
        stars = star_field(rng, shape, 0.006 / scale**2, max(0.6, 0.7 * scale))
        return sky + (haze + stars)[..., None] * np.asarray([0.95, 0.97, 1.0], np.float32)

    return paint


def ground_painter(layout: Layout, palette: Palette, scale: float) -> Painter:
    """Hazy far hills above textured near ground."""

    def paint(box: Box, rng: np.random.Generator) -> np.ndarray:
        cols, rows = _grid(box)
        shape = (box[2], box[3])
        index = np.arange(layout.near.size, dtype=np.float32)
        near_row = np.interp(cols, index, layout.near)
        far = lerp(palette.far, palette.sky_horizon, 0.25)
        depth = np.clip((rows - near_row) / (0.4 * max(layout.horizon, 1.0)), 0.0, 1.0)
        near = lerp(palette.near, np.asarray(palette.near, np.float32) * 1.25, depth)
        colour = np.where((rows < near_row)[..., None], far, near)
        texture = 1.0 + 0.15 * fbm(rng, shape, 40.0 * scale, slope=1.4)
        texture += 0.08 * fbm(rng, shape, 4.0 * scale, slope=0.9)
        return colour * texture[..., None]

    return paint


def water_painter(layout: Layout, palette: Palette, scale: float) -> Painter:
    """Water reflecting the horizon colour, with horizontal streaks and glints."""

    def paint(box: Box, rng: np.random.Generator) -> np.ndarray:
        _, rows = _grid(box)
        shape = (box[2], box[3])
        top = layout.water_top if layout.water_top is not None else layout.horizon
        depth = np.clip((rows - top) / max(float(layout.near.mean()) - top, 1.0), 0.0, 1.0)
        surface = lerp(palette.water, palette.sky_horizon, 0.35)
        deep = np.asarray(palette.water, np.float32) * 0.75
        colour = lerp(surface, deep, np.broadcast_to(depth, shape))
        streaks = fbm(rng, shape, 30.0 * scale, slope=1.2, stretch=6.0)
        fine = fbm(rng, shape, 4.0 * scale, slope=0.8, stretch=4.0)
        shade = 1.0 + 0.12 * streaks + 0.15 * fine
        glint = 50.0 * smoothstep(1.4, 2.6, fine + 0.5 * streaks)
        return colour * shade[..., None] + glint[..., None]

    return paint


def tree_painter(palette: Palette, scale: float) -> Painter:
    """Leafy foliage: dark base colour with fine, bright clumps."""

    def paint(box: Box, rng: np.random.Generator) -> np.ndarray:
        shape = (box[2], box[3])
        clumps = fbm(rng, shape, 10.0 * scale, slope=1.2)
        leaves = fbm(rng, shape, 2.5 * scale, slope=0.6)
        shade = np.clip(0.75 + 0.25 * clumps + 0.3 * leaves, 0.2, 1.8)
        return np.asarray(palette.tree, np.float32) * shade[..., None]

    return paint


def black_painter(box: Box, rng: np.random.Generator) -> np.ndarray:
    """Pure black (inserted black frames, the middle of a fade)."""
    return np.zeros((box[2], box[3], 3), np.float32)
