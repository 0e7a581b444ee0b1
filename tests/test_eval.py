"""`tld eval`: the paper's protocol run on stored fields, several checkpoints side by side."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from control_model import SMALL_CONFIG
from metric_weights import metric_networks, write_metric_files

from timelapse_d.cli import cli
from timelapse_d.errors import ConfigError
from timelapse_d.fgla.config import load_fgla_config
from timelapse_d.fgla.evaluation import FVD_NOTE, EvalOptions, evaluate
from timelapse_d.fgla.evaluation import test_clips as split_clips  # not a test
from timelapse_d.fgla.train import CHECKPOINT, TrainOptions, train
from timelapse_d.fgla.trained import load_trained, sample_codes
from timelapse_d.metrics import i3d, inception
from timelapse_d.metrics.features import frame_features, load_feature_nets
from timelapse_d.metrics.frechet import RunningGaussian, frechet_distance, gaussian_stats
from timelapse_d.metrics.pixels import PSNR_CAP
from timelapse_d.synth.control import write_control_build
from timelapse_d.weights import MissingWeights

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
    al = load_fgla_config(SMALL_CONFIG.with_name("al_small.yaml"), TINY)
    train(al, TrainOptions(root / "build", root / "al", 2))
    return {name: root / name / CHECKPOINT for name in ("moving", "still", "al")} | {
        "build": root / "build"
    }


def test_animating_landscape_is_scored_on_codes_drawn_from_its_codebook(
    models: dict[str, Path], tmp_path: Path
) -> None:
    trained = load_trained(models["al"])
    assert trained.codebook is not None and 2 <= len(trained.codebook) <= 4  # clips trained on

    def entries(seed: str) -> list[int]:
        picks = sample_codes(trained, 8, seed)
        assert picks is not None and all(m.moving.all() for m in picks)
        book = trained.codebook
        return [next(i for i, c in enumerate(book) if torch.equal(m.at(0)[0], c)) for m in picks]

    assert entries("0-1") == entries("0-1") and len(set(entries("0-1"))) >= 2
    options = pixel_options(models, tmp_path, ("al", "moving"), samples=3)
    scores = evaluate(options)["models"]
    assert 15 < scores["al"]["psnr"] < 80 and 0 < scores["al"]["ssim"] < 1.0
    assert scores["al"]["psnr"] != scores["moving"]["psnr"]


def pixel_options(
    models: dict[str, Path], out: Path, names: tuple[str, ...], samples: int
) -> EvalOptions:
    """Masked PSNR and SSIM of the named models over every clip of the build, 4 frames."""
    return EvalOptions(
        data=models["build"],
        checkpoints={name: models[name] for name in names},
        out=out,
        split="all",
        samples=samples,
        frames=4,
        metrics=("psnr", "ssim"),
    )


def test_a_model_without_motion_scores_perfectly_and_a_moving_one_does_not(
    models: dict[str, Path], tmp_path: Path
) -> None:
    options = pixel_options(models, tmp_path, ("moving", "still"), samples=2)
    results = evaluate(options)
    still, moving = results["models"]["still"], results["models"]["moving"]
    assert results["clips"] == 6 and still["step"] == moving["step"] == 2
    assert still["psnr"] == pytest.approx(PSNR_CAP) and still["ssim"] == pytest.approx(1.0)
    assert 15 < moving["psnr"] < 80 and moving["ssim"] < 1.0
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["models"]["moving"]["psnr"] == pytest.approx(moving["psnr"])
    assert (
        saved["reference_flow"] == ["truth"] and saved["models"]["moving"]["flow_backend"] == "dis"
    )
    assert saved["models"]["moving"]["inference"] == "recurrent"
    table = (tmp_path / "eval.md").read_text().splitlines()
    assert table[2] == "| model | step | PSNR ↑ | SSIM ↑ |"
    assert table[4].startswith("| moving | 2 |") and table[5].startswith("| still | 2 | 58.92 |")
    assert FVD_NOTE not in table
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


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four metric files, random weights, under their published names."""
    folder = tmp_path_factory.mktemp("weights")
    write_metric_files(metric_networks(), folder)
    return folder


@pytest.fixture()
def small_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inception at 75x75 (its smallest input) and I3D at 32x32: the full networks, on far
    fewer pixels than the published 299x299 and 224x224."""
    monkeypatch.setattr(inception, "INPUT_SIZE", 75)
    monkeypatch.setattr(i3d, "INPUT_SIZE", 32)


@pytest.mark.slow
@pytest.mark.usefixtures("small_inputs")
def test_lpips_fid_and_fvd_with_the_metric_networks(
    models: dict[str, Path], weights_dir: Path, tmp_path: Path
) -> None:
    samples, frames = 2, 4
    options = EvalOptions(
        data=models["build"],
        checkpoints={"moving": models["moving"], "still": models["still"]},
        out=tmp_path,
        split="all",
        samples=samples,
        frames=frames,
        weights_dir=weights_dir,
    )
    assert options.metrics == ("psnr", "ssim", "lpips", "fid", "fvd")  # all five by default
    results = evaluate(options)
    still, moving = results["models"]["still"], results["models"]["moving"]
    for row in (still, moving):
        assert all(math.isfinite(row[m]) and row[m] >= 0 for m in ("lpips", "fid", "fvd"))
    assert still["lpips"] < 1e-6 < moving["lpips"]  # no motion: the input's appearance kept
    # The still model repeats each of the n inputs k times; a set of copies has the inputs'
    # mean and (n - 1) k / (n k - 1) times their covariance C, so FID = (1 - sqrt(a))^2 tr C.
    nets = load_feature_nets(["fid"], "cpu", weights_dir)
    assert nets.inception is not None and nets.lpips is None and nets.i3d is None
    inputs = np.stack([clip.frames[0] for clip in split_clips(models["build"], "all")])
    n, k = len(inputs), samples * frames
    trace = np.trace(gaussian_stats(frame_features(nets.inception, inputs))[1])
    expected = (1 - math.sqrt((n - 1) * k / (n * k - 1))) ** 2 * trace
    assert still["fid"] == pytest.approx(expected, rel=1e-3)
    assert moving["fvd"] != pytest.approx(still["fvd"])
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["models"]["moving"]["fvd"] == pytest.approx(moving["fvd"])
    table = (tmp_path / "eval.md").read_text()
    assert "| model | step | PSNR ↑ | SSIM ↑ | LPIPS ↓ | FID ↓ | FVD ↓ |" in table
    assert f"| still | 2 | {PSNR_CAP:.2f} | 1.0000 | 0.0000 | {still['fid']:.2f} |" in table
    assert FVD_NOTE in table


@pytest.mark.usefixtures("small_inputs")
def test_fid_of_a_set_against_itself_is_zero_however_it_is_streamed(weights_dir: Path) -> None:
    nets = load_feature_nets(["fid"], "cpu", weights_dir)
    assert nets.inception is not None
    frames = np.random.default_rng(0).integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    whole = frame_features(nets.inception, frames)
    running = RunningGaussian(whole.shape[1])
    for batch in (frames[:1], frames[1:4], frames[4:]):
        running.add(frame_features(nets.inception, batch))
    mean, cov = gaussian_stats(whole)
    streamed = running.stats()
    assert np.allclose(streamed[0], mean, atol=1e-6) and np.allclose(streamed[1], cov, atol=1e-6)
    assert frechet_distance(*streamed, mean, cov) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(mean, cov, *gaussian_stats(whole[::-1])) == pytest.approx(0, abs=1e-6)
    one = RunningGaussian(whole.shape[1])
    one.add(whole[:1])
    with pytest.raises(ValueError, match="N >= 2.*at least 2 frames or videos"):
        one.stats()


def test_missing_metric_files_are_all_named_before_any_work(
    models: dict[str, Path], weights_dir: Path, tmp_path: Path
) -> None:
    partial = tmp_path / "weights"
    partial.mkdir()
    (partial / "alex.pth").write_bytes((weights_dir / "alex.pth").read_bytes())
    result = CliRunner(env={"TLD_WEIGHTS_DIR": str(partial)}).invoke(
        cli,
        [
            "eval",
            "--checkpoint",
            str(tmp_path / "nowhere.pt"),  # never opened: the weights are checked first
            "--data",
            str(models["build"]),
            "--split",
            "all",
            "--metrics",
            "psnr,lpips,fid,fvd",
            "--out",
            str(tmp_path / "eval"),
        ],
    )
    assert isinstance(result.exception, MissingWeights)
    message = str(result.exception)
    assert message.startswith("3 weight file(s) not installed:")
    for file, name, metric in (
        ("alexnet-owt-7be5be79.pth", "lpips_alexnet", "LPIPS"),
        ("pt_inception-2015-12-05-6726825d.pth", "fid_inception", "FID"),
        ("rgb_imagenet.pt", "fvd_i3d", "FVD"),
    ):
        assert f"{partial / file} ({name}, for {metric}): run: tld weights fetch {name}" in message
    assert "alex.pth" not in message.replace("alexnet", "")
    assert message.endswith("run with --metrics psnr,ssim without them")
    assert not (tmp_path / "eval").exists()
    with pytest.raises(MissingWeights, match=r"(?s)^1 weight file\(s\).*fvd_i3d, for FVD"):
        load_feature_nets(["psnr", "fvd"], "cpu", partial)
    assert load_feature_nets(["psnr", "ssim"], "cpu", partial) == load_feature_nets([], "cpu")


def test_the_protocol_needs_two_clips(models: dict[str, Path]) -> None:
    assert len(split_clips(models["build"], "all", limit=2)) == 2
    with pytest.raises(ConfigError, match="only 1 clip.*needs at least 2"):
        split_clips(models["build"], "all", limit=1)
