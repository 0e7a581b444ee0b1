"""Real footage under virtual cameras with known truth: the camera-motion calibration corpus.

Every segment takes a real scene from ``../shared/media`` that has its own motion (a cloud
time-lapse, a swaying tree, a meadow, a real pan, or a still whose sky or water is animated) and
films it with a virtual camera: a window over the scene that pans, tilts, zooms, rolls or is
hand-held (a slow random walk plus frame-to-frame jitter), optionally with parallax (the still's
foreground moves faster than the far layer behind it), rolling-shutter skew, motion blur and an
exposure ramp, then encodes it as H.264 at a given CRF. Negatives are the same scenes under a
fixed camera, or one that vibrates below a visible amount. Generation is deterministic: the
segment list and every random draw follow from the segment's name.

Sources belong to one half, ``calibration`` or ``held_out``, so thresholds tuned on one half are
judged on scenes they never saw.
"""

from __future__ import annotations

import functools
import glob
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from timelapse_d.media.decode import iter_frames
from timelapse_d.synth.corpus import encode_frames

FPS = 25.0
LENGTH = 60  # frames per segment
WIDE = (320, 180)  # output size (w, h) of wide scenes
SQUARE = (192, 192)  # of the 128 px sky tiles
WINDOW = 0.72  # the camera window's share of the scene's limiting dimension


@dataclass(frozen=True)
class Segment:
    """One corpus segment; speeds are in output frame widths (radians, relative scale) per
    frame."""

    name: str
    scene: str  # a key of SCENES
    camera: str  # static, vibration, pan, tilt, zoom, roll, handheld, parallax
    speed: float = 0.0
    parallax: float = 1.0  # far layer speed / foreground speed (1: no parallax)
    rolling_shutter: float = 0.0  # readout time as a share of the frame interval
    blur: float = 0.0  # exposure as a share of the frame interval
    exposure_ramp: float = 0.0  # gain goes from 1 - ramp to 1 + ramp
    time_step: int = 1  # scene frames per output frame (2, 3: faster clouds)
    crf: int = 20

    @property
    def camera_motion(self) -> bool:
        """The truth: a curator rejects this segment for camera motion."""
        return camera_is_moving(self.camera)

    @property
    def strong_scene_motion(self) -> bool:
        """Scene motion over much of the frame: clouds filling it, water, a swaying tree, or
        the scene played 2-3 times faster."""
        return self.time_step > 1 or self.scene.startswith("tile_") or self.scene in STRONG

    def to_dict(self) -> dict:
        facts = {"camera_motion": self.camera_motion, "half": HALF[self.scene]}
        return {**asdict(self), **facts, "strong_scene_motion": self.strong_scene_motion}


@dataclass(frozen=True)
class Layers:
    """One frame of a scene: the far layer, and the foreground with its mask (or None)."""

    far: np.ndarray
    near: np.ndarray | None = None
    near_mask: np.ndarray | None = None


SceneFn = Callable[[int], Layers]


def _media(root: Path, relative: str) -> Path:
    path = root / relative
    if not path.exists():
        raise FileNotFoundError(f"real media missing: {path}")
    return path


@functools.lru_cache(maxsize=8)
def _video(path: Path, width: int, crop: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """All frames of a video (optionally a crop x, y, w, h of it) at `width`, as uint8 BGR."""
    frames = []
    for frame in iter_frames(path):
        image = frame.image
        if crop is not None:
            x, y, w, h = crop
            image = image[y : y + h, x : x + w]
        height = round(image.shape[0] * width / image.shape[1])
        interpolation = cv2.INTER_AREA if width < image.shape[1] else cv2.INTER_CUBIC
        frames.append(cv2.resize(image, (width, height), interpolation=interpolation))
    return np.stack(frames)


def _ping_pong(frames: np.ndarray, index: int) -> np.ndarray:
    """Frame `index` of the video played forwards and backwards forever."""
    period = 2 * len(frames) - 2
    k = index % period
    return frames[k if k < len(frames) else period - k]


def _read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise RuntimeError(f"cannot read the image {path}")
    return image


def _still(path: Path, width: int) -> np.ndarray:
    image = _read_image(path)
    height = round(image.shape[0] * width / image.shape[1])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _ripple(image: np.ndarray, mask: np.ndarray, index: int, flow_down: float) -> np.ndarray:
    """Water: the masked texture displaced by travelling waves (and streaming down by
    `flow_down` px per frame, a waterfall), the rest of the still untouched."""
    h, w = mask.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = float(index)
    dx = 2.0 * np.sin(2 * np.pi * (y / 23.0 + t / 17.0)) + 1.2 * np.sin(
        2 * np.pi * (x / 41.0 - t / 11.0)
    )
    dy = 1.5 * np.sin(2 * np.pi * (x / 29.0 + t / 13.0)) - (flow_down * t) % 40.0
    water = cv2.remap(image, x + dx, y + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    weight = (mask.astype(np.float32) / 255.0)[..., None]
    return (water * weight + image * (1 - weight)).astype(np.uint8)


def _drifting_sky(image: np.ndarray, sky_rows: int, index: int, speed: float) -> np.ndarray:
    """The still's own sky drifting sideways at `speed` px per frame and slowly deforming."""
    h, w = image.shape[:2]
    y, x = np.mgrid[0:sky_rows, 0:w].astype(np.float32)
    t = float(index)
    sx = x - speed * t + 3.0 * np.sin(2 * np.pi * (y / 37.0 + t / 60.0))
    sy = y + 2.0 * np.sin(2 * np.pi * (x / 53.0 + t / 45.0))
    out = image.copy()
    sky = cv2.remap(image[:sky_rows], sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    out[:sky_rows] = sky
    return out


def _scenes(root: Path) -> dict[str, SceneFn]:
    """Scene name -> frame function (scene frame index -> layers). Frames load lazily."""
    cine = root / "stills" / "3d_cinemagraphy"

    def video(relative: str, width: int, crop: tuple[int, int, int, int] | None = None) -> SceneFn:
        return lambda i: Layers(_ping_pong(_video(_media(root, relative), width, crop), i))

    def tile(row: int, col: int) -> SceneFn:
        crop = (2 + 130 * col, 2 + 130 * row, 128, 128)
        return video("timelapse/sky_timelapse_grid8x6.mp4", 128, crop)

    @functools.lru_cache(maxsize=2)
    def cinemagraph(k: int) -> tuple[np.ndarray, np.ndarray]:
        image = _still(Path(glob.glob(str(cine / str(k) / "image.*"))[0]), 640)
        mask = cv2.resize(_read_image(cine / str(k) / "mask.png", 0), image.shape[1::-1])
        return image, mask

    def water(k: int, flow_down: float) -> SceneFn:
        def frame(i: int) -> Layers:
            image, mask = cinemagraph(k)
            return Layers(_ripple(image, mask, i, flow_down))

        return frame

    def sky_behind(k: int, sky: SceneFn) -> SceneFn:
        """The still's sky (its mask) replaced by a sky video: the land is the near layer."""

        def frame(i: int) -> Layers:
            image, mask = cinemagraph(k)
            far = sky(i).far
            scale = max(image.shape[1] / far.shape[1], image.shape[0] / far.shape[0])
            far = cv2.resize(far, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            far = far[: image.shape[0], : image.shape[1]]
            return Layers(far, image, 255 - mask)

        return frame

    def drifting(relative: str, sky_share: float, speed: float) -> SceneFn:
        def frame(i: int) -> Layers:
            image = _still(_media(root, relative), 640)
            return Layers(_drifting_sky(image, int(sky_share * image.shape[0]), i, speed))

        return frame

    sunset = video("timelapse/sunset-2024-06-22_timelapse.mp4", 960)
    scenes = {
        "sunset": sunset,
        "tree": video("camera_motion/static_tree.avi", 320),
        "meadow": video("camera_motion/static_meadow_yoga.mp4", 640),
        "waterfall": water(0, 1.5),
        "coast_sea": water(1, 0.0),
        "mountains_sunset": sky_behind(2, sunset),
        "mountains_tiles": sky_behind(2, tile(4, 1)),
        "coast_clouds": drifting("stills/coast_al_input.png", 0.55, 1.2),
        "hills_clouds": drifting("stills/hills_256.jpg", 0.3, 0.8),
    }
    scenes.update({f"tile_{r}{c}": tile(r, c) for r in range(6) for c in (0, 2, 4, 6)})
    return scenes


SCENE_NAMES = (
    "sunset", "tree", "meadow", "waterfall", "coast_sea", "mountains_sunset", "mountains_tiles",
    "coast_clouds", "hills_clouds", *(f"tile_{r}{c}" for r in range(6) for c in (0, 2, 4, 6)),
)  # fmt: skip
_CALIBRATION = {"sunset", "tree", "waterfall", "mountains_sunset", "hills_clouds"}
_CALIBRATION |= {f"tile_{r}{c}" for r in range(3) for c in (0, 2, 4, 6)}
HALF = {name: "calibration" if name in _CALIBRATION else "held_out" for name in SCENE_NAMES}
STRONG = {"tree", "waterfall", "coast_sea", "coast_clouds", "mountains_sunset", "mountains_tiles"}
# Scenes with a near layer (a still in front of a sky video): the ones parallax can use.
LAYERED = ("mountains_sunset", "mountains_tiles")


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def segments() -> list[Segment]:
    """The corpus: every camera over every scene, parameters drawn per segment from its name.

    Fixed cameras per scene: at the scene's pace, faster (every 2nd or 3rd scene frame: fast
    clouds), vibrating, and under an exposure ramp; moving cameras: three pans, two tilts, a
    zoom, a roll and three hand-held, plus two parallax pans over layered scenes. The sky tiles
    are fixed-camera only: sky fills them, and a camera over a sky with nothing fixed in it
    cannot be told from wind.
    """
    out: list[Segment] = []
    for scene in SCENE_NAMES:
        if scene.startswith("tile_"):
            kinds = ["static", "fast", "vibration"]
        else:
            kinds = ["static", "fast", "fast", "vibration", "ramp", "pan", "pan", "pan", "tilt"]
            kinds += ["tilt", "zoom", "roll", "handheld", "handheld", "handheld"]
        if scene in LAYERED:
            kinds += ["parallax", "parallax"]
        out.extend(_draw(f"{scene}-{k:02d}-{kind}", scene, kind) for k, kind in enumerate(kinds))
    return out


def _draw(name: str, scene: str, kind: str) -> Segment:
    """A segment's parameters, drawn from its name."""
    r = _rng(name)
    camera = {"fast": "static", "ramp": "static"}.get(kind, kind)
    moving = camera_is_moving(camera)
    speed = {
        "pan": r.uniform(1.5e-3, 12e-3),
        "tilt": r.uniform(1.5e-3, 8e-3),
        "zoom": r.choice([-1, 1]) * r.uniform(2e-3, 6e-3),
        "roll": r.choice([-1, 1]) * r.uniform(2e-3, 6e-3),
        "handheld": r.uniform(1e-3, 4e-3),
        "parallax": r.uniform(2e-3, 8e-3),
        "vibration": r.uniform(0.04, 0.1) / 256,
    }.get(camera, 0.0)
    return Segment(
        name, scene, camera, float(speed),
        parallax=float(r.uniform(0.15, 0.5)) if camera == "parallax" else 1.0,
        rolling_shutter=float(r.choice([0.0, 0.0, 0.6, 0.9])) if moving else 0.0,
        blur=float(r.choice([0.0, 0.0, 0.5])) if moving else 0.0,
        exposure_ramp=0.25 if kind == "ramp" else 0.0,
        time_step=int(r.choice([2, 3])) if kind == "fast" else 1,
        crf=int(r.choice([18, 23, 28, 34])),
    )  # fmt: skip


def camera_is_moving(camera: str) -> bool:
    """Whether a virtual camera of this kind moves visibly."""
    return camera not in ("static", "vibration")


def _trajectory(seg: Segment) -> np.ndarray:
    """Per frame (LENGTH + 1 rows, the last one for blur and rolling shutter): dx, dy (output
    widths), log scale, angle (rad), far-layer factor."""
    r = _rng(seg.name + "/path")
    t = np.arange(LENGTH + 1, dtype=np.float64)
    path = np.zeros((LENGTH + 1, 4))
    direction = r.choice([-1.0, 1.0])
    if seg.camera in ("pan", "parallax"):
        path[:, 0] = direction * _bounded(seg.speed * t, 0.25)
    elif seg.camera == "tilt":
        path[:, 1] = direction * _bounded(seg.speed * t, 0.12)
    elif seg.camera == "zoom":
        path[:, 2] = seg.speed * t
    elif seg.camera == "roll":
        path[:, 3] = seg.speed * t
    elif seg.camera == "handheld":
        walk = np.cumsum(r.normal(0, seg.speed, (LENGTH + 1, 2)), axis=0)
        smooth = cv2.GaussianBlur(walk, (1, 9), 0) if len(walk) > 9 else walk
        jitter = r.normal(0, seg.speed * 0.8, (LENGTH + 1, 2))
        path[:, :2] = np.clip(smooth + jitter, -0.2, 0.2)
        path[:, 3] = np.cumsum(r.normal(0, seg.speed * 0.3, LENGTH + 1))
    elif seg.camera == "vibration":
        path[:, :2] = r.normal(0, seg.speed, (LENGTH + 1, 2))
    return path


def _bounded(x: np.ndarray, amplitude: float) -> np.ndarray:
    """A triangle wave that follows `x` up to `amplitude`, then turns back: a camera sweeping
    to and fro inside the scene."""
    period = 4 * amplitude
    phase = np.mod(x + amplitude, period)
    return np.where(phase < 2 * amplitude, phase - amplitude, 3 * amplitude - phase)


def _interp(path: np.ndarray, t: float) -> np.ndarray:
    k = int(np.clip(np.floor(t), 0, len(path) - 2))
    f = t - k
    return path[k] * (1 - f) + path[k + 1] * f


def _matrix(
    state: np.ndarray,
    velocity: np.ndarray,
    scene_shape: tuple[int, int],
    out_size: tuple[int, int],
    factor: float,
    rolling_shutter: float,
) -> np.ndarray:
    """Inverse map (output pixel -> scene pixel) of the camera window; `factor` scales the
    camera's translation (a far layer moves less); rolling shutter shears rows read later."""
    sh, sw = scene_shape
    w, h = out_size
    k = WINDOW * min(sw / w, sh / h)  # scene pixels per output pixel at scale 1
    dx, dy, log_scale, angle = state
    scale = k * np.exp(-log_scale)
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    shift = np.array([dx, dy]) * w * k * factor
    centre = np.array([sw / 2, sh / 2]) + shift
    m = np.array([[c, -s, 0.0], [s, c, 0.0]])
    m[:, 2] = centre - m[:, :2] @ np.array([w / 2, h / 2])
    if rolling_shutter:
        skew = velocity[:2] * w * k * factor * rolling_shutter / h  # scene px per output row
        m[:, 1] += skew
        m[:, 2] -= skew * h / 2
    return m


def _warp(image: np.ndarray, m: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, m, out_size, flags=flags, borderMode=cv2.BORDER_REFLECT)


def _render(seg: Segment, layers: Layers, state_at: Callable[[float], np.ndarray], i: int,
            out_size: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """Frame `i` of the segment: each layer through its camera window, blurred over the
    exposure, composited far to near."""
    samples = np.linspace(-0.5, 0.5, 5) * seg.blur if seg.blur else np.zeros(1)
    velocity = state_at(i + 1) - state_at(i)
    stack = []
    for offset in samples:
        state = state_at(i + offset)
        far = _warp(layers.far, _matrix(state, velocity, layers.far.shape[:2], out_size,
                                        seg.parallax, seg.rolling_shutter), out_size)  # fmt: skip
        if layers.near is not None and layers.near_mask is not None:
            near_m = _matrix(state, velocity, layers.near.shape[:2], out_size, 1.0,
                             seg.rolling_shutter)  # fmt: skip
            near = _warp(layers.near, near_m, out_size).astype(np.float32)
            alpha = _warp(layers.near_mask, near_m, out_size).astype(np.float32)[..., None] / 255
            far = (near * alpha + far.astype(np.float32) * (1 - alpha)).astype(np.uint8)
        stack.append(far.astype(np.float32))
    frame = np.mean(stack, axis=0)
    gain = 1 + seg.exposure_ramp * (2 * i / (LENGTH - 1) - 1)
    return np.clip(frame * gain, 0, 255).astype(np.uint8)


def frames(seg: Segment, root: Path) -> Iterator[np.ndarray]:
    """The segment's frames (BGR uint8)."""
    scene = _scenes(root)[seg.scene]
    path = _trajectory(seg)
    out_size = out_shape(seg)[::-1]
    for i in range(LENGTH):
        layers = scene(i * seg.time_step)
        yield _render(seg, layers, lambda t: _interp(path, t), i, out_size)


def out_shape(seg: Segment) -> tuple[int, int]:
    """(height, width) of the segment's frames."""
    w, h = SQUARE if seg.scene.startswith("tile_") else WIDE
    return h, w


def write_segment(seg: Segment, root: Path, path: Path) -> Path:
    """Encode the segment as H.264 (its CRF) at `path`."""
    rgb = (cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames(seg, root))
    encode_frames(rgb, path, out_shape(seg), FPS, crf=seg.crf)
    return path
