"""A corpus for FGLA's fine-grained control: sky and water drift in independent random 2-D
directions over still ground, written straight into a build directory's shards.

The demo kinds of :mod:`timelapse_d.synth.scenes` move regions horizontally only, so a model
trained on them never sees a region drift up or down. Here every clip draws its own sky drift
and, in ``water_share`` of the clips, its own water drift (the other clips have no water); in
``still_share`` of the cases a region holds still instead, so the latent of a still region is
learned on sky and water too, not only on the ground. Frames are rendered at the field size and
the fields are the exact truth, so no video is encoded: each sample of
``shards/clips-NNNNNN.tar`` is a JSON row only, and the frames, flow and mask field shards
beside it have the formats of :mod:`timelapse_d.shards.fields`, which
:class:`timelapse_d.fgla.data.FGLAStream` reads.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from timelapse_d.runs import write_atomic
from timelapse_d.shards.fields import encode_flow, encode_frames, encode_masks, write_field_shard
from timelapse_d.shards.naming import FIELDS, field_shard, shard_name
from timelapse_d.shards.tar import write_samples
from timelapse_d.synth.fields import region_group_table
from timelapse_d.synth.landscape import (
    DAY_PALETTES,
    GROUND,
    SKY,
    WATER,
    Painter,
    ground_painter,
    make_layout,
    sky_painter,
    water_painter,
)
from timelapse_d.synth.motion import Drift, Motion, backward_flow, static_camera
from timelapse_d.synth.render import Scene, render

Vector = tuple[float, float]
TEXTURE_WIDTH = 128.0  # textures are painted as the demo kinds paint a frame this wide
STILL: Vector = (0.0, 0.0)
GROUP_OF_LABEL = region_group_table()  # region label -> FGLA group id


@dataclass(frozen=True)
class ControlClip:
    """One rendered clip and its exact fields."""

    frames: np.ndarray  # (T, S, S, 3) uint8 RGB
    flow: np.ndarray  # (T - 1, 2, S, S) float32 backward flow in pixels
    groups: np.ndarray  # (T, S, S) uint8 FGLA group ids


def random_drift(rng: np.random.Generator, speed: Vector, still_share: float = 0.0) -> Vector:
    """A drift (vx, vy) in pixels per frame: a uniform direction and a speed in [low, high),
    or :data:`STILL` with probability ``still_share``."""
    angle = rng.uniform(0.0, 2.0 * math.pi)
    magnitude = rng.uniform(*speed)
    if rng.random() < still_share:
        return STILL
    return magnitude * math.cos(angle), magnitude * math.sin(angle)


def render_clip(
    rng: np.random.Generator, size: int, frames: int, sky: Vector, water: Vector | None
) -> ControlClip:
    """A random landscape of ``size`` x ``size`` whose sky content drifts by ``sky`` and whose
    lake (absent when ``water`` is None) drifts by ``water`` pixels per frame; ground still."""
    shape = (size, size)
    scale = size / TEXTURE_WIDTH
    palette = DAY_PALETTES[int(rng.integers(len(DAY_PALETTES)))]
    layout = make_layout(rng, shape, float(rng.uniform(0.4, 0.6)), water=water is not None)
    painters: dict[int, Painter] = {
        SKY: sky_painter(layout, palette, scale, float(rng.uniform(0.4, 0.75))),
        GROUND: ground_painter(layout, palette, scale),
    }
    motions: dict[int, Motion] = {SKY: Drift(*sky)}
    if water is not None:
        painters[WATER] = water_painter(layout, palette, scale)
        motions[WATER] = Drift(*water)
    cameras = static_camera(frames)
    scene = Scene(layout.labels, cameras, motions, painters, np.ones(frames))
    images = np.stack(list(render(scene, shape, rng)))
    flow = [backward_flow(layout.labels, cameras, motions, k, shape) for k in range(frames - 1)]
    groups = np.broadcast_to(GROUP_OF_LABEL[layout.labels], (frames, *shape))
    return ControlClip(images, np.stack(flow).transpose(0, 3, 1, 2), groups)


def write_control_build(
    out: Path,
    seed: int,
    clips: int,
    *,
    size: int = 64,
    frames: int = 3,
    speed: Vector = (0.3, 0.8),
    water_share: float = 0.75,
    still_share: float = 0.2,
    clips_per_shard: int = 32,
) -> list[str]:
    """Write ``clips`` random clips (clip ``i`` drawn from ``(seed, i)``) as a build at
    ``out``: ``out/shards`` holds clip shards and their frames, flow and mask field shards.
    Return the clip keys in order."""
    shard_dir = Path(out) / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    keys = [f"control-{i:06d}" for i in range(clips)]
    meta = {"backend": "truth", "stride": 1, "size": size, "clip_frames": frames}
    for first in range(0, clips, clips_per_shard):
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name in ("clips", *FIELDS)}
        for index in range(first, min(first + clips_per_shard, clips)):
            rng = np.random.default_rng([seed, index])
            sky = random_drift(rng, speed, still_share)
            water = random_drift(rng, speed, still_share) if rng.random() < water_share else None
            clip = render_clip(rng, size, frames, sky, water)
            row = {"clip_id": keys[index], "num_frames": frames, "sky": sky, "water": water}
            members = {
                "clips": {"json": json.dumps(row, sort_keys=True).encode()},
                "frames": encode_frames(list(range(frames)), clip.frames, meta),
                "flow": encode_flow(clip.flow, {**meta, "direction": "backward"}),
                "mask": encode_masks(clip.groups, meta),
            }
            for name, sample in members.items():
                samples[name].append({"__key__": keys[index], **sample})
        _write_shards(shard_dir / shard_name(first // clips_per_shard), samples)
    return keys


def _write_shards(clip_shard: Path, samples: dict[str, list[dict[str, Any]]]) -> None:
    """The clip shard, then its field shards (each read back and checked against its keys)."""
    keys = [sample["__key__"] for sample in samples["clips"]]

    def write(fh: IO[bytes]) -> None:
        write_samples(fh, samples["clips"])

    write_atomic(clip_shard, write)
    for name in FIELDS:
        write_field_shard(field_shard(clip_shard, name), samples[name], keys)
