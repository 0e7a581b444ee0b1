"""`tld train`: FGLA (or its Animating Landscape baseline) trained by streaming the field
shards, with exact resume.

Passes over the data are numbered; pass ``e`` streams every clip once with the stream seeded by
(seed, e), so a pass is the same whether or not the run stopped in it. A checkpoint holds the
model, the optimizer, the step, the pass and the batches done in it, and the resolved config:
``--resume`` rebuilds pass ``e``, skips the batches already done and goes on, giving the same
losses as an uninterrupted run. Losses go to ``OUT/train_log.csv``.

Several processes (``torchrun --nproc_per_node N -m timelapse_d train ...``, or any launcher
that sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT) train one DistributedDataParallel
model: each rank streams its own disjoint share of the shards, gradients are averaged, rank 0
writes the log and the checkpoint, which keeps every rank's data position. An Animating
Landscape run also stores its codebook in the final checkpoint.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from timelapse_d.checkpoints import CheckpointError
from timelapse_d.errors import ConfigError
from timelapse_d.fgla.al import AnimatingLandscape
from timelapse_d.fgla.codebook import build_codebook, clip_codes, field_codes
from timelapse_d.fgla.config import FGLAConfig, config_to_dict, fgla_config_from_dict
from timelapse_d.fgla.data import FGLAStream, StreamConfig, collate
from timelapse_d.fgla.inference import MotionNetwork
from timelapse_d.fgla.losses import training_losses
from timelapse_d.fgla.monitor import TrainMonitor
from timelapse_d.fgla.motion_fields import CommonMotionFields
from timelapse_d.fgla.trained import build_model
from timelapse_d.runs import atomic_path
from timelapse_d.torch_runtime import autocast, resolve_device

LOG = logging.getLogger("timelapse_d")
CHECKPOINT = "checkpoint.pt"


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


def _join_process_group(device: torch.device) -> tuple[int, int]:
    """(rank, world size): joins the process group a launcher describes in the environment."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train(config: FGLAConfig, options: TrainOptions) -> list[dict[str, Any]]:
    """Train until ``options.steps`` optimizer steps; return this process's log rows (with the
    clip keys of each batch)."""
    device = resolve_device(options.device)
    rank, world = _join_process_group(device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    options.out.mkdir(parents=True, exist_ok=True)
    checkpoint = options.out / CHECKPOINT
    if options.resume and not checkpoint.is_file():
        raise ConfigError(f"--resume: no checkpoint at {checkpoint}")
    if not options.resume and checkpoint.is_file():
        raise ConfigError(f"{checkpoint} exists: pass --resume to continue it, or another --out")
    torch.manual_seed(options.seed)
    model = build_model(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, betas=config.train.betas)
    precision = training_precision(config.train.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    position = Position()
    fields = None
    if options.resume:
        config, position, fields = _load(checkpoint, model, optimizer, scaler, device, rank, world)
    if fields is None and _common_fields(config):
        fields = CommonMotionFields(config.model.flow_size)
    run = _Run(
        config=config,
        options=options,
        model=model,
        network=DistributedDataParallel(model) if world > 1 else model,
        optimizer=optimizer,
        scaler=scaler,
        precision=precision,
        stream=FGLAStream(
            StreamConfig(
                str(options.data / "shards"),
                seed=options.seed,
                mirror=config.data.mirror,
                min_frame_change=config.data.min_frame_change,
                rank=rank,
                world_size=world,
            )
        ),
        monitor=TrainMonitor(options.out, config, position.step, options.steps, rank),
        rank=rank,
        world=world,
        fields=fields,
    )
    try:
        return _loop(run, position)
    finally:
        run.monitor.close()


def training_precision(setting: str, device: torch.device) -> str:
    """The autocast precision for ``train.precision`` on ``device``: ``auto`` is bf16 on a GPU
    that has it, else fp16 (with loss scaling), and fp32 on CPU."""
    if setting != "auto":
        return setting
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


@dataclass
class _Run:
    """What one training process works with."""

    config: FGLAConfig
    options: TrainOptions
    model: MotionNetwork
    network: torch.nn.Module  # the model, wrapped in DDP when there are several processes
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    precision: str
    stream: FGLAStream
    monitor: TrainMonitor
    rank: int
    world: int
    fields: CommonMotionFields | None = None  # Animating Landscape's encoder input


def _loop(run: _Run, position: Position) -> list[dict[str, Any]]:
    config, options = run.config, run.options
    device = next(run.model.parameters()).device
    rows: list[dict[str, Any]] = []
    started, samples = time.monotonic(), 0
    while position.step < options.steps:
        for batch in _batches(run.stream, config, options, position):
            fields = run.fields.batch(batch["key"], device) if run.fields else None
            image_t, image_t1, flow, masks = (
                batch[k].to(device) for k in ("image_t", "image_t1", "flow", "masks")
            )
            with autocast(device, run.precision):
                terms = training_losses(
                    run.network, config, image_t, image_t1, flow, masks, encoder_flow=fields
                )
            if run.fields:
                run.fields.update(batch["key"], terms.predicted)
            run.optimizer.zero_grad(set_to_none=True)
            run.scaler.scale(terms.total).backward()
            run.scaler.step(run.optimizer)
            run.scaler.update()
            position.step += 1
            position.batches += 1
            samples += len(batch["key"])
            row = _log_row(position, terms, samples / max(time.monotonic() - started, 1e-9))
            run.monitor.record(row, run.model, batch)
            rows.append({**row, "keys": batch["key"]})
            if position.step >= options.steps:
                _save(run, _positions(position, run.world), _final_codebook(run))
                return rows
            if position.step % options.checkpoint_every == 0:
                _save(run, _positions(position, run.world))
        if position.batches == 0:  # counts the batches done before a resume in this pass too
            raise ConfigError(
                f"rank {run.rank} of {run.world} has no training data (fewer shards?)"
            )
        position.data_pass += 1
        position.batches = 0
    return rows


def _positions(position: Position, world: int) -> list[dict[str, int]]:
    """Every rank's data position (all ranks take part)."""
    mine = vars(position).copy()
    if world == 1:
        return [mine]
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, mine)
    return gathered


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


def _log_row(position: Position, terms: Any, rate: float) -> dict[str, float]:
    row = {
        "step": position.step,
        "pass": position.data_pass,
        "loss": float(terms.total.detach()),
        "frame": float(terms.frame.detach()),
        "flow": float(terms.flow.detach()),
        "tv": float(terms.tv.detach()),
        "samples_per_s": round(rate, 3),
    }
    LOG.debug("step %d: loss %.5f (%.2f samples/s)", position.step, row["loss"], rate)
    return row


def _common_fields(config: FGLAConfig) -> bool:
    """Whether the encoder reads common motion fields (Animating Landscape's training)."""
    return not config.model.regional and config.model.al.common_motion_field


def _final_codebook(run: _Run) -> torch.Tensor | None:
    """Animating Landscape's codebook of the trained model (rank 0 only; None for FGLA): one
    code per training clip (of its latest common motion field, or the mean code of its stored
    flow), reduced by k-means to at most ``model.al.codebook_size``."""
    model, model_config = run.model, run.config.model
    fields = _gathered_fields(run)
    if not isinstance(model, AnimatingLandscape) or run.rank != 0:
        return None
    if fields is not None:
        codes = field_codes(model, fields)
    else:
        codes = clip_codes(model, run.options.data / "shards", model_config)
    centres = build_codebook(codes, model_config.al.codebook_size, run.options.seed)
    LOG.info("codebook: %d codes from %d training clips", len(centres), len(codes))
    return torch.from_numpy(centres).float()


def _gathered_fields(run: _Run) -> dict[str, torch.Tensor] | None:
    """Every rank's common motion fields (all ranks take part), None without them."""
    if run.fields is None:
        return None
    if run.world == 1:
        return run.fields.fields
    gathered: list[Any] = [None] * run.world
    dist.all_gather_object(gathered, run.fields.fields)
    return {key: field for part in gathered for key, field in part.items()}


def _save(run: _Run, positions: list[dict[str, int]], codebook: torch.Tensor | None = None) -> None:
    fields = _gathered_fields(run)
    if run.rank != 0:
        return
    payload = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "positions": positions,
        "config": config_to_dict(run.config),
    }
    if codebook is not None:
        payload["codebook"] = codebook
    if fields is not None:
        payload["motion_fields"] = fields
    with atomic_path(run.options.out / CHECKPOINT) as tmp:
        torch.save(payload, tmp)


def _load(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    rank: int,
    world: int,
) -> tuple[FGLAConfig, Position, CommonMotionFields | None]:
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise CheckpointError(f"{path}: not a readable training checkpoint ({exc})") from exc
    positions = payload["positions"]
    if len(positions) != world:
        raise ConfigError(f"{path} was written by {len(positions)} processes; resume with as many")
    config = fgla_config_from_dict(payload["config"])
    model.load_state_dict(payload["model"], strict=True)
    optimizer.load_state_dict(payload["optimizer"])
    if payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    fields = payload.get("motion_fields")
    if fields is not None:
        fields = CommonMotionFields(config.model.flow_size, fields)
    return config, Position(**positions[rank]), fields
