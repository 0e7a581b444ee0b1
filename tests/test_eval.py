"""`tld eval`: the paper's protocol run on stored fields, several checkpoints side by side."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from control_model import SMALL_CONFIG

from timelapse_d.cli import cli
from timelapse_d.fgla.config import load_fgla_config
from timelapse_d.fgla.protocol import EvalOptions, evaluate
from timelapse_d.fgla.train import CHECKPOINT, TrainOptions, train
from timelapse_d.synth.control import write_control_build

TINY = {"model.image_size": 48, "model.flow_size": 24, "train.batch_size": 2}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A build of 6 control clips (5 frames each), a model trained two steps on it, and the
    same model with its last layer zeroed: it generates no motion at all."""
    root = tmp_path_factory.mktemp("eval")
    write_control_build(root / "build", seed=2, clips=6, size=48, frames=5)
    train(load_fgla_config(SMALL_CONFIG, TINY), TrainOptions(root / "build", root / "moving", 2))
    payload = torch.load(root / "moving" / CHECKPOINT, weights_only=True)
    for key in ("generator.out.weight", "generator.out.bias"):
        payload["model"][key].zero_()
    (root / "still").mkdir()
    torch.save(payload, root / "still" / CHECKPOINT)
    return {name: root / name / CHECKPOINT for name in ("moving", "still")} | {
        "build": root / "build"
    }


def test_a_model_without_motion_scores_perfectly_and_a_moving_one_does_not(
    models: dict[str, Path], tmp_path: Path
) -> None:
    options = EvalOptions(
        data=models["build"],
        checkpoints={"moving": models["moving"], "still": models["still"]},
        out=tmp_path,
        split="all",
        samples=2,
        frames=4,
        metrics=("psnr", "ssim"),
    )
    results = evaluate(options)
    still, moving = results["models"]["still"], results["models"]["moving"]
    assert results["clips"] == 6 and still["step"] == moving["step"] == 2
    assert math.isinf(still["psnr"]) and still["ssim"] == pytest.approx(1.0)
    assert 15 < moving["psnr"] < 80 and moving["ssim"] < 1.0
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["models"]["moving"]["psnr"] == pytest.approx(moving["psnr"])
    table = (tmp_path / "eval.md").read_text().splitlines()
    assert table[2] == "| model | step | PSNR ↑ | SSIM ↑ |"
    assert table[4].startswith("| moving | 2 |") and table[5].startswith("| still | 2 | inf")
    assert evaluate(options)["models"] == results["models"]  # same references every run


def test_eval_needs_a_split_or_says_how_to_make_one(
    models: dict[str, Path], tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--checkpoint",
            str(models["moving"]),
            "--data",
            str(models["build"]),
            "--metrics",
            "psnr",
            "--out",
            str(tmp_path),
        ],
    )
    assert "not a finished build" in str(result.exception)
