"""What `tld train` reports while it runs (rank 0 only): the CSV log, TensorBoard scalars, a
progress bar with samples/s, and sample animations.

Every ``train.sample_every`` steps the model animates the first training image this run saw,
driven by the latents of that image's own flow, into ``OUT/samples/step-NNNNNNN.mp4``: a quick
look at what the generator has learned. Sampling runs without gradients and leaves the random
state untouched, so it does not change the training losses.
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from timelapse_d.fgla.animation import uint8_frames, write_video
from timelapse_d.fgla.config import FGLAConfig
from timelapse_d.fgla.inference import MotionNetwork, Reference, chosen_motion, motion_frames
from timelapse_d.fgla.warp import pixel_to_grid
from timelapse_d.segment.groups import GROUP_NAMES

LOG = logging.getLogger("timelapse_d")
LOG_FILE = "train_log.csv"
LOG_COLUMNS = ("step", "pass", "loss", "frame", "flow", "tv", "samples_per_s")
TENSORBOARD = "tensorboard"
SAMPLES = "samples"


class TrainMonitor:
    """Reports of one training run; a no-op on ranks other than 0."""

    def __init__(self, out: Path, config: FGLAConfig, first_step: int, steps: int, rank: int):
        self.out, self.config, self.active = out, config, rank == 0
        self._sample: dict[str, torch.Tensor] | None = None
        self._writer = self._tensorboard() if self.active and config.train.tensorboard else None
        self._bar = tqdm(
            total=steps,
            initial=first_step,
            unit="step",
            desc="train",
            disable=not self.active or not sys.stderr.isatty(),
        )

    def _tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            LOG.warning(
                "train.tensorboard: the tensorboard package is not installed (pip install "
                "'timelapse-d[tensorboard]'); losses go to %s only",
                self.out / LOG_FILE,
            )
            return None
        return SummaryWriter(str(self.out / TENSORBOARD))

    def record(self, row: dict[str, float], model: MotionNetwork, batch: dict[str, Any]) -> None:
        """Log one optimizer step; animate a sample when one is due."""
        if not self.active:
            return
        if self._sample is None:
            self._sample = {k: batch[k][:1].clone() for k in ("image_t", "flow", "masks")}
        _append_csv(self.out / LOG_FILE, row)
        step = int(row["step"])
        if self._writer is not None:
            for name in ("loss", "frame", "flow", "tv", "samples_per_s"):
                self._writer.add_scalar(f"train/{name}", row[name], step)
        self._bar.update(step - self._bar.n)
        self._bar.set_postfix(loss=f"{row['loss']:.4f}", samples_s=f"{row['samples_per_s']:.1f}")
        every = self.config.train.sample_every
        if every and step % every == 0:
            self.write_sample(model, step)

    def write_sample(self, model: MotionNetwork, step: int) -> Path:
        """Animate the held training image with its own motion; returns the video's path."""
        assert self._sample is not None
        device = next(model.parameters()).device
        image, flow_px, masks = (self._sample[k].to(device) for k in ("image_t", "flow", "masks"))
        cfg = self.config.model
        was_training = model.training
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            own_motion = Reference(pixel_to_grid(flow_px, cfg.align_corners), masks)
            motion = chosen_motion(model, dict.fromkeys(GROUP_NAMES, own_motion))
            frames = list(
                motion_frames(
                    model,
                    self.config,
                    image,
                    image,
                    lambda _: masks,
                    motion,
                    self.config.train.sample_frames,
                )
            )
        model.train(was_training)
        path = self.out / SAMPLES / f"step-{step:07d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(uint8_frames(frames), path)
        return path

    def close(self) -> None:
        self._bar.close()
        if self._writer is not None:
            self._writer.close()


def _append_csv(path: Path, row: dict[str, float]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
