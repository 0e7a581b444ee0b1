"""A small FGLA trained on CPU with the real `train` on the control corpus (sky and water
drifting in independent random directions over still ground), shared by the control and
animation tests through the session fixture ``control_checkpoint`` in conftest.py."""

from __future__ import annotations

from pathlib import Path

import torch

from timelapse_d.fgla.config import load_fgla_config
from timelapse_d.fgla.train import CHECKPOINT, TrainOptions, train
from timelapse_d.synth.control import write_control_build

SIZE = 64
SMALL = {
    "model.image_size": SIZE,
    "model.flow_size": SIZE // 2,
    "model.encoder.base_channels": 8,
    "model.encoder.max_channels": 16,
    "model.encoder.depth": 3,
    "model.generator.base_channels": 16,
    "model.generator.max_channels": 32,
    "model.generator.residual_blocks": 1,
    "model.generator.input_norm": False,
    "train.lr": 1e-3,
    "train.tensorboard": False,
    "train.sample_every": 0,
}
SEED = 0
CLIPS = 256  # training clips: random streams (SEED, 0) .. (SEED, CLIPS - 1)
STEPS = 600
HELD_OUT = 1_000_000  # streams (SEED, HELD_OUT + i): images and references never trained on


def train_control_model(root: Path, overrides: dict[str, object] | None = None) -> Path:
    """Train on CLIPS control clips for STEPS steps in one thread (two shared cores are far
    slower when oversubscribed); return the checkpoint's path."""
    write_control_build(root / "build", SEED, CLIPS, size=SIZE)
    config = load_fgla_config(overrides={**SMALL, **(overrides or {})})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, TrainOptions(root / "build", root / "run", steps=STEPS, seed=SEED))
    finally:
        torch.set_num_threads(threads)
    return root / "run" / CHECKPOINT
