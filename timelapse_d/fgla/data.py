"""FGLA training samples streamed from the shards: clips joined with their frames, flow and mask
fields by key, one random frame pair per clip per pass.

A sample is ``I_t`` and ``I_t+1`` (3 x S x S float32 in [-1, 1]), the backward flow ``F_t``
(2 x S x S float32, pixels: ``I_t+1(p) ~= I_t(p + F_t(p))``) and the six group masks ``M_t``
(6 x S x S float32 one-hot). With ``mirror`` (an augmentation, off by default), half the
samples are mirrored left-right: images and masks are mirrored, and the flow field is mirrored
and its horizontal component negated, so the mirrored flow still maps the mirrored frames onto
each other. (FGLA's own flip, which mirrors only the encoder's input, is applied in
:func:`timelapse_d.fgla.losses.training_losses`.)

Shards are split between ranks (``rank::world_size``) and then between DataLoader workers
(``worker::num_workers``); every split is disjoint. Randomness (shard order, pair choice,
mirroring, shuffle buffer) comes from one seed combined with the epoch, rank and worker, so a run is
reproducible and resumes exactly from (epoch, sample position).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from timelapse_d.segment.groups import GROUP_NAMES
from timelapse_d.shards import naming
from timelapse_d.shards.fields import decode_flow, decode_frames, decode_masks
from timelapse_d.shards.naming import FIELDS, field_shard
from timelapse_d.shards.reader import iter_joined
from timelapse_d.shards.tar import FieldMismatch


@dataclass(frozen=True)
class StreamConfig:
    """How the shards are streamed."""

    shard_dir: str
    seed: int = 0
    mirror: bool = False  # mirror half the samples (images, masks, flow)
    min_frame_change: float = 0.0  # drop drawn pairs whose mean |I_t+1 - I_t| is below this
    shuffle_buffer: int = 64  # samples mixed before they are yielded (0: shard order)
    resampled: bool = False  # endless stream drawing shards at random (with replacement)
    rank: int = 0
    world_size: int = 1


def clip_shards(shard_dir: Path) -> list[Path]:
    """The clip shards of a build, in order; ValueError when there are none."""
    shards = naming.clip_shards(Path(shard_dir))
    if not shards:
        raise ValueError(f"no clip shards in {shard_dir}: run `tld build` and `tld precompute`")
    return shards


def mirror_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample mirrored left-right; the flow's horizontal component changes sign."""
    flow = sample["flow"][..., ::-1].copy()
    flow[0] *= -1.0
    return {
        **sample,
        "image_t": sample["image_t"][..., ::-1].copy(),
        "image_t1": sample["image_t1"][..., ::-1].copy(),
        "masks": sample["masks"][..., ::-1].copy(),
        "flow": flow,
        "mirrored": True,
    }


def training_pair(
    joined: dict[str, Any], rng: random.Random, min_change: float = 0.0
) -> dict[str, Any] | None:
    """One random consecutive sampled pair of a joined clip; None when the clip has no pair
    or the drawn pair's mean absolute frame difference (frames in [-1, 1]) is below
    ``min_change`` (Animating Landscape skips such near-still pairs)."""
    flows = decode_flow(joined["flow"])
    if len(flows) == 0:
        return None
    j = rng.randrange(len(flows))
    image_t, image_t1 = (_to_unit(f) for f in decode_frames(joined["frames"], (j, j + 1)))
    if min_change > 0 and np.abs(image_t1 - image_t).mean() < min_change:
        return None
    groups = decode_masks(joined["mask"])["groups"][j]
    masks = (groups[None] == np.arange(len(GROUP_NAMES))[:, None, None]).astype(np.float32)
    return {
        "key": joined["__key__"],
        "pair": j,
        "image_t": image_t,
        "image_t1": image_t1,
        "flow": flows[j],
        "masks": masks,
        "mirrored": False,
    }


def _to_unit(frame: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 RGB -> (3, S, S) float32 in [-1, 1]."""
    return frame.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0


class FGLAStream(IterableDataset):
    """An iterable dataset of FGLA training samples; call :meth:`set_epoch` each epoch."""

    def __init__(self, config: StreamConfig) -> None:
        super().__init__()
        self.config = config
        self.shards = clip_shards(Path(config.shard_dir))
        missing = [
            field_shard(shard, field).name
            for shard in self.shards
            for field in FIELDS
            if not field_shard(shard, field).is_file()
        ]
        if missing:
            raise FieldMismatch(
                f"missing field shards ({', '.join(missing[:3])}...): run "
                "`tld precompute frames`, `flow` and `masks` on this build"
            )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _split(self) -> tuple[list[Path], int]:
        """This rank's and worker's shards, and a stream id for seeding."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        mine = self.shards[self.config.rank :: self.config.world_size][worker::workers]
        return mine, (self.config.rank * 1000 + worker)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        shards, stream = self._split()
        rng = random.Random(f"{self.config.seed}-{self.epoch}-{stream}")
        if self.config.resampled and shards:
            order: Iterator[Path] = (rng.choice(shards) for _ in itertools.count())
        else:
            order = iter(rng.sample(shards, len(shards)))
        buffer: list[dict[str, Any]] = []
        for shard in order:
            for joined in iter_joined(shard, FIELDS):
                sample = training_pair(joined, rng, self.config.min_frame_change)
                if sample is None:
                    continue
                if self.config.mirror and rng.random() < 0.5:
                    sample = mirror_sample(sample)
                buffer.append(sample)
                if len(buffer) > self.config.shuffle_buffer:
                    yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of samples into tensors (keys, pairs and mirror flags stay lists)."""
    batch: dict[str, Any] = {}
    for name in ("image_t", "image_t1", "flow", "masks"):
        batch[name] = torch.from_numpy(np.stack([s[name] for s in samples]))
    for name in ("key", "pair", "mirrored"):
        batch[name] = [s[name] for s in samples]
    return batch
