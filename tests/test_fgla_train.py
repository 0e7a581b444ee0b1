"""`tld train` on the synthetic build's truth fields: the loss falls, and a resumed run gives
the same losses as an uninterrupted one."""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from timelapse_d.errors import ConfigError
from timelapse_d.fgla.config import load_fgla_config
from timelapse_d.fgla.monitor import LOG_FILE, SAMPLES, TENSORBOARD
from timelapse_d.fgla.train import TrainOptions, train

SMALL = {
    "model.encoder.base_channels": 8,
    "model.encoder.max_channels": 16,
    "model.generator.base_channels": 8,
    "model.generator.max_channels": 16,
    "model.generator.residual_blocks": 1,
    "train.batch_size": 4,
}


def test_resume_continues_with_the_same_losses(fields_build: Path, tmp_path: Path) -> None:
    config = load_fgla_config(overrides=SMALL)
    straight = train(config, TrainOptions(fields_build, tmp_path / "straight", steps=5))
    # 12 clips in batches of 4: step 4 starts the second pass over the data. The resumed run
    # also animates samples (at steps 2 and 4), which must not change its losses.
    sampling = load_fgla_config(overrides={**SMALL, "train.sample_every": 2})
    first = train(sampling, TrainOptions(fields_build, tmp_path / "resumed", steps=2))
    second = train(config, TrainOptions(fields_build, tmp_path / "resumed", steps=5, resume=True))
    resumed = first + second
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5]
    assert [r["pass"] for r in straight] == [0, 0, 0, 1, 1]
    for a, b in zip(straight, resumed, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-7), (a, b)
    with open(tmp_path / "resumed" / LOG_FILE) as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4, 5]
    samples = sorted(p.name for p in (tmp_path / "resumed" / SAMPLES).iterdir())
    assert samples == ["step-0000002.mp4", "step-0000004.mp4"]
    with av.open(str(tmp_path / "resumed" / SAMPLES / samples[-1])) as video:
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    size = sampling.model.image_size
    assert len(frames) == sampling.train.sample_frames and frames[0].shape == (size, size, 3)
    assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 0.5  # the picture moves
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "resumed" / TENSORBOARD))
    events.Reload()
    losses = [e.value for e in events.Scalars("train/loss")]
    assert losses == pytest.approx([r["loss"] for r in resumed], rel=1e-5)


def test_resume_at_the_end_of_a_pass_continues_with_the_next(
    fields_build: Path, tmp_path: Path
) -> None:
    config = load_fgla_config(overrides=SMALL)
    straight = train(config, TrainOptions(fields_build, tmp_path / "straight", steps=5))
    # 12 clips in batches of 4: the checkpoint of step 3 ends pass 0
    first = train(config, TrainOptions(fields_build, tmp_path / "resumed", steps=3))
    second = train(config, TrainOptions(fields_build, tmp_path / "resumed", steps=5, resume=True))
    assert [r["pass"] for r in first + second] == [0, 0, 0, 1, 1]
    for a, b in zip(straight, first + second, strict=True):
        assert a["keys"] == b["keys"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-7), (a, b)


def test_loss_falls_and_runs_are_not_overwritten(fields_build: Path, tmp_path: Path) -> None:
    config = load_fgla_config(overrides={**SMALL, "train.lr": 1e-3})
    rows = train(config, TrainOptions(fields_build, tmp_path / "run", steps=12))
    early = sum(r["loss"] for r in rows[:3]) / 3
    late = sum(r["loss"] for r in rows[-3:]) / 3
    assert late < early, [round(r["loss"], 4) for r in rows]
    with pytest.raises(ConfigError, match="--resume"):
        train(config, TrainOptions(fields_build, tmp_path / "run", steps=13))
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(config, TrainOptions(fields_build, tmp_path / "none", steps=1, resume=True))


def _ddp_rank(rank: int, port: int, data: Path, out: Path, results: Any, rank1_closed: Any) -> None:
    """One process of a 2-process gloo run (spawned: module-level).

    The ranks leave in order, whatever the machine's load: both wait at a barrier, rank 1
    closes its side of the group first, and rank 0 (which hosts the group's store) closes and
    exits last. A rank that closed or exited while the other still used the group aborted it
    ("terminate called without an active exception").
    """
    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    rows = train(load_fgla_config(overrides=SMALL), TrainOptions(data, out, steps=2))
    results.put((rank, [key for row in rows for key in row["keys"]], len(rows)))
    dist.barrier()
    if rank == 0:
        rank1_closed.wait(timeout=300)
    dist.destroy_process_group()
    if rank == 1:
        rank1_closed.set()


@pytest.mark.slow
def test_two_process_gloo_run_trains_on_disjoint_data(fields_build: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("spawn")
    results, rank1_closed = context.SimpleQueue(), context.Event()
    workers = [
        context.Process(
            target=_ddp_rank, args=(r, port, fields_build, tmp_path, results, rank1_closed)
        )
        for r in (0, 1)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0]
    seen = dict((rank, (keys, steps)) for rank, keys, steps in (results.get(), results.get()))
    assert seen[0][1] == seen[1][1] == 2
    assert seen[0][0] and seen[1][0] and not set(seen[0][0]) & set(seen[1][0])
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert len(checkpoint["positions"]) == 2 and checkpoint["positions"][0]["step"] == 2
    with open(tmp_path / LOG_FILE) as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2]  # rank 0 only
