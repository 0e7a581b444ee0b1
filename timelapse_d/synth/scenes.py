"""The kinds of synthetic segments: how each is laid out, moves and is judged.

Speeds and sizes are given for a 384-pixel-wide frame and scale with the frame width.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from timelapse_d.synth.landscape import (
    GROUND,
    MOONLIT,
    SKY,
    TREE,
    WATER,
    Layout,
    Painter,
    Palette,
    black_painter,
    ground_painter,
    make_layout,
    night_painter,
    sky_painter,
    tree_painter,
    water_painter,
)
from timelapse_d.synth.motion import (
    Drift,
    Motion,
    Rotate,
    Wave,
    pan_camera,
    shake_camera,
    static_camera,
    zoom_camera,
)
from timelapse_d.synth.render import Scene

REFERENCE_WIDTH = 384.0
RAMP_END_GAIN = 0.55  # a brightness ramp dims the segment from 1 to this
FADE_MIN_GAIN = 0.15  # darkest fade frame: no fade frame is darker than 10 % of normal
STILL_NOISE = 0.8  # grey levels of per-frame noise on held photos
PHOTO_STEP_HOLD = (10, 14)  # frames each photo of a photo sequence is held (0.4-0.56 s)


@dataclass(frozen=True)
class KindInfo:
    """Truth of a kind: category, camera and the decision a curator must reach."""

    category: str | None
    camera: str
    reasons: tuple[str, ...] = ()


KINDS: dict[str, KindInfo] = {
    "clouds": KindInfo("cloud", "static"),
    "water": KindInfo("water", "static"),
    "trees": KindInfo("tree", "static"),
    "stars": KindInfo("star", "static"),
    "sky_and_water": KindInfo("cloud", "static"),
    "flash": KindInfo("cloud", "static"),
    "pan": KindInfo(None, "pan", ("camera_motion",)),
    "zoom": KindInfo(None, "zoom", ("camera_motion",)),
    "shake": KindInfo(None, "shake", ("camera_motion",)),
    "still": KindInfo(None, "static", ("static",)),
    "slideshow": KindInfo(None, "static", ("static",)),
    "photo_steps": KindInfo(None, "static", ("slideshow", "static")),
    "black": KindInfo(None, "static", ("static", "too_dark")),
    "fade": KindInfo(None, "static", ("static", "too_dark")),
}


@dataclass(frozen=True)
class SceneSpec:
    """One planned segment."""

    kind: str
    length: int
    palette: Palette
    horizon: float  # skyline height as a fraction of the frame height
    ramp: bool = False  # slow sunset-like dimming over the segment
    fade_in: int = 0  # frames fading in from black at the start
    fade_out: int = 0  # frames fading out to black at the end


def _scale(shape: tuple[int, int]) -> float:
    return shape[1] / REFERENCE_WIDTH


def _fade_out(frames: int) -> np.ndarray:
    """Gains of a fade to black over `frames` frames, from about 1 down to FADE_MIN_GAIN."""
    return 1.0 - (1.0 - FADE_MIN_GAIN) * np.arange(1, frames + 1) / frames


def _gains(spec: SceneSpec) -> np.ndarray:
    gains = np.linspace(1.0, RAMP_END_GAIN, spec.length) if spec.ramp else np.ones(spec.length)
    if spec.fade_in:
        gains[: spec.fade_in] *= _fade_out(spec.fade_in)[::-1]
    if spec.fade_out:
        gains[spec.length - spec.fade_out :] *= _fade_out(spec.fade_out)
    return gains


def _signed(rng: np.random.Generator, low: float, high: float) -> float:
    """A magnitude in [low, high) with a random sign."""
    return float(rng.choice([-1.0, 1.0]) * rng.uniform(low, high))


def _scene(
    spec: SceneSpec,
    labels: np.ndarray,
    painters: dict[int, Painter],
    motions: Mapping[int, Motion],
    cameras: np.ndarray | None = None,
    *,
    flashes: tuple[int, ...] = (),
    noise: float = 0.0,
) -> Scene:
    cameras = static_camera(spec.length) if cameras is None else cameras
    return Scene(labels, cameras, dict(motions), painters, _gains(spec), flashes, noise)


def _day_painters(
    layout: Layout, spec: SceneSpec, scale: float, cover: float
) -> dict[int, Painter]:
    palette = spec.palette
    return {
        SKY: sky_painter(layout, palette, scale, cover),
        GROUND: ground_painter(layout, palette, scale),
        WATER: water_painter(layout, palette, scale),
        TREE: tree_painter(palette, scale),
    }


def _ripples(
    rng: np.random.Generator, layout: Layout, height: int, vx: float, amp: float, scale: float
) -> Wave:
    """Water drifting by `vx` with ripples growing towards the viewer."""
    assert layout.water_top is not None, "ripples need a layout with water"
    return Wave(
        vx=vx,
        amp=amp * scale,
        wavelength=float(rng.uniform(9.0, 14.0)) * scale,
        omega=2.0 * np.pi / float(rng.uniform(12.0, 18.0)),
        phase=float(rng.uniform(0.0, 2.0 * np.pi)),
        y_zero=float(layout.water_top),
        y_full=float(height),
    )


def _clouds(spec: SceneSpec, shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    s = _scale(shape)
    layout = make_layout(rng, shape, spec.horizon)
    painters = _day_painters(layout, spec, s, float(rng.uniform(0.45, 0.75)))
    flashes = (spec.length // 2,) if spec.kind == "flash" else ()
    motions = {SKY: Drift(_signed(rng, 0.9, 1.8) * s)}
    return _scene(spec, layout.labels, painters, motions, flashes=flashes)


def _photo_steps(spec: SceneSpec, shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """A cloud time-lapse shot as photos and shown a couple of photos per second: each held
    for 10-14 frames, the clouds jump between them (too little change for a cut)."""
    scene = _clouds(spec, shape, rng)
    scene.hold = int(rng.integers(PHOTO_STEP_HOLD[0], PHOTO_STEP_HOLD[1] + 1))
    return scene


def _water(spec: SceneSpec, shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    s = _scale(shape)
    layout = make_layout(rng, shape, spec.horizon, water=True)
    painters = _day_painters(layout, spec, s, float(rng.uniform(0.3, 0.6)))
    motions: dict[int, Motion] = {
        SKY: Drift(_signed(rng, 0.2, 0.4) * s),
        WATER: _ripples(rng, layout, shape[0], _signed(rng, 0.5, 1.0) * s, 1.2, s),
    }
    return _scene(spec, layout.labels, painters, motions)


def _sky_and_water(spec: SceneSpec, shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """Sky and water drifting in opposite directions."""
    s = _scale(shape)
    layout = make_layout(rng, shape, spec.horizon, water=True)
    painters = _day_painters(layout, spec, s, float(rng.uniform(0.5, 0.75)))
    sky = _signed(rng, 1.2, 1.8) * s
    water = -np.sign(sky) * float(rng.uniform(0.8, 1.2)) * s
    ripples = _ripples(rng, layout, shape[0], water, 0.6, s)
    motions: dict[int, Motion] = {SKY: Drift(sky), WATER: ripples}
    return _scene(spec, layout.labels, painters, motions)


def _trees(spec: SceneSpec, shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """Trees swaying in the wind, everything else still."""
    s = _scale(shape)
    layout = make_layout(rng, shape, spec.horizon, trees=int(rng.integers(3, 6)))
    painters = _day_painters(layout, spec, s, float(rng.uniform(0.2, 0.5)))
    foot, top = layout.tree_rows
    sway = Wave(
        vx=0.0,
        # Time compresses wind: in a time-lapse, tree tops move several pixels a frame.
        amp=float(rng.uniform(6.0, 9.0)) * s,
        wavelength=3.0 * shape[0],
        omega=2.0 * np.pi / float(rng.uniform(10.0, 16.0)),
        phase=float(rng.uniform(0.0, 2.0 * np.pi)),
        y_zero=foot,
        y_full=top,
    )
    return _scene(spec, layout.labels, painters, {TREE: sway})


def _stars(spec: SceneSpec, shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """Night sky turning about a pole above the frame over a moonlit foreground with trees."""
    h, w = shape
    s = _scale(shape)
    layout = make_layout(rng, shape, spec.horizon, trees=int(rng.integers(2, 4)))
    pole = (float(w * rng.uniform(0.3, 0.7)), float(-h * rng.uniform(0.8, 1.4)))
    omega = _signed(rng, 0.8, 1.1) * s / (h / 2.0 - pole[1])  # ~1 px/frame mid-frame
    painters = {
        SKY: night_painter(layout, pole, s),
        GROUND: ground_painter(layout, MOONLIT, s),
        TREE: tree_painter(MOONLIT, s),
    }
    return _scene(spec, layout.labels, painters, {SKY: Rotate(*pole, omega)})


def _pan(spec: SceneSpec, shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """Camera panning right across a wide panorama while clouds drift."""
    h, w = shape
    s = _scale(shape)
    speed = float(rng.uniform(1.5, 3.0)) * s
    world = (h, w + int(np.ceil(speed * spec.length)) + 2)
    layout = make_layout(rng, world, spec.horizon, trees=int(rng.integers(0, 4)))
    painters = _day_painters(layout, spec, s, float(rng.uniform(0.4, 0.7)))
    motions = {SKY: Drift(_signed(rng, 0.3, 0.8) * s)}
    return _scene(spec, layout.labels, painters, motions, pan_camera(spec.length, speed))


def _zoom(spec: SceneSpec, shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """Smooth zoom in (0.5-1 % per frame) on a lake landscape with drifting clouds."""
    h, w = shape
    s = _scale(shape)
    layout = make_layout(rng, shape, spec.horizon, water=True)
    painters = _day_painters(layout, spec, s, float(rng.uniform(0.4, 0.7)))
    motions = {SKY: Drift(_signed(rng, 0.5, 1.0) * s)}
    centre = (w * float(rng.uniform(0.4, 0.6)), h * float(rng.uniform(0.4, 0.6)))
    cameras = zoom_camera(spec.length, float(rng.uniform(0.005, 0.01)), *centre)
    return _scene(spec, layout.labels, painters, motions, cameras)


def _shake(spec: SceneSpec, shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """Hand-held time-lapse: 2-6 px random shift and up to 0.5 degree rotation every frame."""
    h, w = shape
    s = _scale(shape)
    margin = int(np.ceil(10.0 * s)) + 2
    world = (h + 2 * margin, w + 2 * margin)
    layout = make_layout(rng, world, spec.horizon, trees=int(rng.integers(2, 5)))
    painters = _day_painters(layout, spec, s, float(rng.uniform(0.4, 0.7)))
    motions = {SKY: Drift(_signed(rng, 0.8, 1.5) * s)}
    cameras = shake_camera(rng, spec.length, shape, margin, (2.0 * s, 6.0 * s), np.radians(0.5))
    return _scene(spec, layout.labels, painters, motions, cameras)


def _photo(spec: SceneSpec, shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """A single landscape photo held still, with faint sensor noise."""
    variant = int(rng.integers(3))
    layout = make_layout(rng, shape, spec.horizon, water=variant == 1, trees=3 * (variant == 2))
    painters = _day_painters(layout, spec, _scale(shape), float(rng.uniform(0.3, 0.7)))
    return _scene(spec, layout.labels, painters, {}, noise=STILL_NOISE)


def _black(spec: SceneSpec, shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    return _scene(spec, np.zeros(shape, np.uint8), {GROUND: black_painter}, {})


BUILDERS: dict[str, Callable[[SceneSpec, tuple[int, int], np.random.Generator], Scene]] = {
    "clouds": _clouds,
    "flash": _clouds,
    "water": _water,
    "sky_and_water": _sky_and_water,
    "trees": _trees,
    "stars": _stars,
    "pan": _pan,
    "zoom": _zoom,
    "shake": _shake,
    "still": _photo,
    "slideshow": _photo,
    "photo_steps": _photo_steps,
    "black": _black,
    "fade": _black,
}


def build_scene(spec: SceneSpec, shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """The renderable scene of `spec` for frames of `shape` (height, width)."""
    return BUILDERS[spec.kind](spec, shape, rng)
