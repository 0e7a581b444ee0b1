"""`tld train`: FGLA trained by streaming the field shards, with exact resume.

Passes over the data are numbered; pass ``e`` streams every clip once with the stream seeded by
(seed, e), so a pass is the same whether or not the run stopped in it. A checkpoint holds the
model, the optimizer, the step, the pass and the batches done in it, and the resolved config:
``--resume`` rebuilds pass ``e``, skips the batches already done and goes on, giving the same
losses as an uninterrupted run. Losses go to ``OUT/train_log.csv``.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from timelapse_d.checkpoints import CheckpointError
from timelapse_d.config import ConfigError
from timelapse_d.fgla.config import FGLAConfig, config_to_dict, fgla_config_from_dict
from timelapse_d.fgla.data import FGLAStream, StreamConfig, collate
from timelapse_d.fgla.losses import training_losses
from timelapse_d.fgla.model import FGLA
from timelapse_d.runs import atomic_path
from timelapse_d.torch_runtime import resolve_device

LOG = logging.getLogger("timelapse_d")
CHECKPOINT = "checkpoint.pt"
LOG_FILE = "train_log.csv"
LOG_COLUMNS = ("step", "pass", "loss", "frame", "flow", "tv", "samples_per_s")


@dataclass(frozen=True)
class TrainOptions:
    """Where and how long to train (the model and optimizer settings live in FGLAConfig)."""

    data: Path  # a build directory with shards/ and its precomputed fields
    out: Path  # checkpoint and logs
    steps: int
    resume: bool = False
    device: str = "cpu"
    seed: int = 0
    workers: int = 0  # DataLoader worker processes
    checkpoint_every: int = 100


@dataclass
class Position:
    """Where training is: optimizer steps done, the current pass, batches done in it."""

    step: int = 0
    data_pass: int = 0
    batches: int = 0


def train(config: FGLAConfig, options: TrainOptions) -> list[dict[str, float]]:
    """Train until ``options.steps`` optimizer steps; return the log rows of this run."""
    device = resolve_device(options.device)
    options.out.mkdir(parents=True, exist_ok=True)
    checkpoint = options.out / CHECKPOINT
    if options.resume and not checkpoint.is_file():
        raise ConfigError(f"--resume: no checkpoint at {checkpoint}")
    if not options.resume and checkpoint.is_file():
        raise ConfigError(f"{checkpoint} exists: pass --resume to continue it, or another --out")
    torch.manual_seed(options.seed)
    model = FGLA(config.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, betas=config.train.betas)
    position = Position()
    if options.resume:
        config, position = _load(checkpoint, model, optimizer, device)
    stream = FGLAStream(
        StreamConfig(str(options.data / "shards"), seed=options.seed, flip=config.data.flip)
    )
    rows: list[dict[str, float]] = []
    started, samples = time.monotonic(), 0
    while position.step < options.steps:
        for batch in _batches(stream, config, options, position):
            terms = training_losses(
                model,
                config,
                *(batch[k].to(device) for k in ("image_t", "image_t1", "flow", "masks")),
            )
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            optimizer.step()
            position.step += 1
            position.batches += 1
            samples += len(batch["key"])
            rate = samples / max(time.monotonic() - started, 1e-9)
            rows.append(_log_row(options.out, position, terms, rate))
            if position.step % options.checkpoint_every == 0 or position.step == options.steps:
                _save(checkpoint, model, optimizer, position, config)
            if position.step >= options.steps:
                return rows
        position.data_pass += 1
        position.batches = 0
    return rows


def _batches(
    stream: FGLAStream, config: FGLAConfig, options: TrainOptions, position: Position
) -> Iterator[dict[str, Any]]:
    """The batches of the current pass not done yet."""
    stream.set_epoch(position.data_pass)
    loader = DataLoader(
        stream, batch_size=config.train.batch_size, num_workers=options.workers, collate_fn=collate
    )
    for index, batch in enumerate(loader):
        if index >= position.batches:
            yield batch


def _log_row(out: Path, position: Position, terms: Any, rate: float) -> dict[str, float]:
    row = {
        "step": position.step,
        "pass": position.data_pass,
        "loss": float(terms.total.detach()),
        "frame": float(terms.frame.detach()),
        "flow": float(terms.flow.detach()),
        "tv": float(terms.tv.detach()),
        "samples_per_s": round(rate, 3),
    }
    path = out / LOG_FILE
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
    LOG.info("step %d: loss %.5f (%.2f samples/s)", position.step, row["loss"], rate)
    return row


def _save(
    path: Path,
    model: FGLA,
    optimizer: torch.optim.Optimizer,
    position: Position,
    config: FGLAConfig,
) -> None:
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "position": vars(position).copy(),
        "config": config_to_dict(config),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load(
    path: Path, model: FGLA, optimizer: torch.optim.Optimizer, device: torch.device
) -> tuple[FGLAConfig, Position]:
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise CheckpointError(f"{path}: not a readable training checkpoint ({exc})") from exc
    config = fgla_config_from_dict(payload["config"])
    model.load_state_dict(payload["model"], strict=True)
    optimizer.load_state_dict(payload["optimizer"])
    return config, Position(**payload["position"])
