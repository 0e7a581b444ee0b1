"""A small FGLA trained on CPU with the real `train` on the control corpus (sky and water
drifting in independent random directions over still ground), shared by the control and
animation tests through the session fixture ``control_checkpoint`` in conftest.py."""

from __future__ import annotations

from pathlib import Path

import torch

from timelapse_d.fgla.config import load_fgla_config
from timelapse_d.fgla.train import CHECKPOINT, TrainOptions, train
from timelapse_d.synth.control import write_control_build

REPO = Path(__file__).resolve().parents[1]

SIZE = 64  # the image size of timelapse_d/model_configs/fgla_small.yaml
SMALL_CONFIG = REPO / "timelapse_d" / "model_configs" / "fgla_small.yaml"
SEED = 0
CLIPS = 256  # training clips: random streams (SEED, 0) .. (SEED, CLIPS - 1)
STEPS = 600
HELD_OUT = 1_000_000  # streams (SEED, HELD_OUT + i): images and references never trained on


def train_control_model(root: Path, overrides: dict[str, object] | None = None) -> Path:
    """Train on CLIPS control clips for STEPS steps in one thread (two shared cores are far
    slower when oversubscribed); return the checkpoint's path."""
    write_control_build(root / "build", SEED, CLIPS, size=SIZE)
    config = load_fgla_config(SMALL_CONFIG, overrides)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, TrainOptions(root / "build", root / "run", steps=STEPS, seed=SEED))
    finally:
        torch.set_num_threads(threads)
    return root / "run" / CHECKPOINT
