"""Camera and scene motion from the single decode pass.

A pair starts at every ``pair_stride``-th frame i; its second frame is i+1, or the first later
frame that is not a copy of its predecessor (duplicated frames, see ``max_gap``), and values are
divided by the gap, so they stay per frame. Shi-Tomasi corners of the first frame, spread over a
grid, are tracked into the second with pyramidal Lucas-Kanade and checked backwards. The camera
model is the first of these that holds:

1. one RANSAC similarity explains ``rigid_share`` of the tracks (pan, zoom, roll, shake, or a
   static camera), unless many still tracks contradict it (water or sky moving over a fixed
   scene);
2. two rigid layers, one above the other, together explain ``rigid_share``: clouds drifting over
   a landscape; the lower layer, the ground, carries the camera (still or moving);
3. the translation of the lowest ``ground_share`` of the tracks, when it explains
   ``ground_fit`` of them within ``ground_tolerance`` of their median motion, or
   ``ground_cluster`` of them within ``inlier_threshold`` (rigid structure agrees within
   tracking noise even where a few sky tracks sit among it, as under a thin skyline; clouds
   spread wider), with at least 6 such tracks, and fewer than ``static_share`` of all tracks
   stand still against it: the ground, horizon and buildings at the bottom of a landscape
   carry the camera. Real cameras
   (parallax, rolling shutter, blur, compression) rarely fit one similarity within 0.25 px
   over the whole frame, and the sky above does what it likes; deforming clouds at the bottom
   of a sky-only frame do not move as one within that share of their motion, and water
   drifting below a fixed shore leaves the shore standing still;
4. the least-squares similarity of the tracks that barely move (within ``inlier_threshold``),
   when it stays within that threshold or explains ``rigid_share``: a fixed horizon under clouds
   that cover most of the frame, and slow sub-threshold drift;
5. otherwise no camera model: a sky full of deforming clouds is scene motion, not a pan. The
   pair reads as no camera motion, and is left out of the camera trajectory that camera shake
   follows (see :func:`clip_motion_scores`).

Whatever the camera model does not explain beyond ``inlier_threshold`` (tracking noise) is the
*residual*: scene motion. Per-pair values are in pixels of the analysis frame;
:func:`clip_motion_scores` divides by the frame width, so scores and thresholds do not depend on
the analysis resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import cv2
import numpy as np

REFERENCE_WIDTH = 256  # the width at which pixel-sized settings below were tuned
CHANGE_WIDTH = 64  # frame change is measured on frames area-averaged to this width
# Camera shake follows the pairs that have a camera model when at least this share of the
# clip's pairs has one: a pair without a model says nothing about where the camera went, and
# reading it as "still" hides the jitter of a hand-held camera whose pairs often find no model
# (parallax, rolling shutter, blur, compression). Below it, the clip's pairs are mostly
# deforming sky, and its few models (clouds taken for ground) are no trajectory.
TRAJECTORY_SHARE = 1 / 3


@dataclass(frozen=True)
class MotionConfig:
    """Measurement settings; lengths are fractions of the frame width unless said otherwise."""

    pair_stride: int = 3  # a pair starts at every frame i with i % pair_stride == 0
    max_features: int = 160  # Shi-Tomasi corners per pair, spread over grid x grid cells
    grid: int = 4
    quality_level: float = 0.01  # corner strength relative to the strongest corner of its cell
    min_corner_strength: float = 5e-4  # absolute floor (cv2.cornerMinEigenVal): flat cells add none
    min_distance: float = 1 / 40  # between corners: spreads them over the frame
    lk_window: int = 9  # Lucas-Kanade window in pixels at REFERENCE_WIDTH (scaled with width)
    lk_levels: int = 3  # pyramid levels
    max_fb_error: float = 0.5 / REFERENCE_WIDTH  # forward-backward error of a kept track
    inlier_threshold: float = 0.25 / REFERENCE_WIDTH  # a track fits a model within this
    static_share: float = 0.15  # share of tracks that makes a layer (half of it vetoes a model)
    rigid_share: float = 0.7  # share of tracks a moving camera model must explain
    # Step 3 of the module docstring, tuned on the calibration half of the real-footage corpus
    # (benchmarks/camera_corpus.py: real cameras under parallax, rolling shutter, blur and
    # compression, over skies and water that move on their own) and on the 48 sky tiles.
    ground_share: float = 0.4
    ground_fit: float = 0.8
    ground_tolerance: float = 0.3
    ground_cluster: float = 0.7
    min_tracks: int = 12  # fewer kept tracks make the pair invalid (black, flat frames)
    # Duplicated frames (a 8 fps time-lapse exported at 24 fps repeats each frame 3 times) would
    # make pairs of identical frames, so a pan would measure as no motion at all: a pair's
    # second frame is the first one that differs from its predecessor, up to `max_gap` frames
    # on. A step repeats the picture when it changes less than `repeat_ratio` of the largest
    # step among the next `max_gap` and less than `max_repeat_change` grey levels (mean over the
    # area-averaged frame; re-encoded duplicates of the sky tiles reach 0.8).
    max_gap: int = 6
    repeat_ratio: float = 0.25
    max_repeat_change: float = 1.5


@dataclass(frozen=True)
class PairMeasurements:
    """Columnar per-pair measurements: the pair is frames ``index`` and ``index + gap`` (gap > 1
    only past duplicated frames); motion values are per frame, in analysis pixels."""

    index: np.ndarray
    gap: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    zoom: np.ndarray
    rotation: np.ndarray
    residual: np.ndarray
    change: np.ndarray
    inlier_ratio: np.ndarray
    valid: np.ndarray
    modelled: np.ndarray  # a camera model held (steps 1-4 of the module docstring)

    def __len__(self) -> int:
        return len(self.index)

    def select(self, mask: np.ndarray) -> PairMeasurements:
        """The rows where ``mask`` is true."""
        return PairMeasurements(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})


_COLUMNS = [f.name for f in fields(PairMeasurements)]


def _similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (2x3) mapping ``src`` onto ``dst``."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - src_mean, dst - dst_mean
    norm = float((s**2).sum())
    if norm < 1e-9:
        a, b = 1.0, 0.0
    else:
        a = float((s * d).sum()) / norm
        b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (dst_mean - rot @ src_mean)[:, None]])


def _ransac(a: np.ndarray, b: np.ndarray, thr: float) -> tuple[np.ndarray | None, np.ndarray]:
    """RANSAC similarity of ``a`` -> ``b`` and its inlier mask."""
    model, inliers = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC, ransacReprojThreshold=thr)
    if model is None:
        return None, np.zeros(len(a), bool)
    return model, inliers.ravel().astype(bool)


def _quantile(values: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, interpolated linearly as numpy's default does,
    without the call overhead of ``np.quantile`` that outweighs the work on a few thousand
    values."""
    flat = values.ravel()
    position = q * (flat.size - 1)
    low = math.floor(position)
    high = min(low + 1, flat.size - 1)
    below, above = np.partition(flat, (low, high))[[low, high]].astype(np.float64)
    return float(below + (above - below) * (position - low))


def _apply(model: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ model[:, :2].T + model[:, 2]


class MotionAnalyzer:
    """Feed every decoded frame in order with :meth:`update`; read :meth:`pairs` at the end."""

    def __init__(self, config: MotionConfig = MotionConfig()) -> None:  # noqa: B008
        self.config = config
        self._window: list[tuple[int, np.ndarray, np.ndarray]] = []  # (index, grey, thumbnail)
        self._rows: list[tuple[float, ...]] = []

    def update(self, index: int, gray: np.ndarray, thumb: np.ndarray | None = None) -> None:
        """Take frame ``index`` (grey, and its :func:`change_thumbnail` when the caller has it);
        a pair starts at every ``pair_stride``-th frame."""
        if not self._window and index % self.config.pair_stride != 0:
            return
        self._window.append((index, gray, change_thumbnail(gray) if thumb is None else thumb))
        if len(self._window) > self.config.max_gap:
            self._measure_first_pair()

    def pairs(self) -> PairMeasurements:
        """All pairs, as columns; call after the last frame (it measures the pending ones)."""
        while len(self._window) > 1:
            self._measure_first_pair()
        table = np.array(self._rows, dtype=np.float64).reshape(-1, len(_COLUMNS))
        cols = dict(zip(_COLUMNS, table.T, strict=True))
        for name in ("index", "gap"):
            cols[name] = cols[name].astype(np.int64)
        for name in ("valid", "modelled"):
            cols[name] = cols[name].astype(bool)
        return PairMeasurements(**cols)

    def _measure_first_pair(self) -> None:
        """Measure the pair starting at the window's first frame; keep the next start on."""
        (start, g0, t0), *later = self._window
        end, g1, t1 = later[self._first_new(t0, [t for _, _, t in later])]
        self._rows.append((start, end - start, *self._measure(g0, g1, t0, t1, end - start)))
        next_start = -(-end // self.config.pair_stride) * self.config.pair_stride
        self._window = [frame for frame in self._window if frame[0] >= next_start]

    def _first_new(self, first: np.ndarray, later: list[np.ndarray]) -> int:
        """Position in ``later`` of the first frame that is not a repeat of its predecessor."""
        cfg = self.config
        previous = [first, *later[:-1]]
        steps = [mean_change(a, b) for a, b in zip(previous, later, strict=True)]
        limit = min(cfg.repeat_ratio * max(steps), cfg.max_repeat_change)
        return next((k for k, step in enumerate(steps) if step >= limit), 0)

    def _corners(self, g0: np.ndarray) -> np.ndarray:
        """Corners spread over a grid of cells, so every part of the frame has its say.

        Picking the strongest corners of the whole frame would let a bright star field or
        textured clouds take them all and leave the (static) foreground unseen. Corners are the
        local maxima of the minimum-eigenvalue map (Shi-Tomasi) at least ``min_distance`` apart;
        each cell keeps its strongest ones, above an absolute floor (flat cells add none) and
        above ``quality_level`` of the cell's best.
        """
        cfg = self.config
        height, width = g0.shape
        strength = cv2.cornerMinEigenVal(g0, 3)
        radius = max(1, int(cfg.min_distance * width))
        neighbourhood = cv2.dilate(strength, np.ones((2 * radius + 1,) * 2, np.uint8))
        floor = np.maximum(neighbourhood, np.float32(cfg.min_corner_strength))
        rows, cols = np.divmod(np.flatnonzero(strength >= floor), width)
        if rows.size == 0:
            return np.empty((0, 1, 2), np.float32)
        value = strength[rows, cols]
        cell = (rows * cfg.grid // height) * cfg.grid + cols * cfg.grid // width
        order = np.lexsort((-value, cell))
        cell, value, rows, cols = cell[order], value[order], rows[order], cols[order]
        first = np.searchsorted(cell, cell)  # index of each cell's strongest corner
        rank = np.arange(cell.size) - first
        per_cell = max(1, cfg.max_features // cfg.grid**2)
        keep = (rank < per_cell) & (value >= cfg.quality_level * value[first])
        points = np.stack([cols[keep], rows[keep]], axis=1).astype(np.float32)
        return points.reshape(-1, 1, 2)

    def _tracks(self, g0: np.ndarray, g1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Corners of ``g0`` and where they are in ``g1``, forward-backward consistent."""
        cfg = self.config
        width = g0.shape[1]
        p0 = self._corners(g0)
        if len(p0) == 0:
            return np.empty((0, 2), np.float32), np.empty((0, 2), np.float32)
        win = (int(round(cfg.lk_window * width / REFERENCE_WIDTH)) | 1,) * 2
        levels = cfg.lk_levels
        # OpenCV's stubs refuse nextPts=None, which OpenCV documents (it allocates the output).
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(g0, g1, p0, None, winSize=win, maxLevel=levels)  # type: ignore[call-overload]
        pb, st2, _ = cv2.calcOpticalFlowPyrLK(g1, g0, p1, None, winSize=win, maxLevel=levels)  # type: ignore[call-overload]
        fb = np.linalg.norm((pb - p0).reshape(-1, 2), axis=1)
        ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < cfg.max_fb_error * width)
        return p0.reshape(-1, 2)[ok], p1.reshape(-1, 2)[ok]

    def _camera_model(self, a: np.ndarray, b: np.ndarray, thr: float) -> np.ndarray | None:
        """The camera similarity (2x3) that best explains the tracks ``a`` -> ``b``; None when
        no model holds."""
        cfg = self.config
        rigid, inliers = _ransac(a, b, thr)
        if (
            rigid is not None
            and inliers.mean() >= cfg.rigid_share
            and not self._still_tracks_disagree(rigid, a, b, thr)
        ):
            return rigid  # one rigid motion explains almost every track: pan, zoom, shake, none
        layered = self._lower_layer(a, b, thr, rigid, inliers)
        if layered is not None:
            return layered  # ground and sky move apart: the ground carries the camera motion
        displacement = np.linalg.norm(b - a, axis=1)
        static = displacement < thr
        ground = self._ground(a, b, thr)
        if ground is not None and not self._still_tracks_disagree(
            ground, a, b, thr, cfg.static_share
        ):
            return ground  # the bottom of the frame moves as one: the ground carries the camera
        if static.sum() >= cfg.min_tracks:
            model = _similarity_lstsq(a[static], b[static])
            moved = np.linalg.norm(_apply(model, a) - a, axis=1)
            fits = np.linalg.norm(_apply(model, a) - b, axis=1) < thr
            if moved.max() < thr or fits.mean() >= cfg.rigid_share:
                return model
        return None

    def _lower_layer(
        self,
        a: np.ndarray,
        b: np.ndarray,
        thr: float,
        first: np.ndarray | None,
        inliers: np.ndarray,
    ) -> np.ndarray | None:
        """The similarity of the lower of two rigid layers that together explain most tracks
        (ground under drifting clouds, whether the camera moves or not), given the first RANSAC
        layer ``first`` and its inliers; None when the tracks do not split that way.
        """
        cfg = self.config
        if first is None:
            return None
        rest = ~inliers
        if rest.sum() < cfg.min_tracks:
            return None
        second, rest_inliers = _ransac(a[rest], b[rest], thr)
        if second is None:
            return None
        layers = [(first, inliers), (second, np.flatnonzero(rest)[rest_inliers])]
        shares = [len(a[idx]) / len(a) for _, idx in layers]
        if min(shares) < cfg.static_share or sum(shares) < cfg.rigid_share:
            return None
        upper, lower = sorted(layers, key=lambda layer: _quantile(a[layer[1], 1], 0.5))
        if _quantile(a[lower[1], 1], 0.1) < _quantile(a[upper[1], 1], 0.9):
            return None  # interleaved layers: clouds at several speeds, not ground under sky
        return None if self._still_tracks_disagree(lower[0], a, b, thr) else lower[0]

    def _ground(self, a: np.ndarray, b: np.ndarray, thr: float) -> np.ndarray | None:
        """The translation of the lowest ``ground_share`` of the tracks (by height in the
        frame) when they move as one: ``ground_fit`` of them within ``ground_tolerance`` of
        their median motion, or ``ground_cluster`` of them within ``thr`` of one track's
        motion (then the median of those); None otherwise. A translation only: a cloud deck
        converging on the horizon moves like a zoom about a point low in the frame, which a
        similarity would take for the ground."""
        cfg = self.config
        bottom = a[:, 1] >= _quantile(a[:, 1], 1 - cfg.ground_share)
        if bottom.sum() < cfg.min_tracks // 2:
            return None
        moves = b[bottom] - a[bottom]
        shift = np.median(moves, axis=0)
        tolerance = max(thr, cfg.ground_tolerance * _quantile(np.linalg.norm(moves, axis=1), 0.5))
        if np.mean(np.linalg.norm(moves - shift, axis=1) < tolerance) < cfg.ground_fit:
            agree = np.linalg.norm(moves[:, None] - moves[None], axis=2) < thr
            counts = agree.sum(axis=1)
            best = int(np.argmax(counts))
            if counts[best] < max(cfg.ground_cluster * len(moves), cfg.min_tracks // 2):
                return None
            shift = np.median(moves[agree[best]], axis=0)
        return np.hstack([np.eye(2), shift[:, None]])

    def _still_tracks_disagree(
        self, model: np.ndarray, a: np.ndarray, b: np.ndarray, thr: float, share: float = 0.0
    ) -> bool:
        """True when tracks that stand still, and that `model` cannot explain, are too many
        to ignore: then a part of the scene is fixed and `model` is water or sky moving, not the
        camera (a zoom explains its still centre; a pan or shake leaves nothing still). Too many:
        `share` of the tracks, by default half of ``static_share``."""
        still = np.linalg.norm(b - a, axis=1) < thr
        explained = np.linalg.norm(_apply(model, a) - b, axis=1) < thr
        return float((still & ~explained).mean()) >= (share or self.config.static_share / 2)

    def _measure(
        self, g0: np.ndarray, g1: np.ndarray, t0: np.ndarray, t1: np.ndarray, gap: int
    ) -> tuple[float, ...]:
        """tx, ty, zoom, rotation, residual (per frame over ``gap`` frames), change,
        inlier_ratio, valid, modelled of one pair."""
        height, width = g0.shape
        # How much the most-changing 1 % of the area-averaged frame changes: a small moving
        # region (a swaying tree in a still landscape) counts, where a frame mean would drown it.
        change = _quantile(cv2.absdiff(t0, t1), 0.99)
        a, b = self._tracks(g0, g1)
        if len(a) < self.config.min_tracks:
            return 0.0, 0.0, 0.0, 0.0, 0.0, change, 0.0, 0.0, 0.0
        thr = self.config.inlier_threshold * width
        found = self._camera_model(a, b, thr)
        model = np.eye(2, 3) if found is None else found
        errors = np.linalg.norm(_apply(model, a) - b, axis=1)
        center = np.array([[width / 2, height / 2]])
        tx, ty = (_apply(model, center) - center)[0]
        scale = math.hypot(model[0, 0], model[1, 0])
        rotation = math.atan2(model[1, 0], model[0, 0])
        explained = errors < thr
        residual = float(np.where(explained, 0.0, errors).mean())
        per_frame = (tx / gap, ty / gap, scale ** (1 / gap) - 1.0, rotation / gap, residual / gap)
        modelled = float(found is not None)
        return *map(float, per_frame), change, float(explained.mean()), 1.0, modelled


def change_thumbnail(gray: np.ndarray) -> np.ndarray:
    """The frame area-averaged to CHANGE_WIDTH wide: sensor noise and film grain average out,
    and the size no longer depends on the analysis resolution."""
    height, width = gray.shape
    size = (CHANGE_WIDTH, max(1, round(height * CHANGE_WIDTH / width)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def mean_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two same-sized 8-bit images, in grey levels."""
    return cv2.norm(a, b, cv2.NORM_L1) / a.size


def clip_motion_scores(
    pairs: PairMeasurements, start: int, end: int, frame_width: int
) -> dict[str, float]:
    """Camera and scene motion scores of the clip [start, end), in frame widths per frame.

    Translation, drift, zoom and rotation are medians over the pairs (a pair without a camera
    model counts as still: most pairs of a sky full of clouds have none); shake follows the
    camera trajectory (see TRAJECTORY_SHARE)."""
    inside = (pairs.index >= start) & (pairs.index + pairs.gap < end) & pairs.valid
    p = pairs.select(inside)
    n = len(p)
    if n == 0:
        keys = ["camera_translation", "camera_drift", "camera_zoom", "camera_rotation"]
        keys += ["camera_shake", "scene_motion", "frame_change"]
        return {**dict.fromkeys(keys, 0.0), "motion_pairs": 0.0}
    w = float(frame_width)
    t = np.stack([p.tx, p.ty], axis=1) / w
    return {
        "camera_translation": float(np.median(np.linalg.norm(t, axis=1))),
        "camera_drift": float(np.linalg.norm(np.median(t, axis=0))),
        "camera_zoom": float(np.median(np.abs(p.zoom))),
        "camera_rotation": float(np.median(np.abs(p.rotation))),
        "camera_shake": _shake(t[p.modelled] if p.modelled.mean() >= TRAJECTORY_SHARE else t),
        "scene_motion": float(np.median(p.residual)) / w,
        "frame_change": float(np.median(p.change)) / 255.0,
        "motion_pairs": float(n),
    }


def _shake(t: np.ndarray) -> float:
    """Jitter: robust RMS of the translation after removing its running median (5 pairs).

    The median of the squared deviations, scaled by 1/ln 2 to equal the mean square for
    Gaussian jitter, so one mis-measured pair (a bird, a flash) does not read as shake.
    """
    if len(t) < 3:
        return 0.0
    k = min(5, len(t))
    padded = np.pad(t, ((k // 2, k // 2), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, k, axis=0)
    trend = np.median(windows, axis=-1)
    squares = ((t - trend[: len(t)]) ** 2).sum(axis=1)
    return float(np.sqrt(np.median(squares) / math.log(2)))
