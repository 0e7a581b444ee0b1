"""FGLA against its Animating Landscape baseline on fine-grained control.

Both small models (timelapse_d/model_configs/fgla_small.yaml and al_small.yaml: same image, flow and
generator sizes) are trained with the real `train` on the same synthetic control corpus (sky and
water drifting in independent random directions over still ground), same seed and steps. On held-out
images each model follows a held-out reference video whose sky drifts along d and whose water
drifts along e, given the way `tld animate --reference VIDEO` gives it (one video for the whole
photo). Per region, the direction of the mean generated motion is compared with the
reference's: cosine, and accuracy (cosine >= cos 45 degrees). Two sets of cases: sky and water
moving differently (e is d turned by 90 to 270 degrees) and, as a control, the same way (e = d).
A third row gives AL its best codebook entry per case (an oracle: the entry whose worse region
is best), the most a single global code from its codebook can do. Last, `tld eval`'s protocol
(masked PSNR and SSIM, 5 samples of 32 frames) scores both models on 24 held-out control clips
of 33 frames: the ground holds still in them, so moving it costs PSNR.

Prints a table and saves benchmarks/results/region_direction.json.
Usage: python benchmarks/region_direction.py [--steps 600] [--clips 256] [--cases 24]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from timelapse_d.fgla.config import load_fgla_config
from timelapse_d.fgla.direction import Vector, direction_cosine, region_motion
from timelapse_d.fgla.evaluation import EvalOptions, evaluate
from timelapse_d.fgla.inference import Reference, generate_flow, region_latents
from timelapse_d.fgla.train import CHECKPOINT, TrainOptions, train
from timelapse_d.fgla.trained import TrainedModel, code_latents, load_trained
from timelapse_d.fgla.warp import pixel_to_grid
from timelapse_d.segment.groups import GROUP_NAMES, group_masks
from timelapse_d.synth.control import ControlClip, render_clip, write_control_build

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "region_direction.json"
CONFIGS = {"FGLA": "fgla_small.yaml", "AL": "al_small.yaml"}
SIZE, SEED = 64, 0
HELD_OUT = 2_000_000  # random streams (SEED, HELD_OUT + i): never trained on
SPEED = 0.6  # reference drift, pixels per frame at 64 px
CORRECT = math.cos(math.radians(45))
SKY, WATER = GROUP_NAMES.index("sky"), GROUP_NAMES.index("water")
Case = tuple[Vector, Vector]
LatentsFn = Callable[[TrainedModel, Reference], list[torch.Tensor]]


def train_model(
    name: str, build: Path, out: Path, steps: int, config_file: str, overrides: dict | None = None
) -> tuple[Path, float]:
    """Train one model (``config_file`` in timelapse_d/model_configs/ with ``overrides``) in one
    thread; its checkpoint and the seconds it took."""
    started = time.monotonic()
    config = load_fgla_config(ROOT / "timelapse_d" / "model_configs" / config_file, overrides)
    train(config, TrainOptions(build, out / name, steps=steps, seed=SEED))
    return out / name / CHECKPOINT, time.monotonic() - started


def unit(angle: float) -> Vector:
    return math.cos(angle), math.sin(angle)


def cases(count: int, same: bool) -> list[Case]:
    """(sky direction d, water direction e) pairs; e = d, or d turned by 90 to 270 degrees."""
    rng = np.random.default_rng([SEED, HELD_OUT, int(same)])
    drawn = []
    for _ in range(count):
        angle = rng.uniform(0, 2 * math.pi)
        turn = 0.0 if same else rng.uniform(math.pi / 2, 3 * math.pi / 2)
        drawn.append((unit(angle), unit(angle + turn)))
    return drawn


def clip(index: int, sky: Vector, water: Vector, speed: float = SPEED) -> ControlClip:
    rng = np.random.default_rng([SEED, HELD_OUT + index])
    scaled = [(speed * v[0], speed * v[1]) for v in (sky, water)]
    return render_clip(rng, SIZE, 3, scaled[0], scaled[1])


def reference_of(video: ControlClip) -> Reference:
    masks = torch.from_numpy(group_masks(video.groups[:-1])).float()
    return Reference(pixel_to_grid(torch.from_numpy(video.flow)), masks)


def from_reference(trained: TrainedModel, reference: Reference) -> list[torch.Tensor]:
    """The latents `tld animate --reference VIDEO` uses: one video for every group."""
    return [region_latents(trained.model, dict.fromkeys(GROUP_NAMES, reference))]


def from_codebook(trained: TrainedModel, reference: Reference) -> list[torch.Tensor]:
    """Every codebook entry (the reference is not used)."""
    assert trained.codebook is not None, "the AL checkpoint has no codebook"
    return [code_latents(trained, i) for i in range(len(trained.codebook))]


def score(trained: TrainedModel, latents_of: LatentsFn, drawn: list[Case]) -> dict[str, float]:
    """Mean cosines and accuracies over the cases; with several candidate latents per case
    the one whose worse region is best counts."""
    sky_cos, water_cos = [], []
    for i, (d, e) in enumerate(drawn):
        target = clip(2 * i + 1, (0.0, 0.0), (0.0, 0.0))  # a held-out image with sky and water
        image = torch.from_numpy(target.frames[:1]).permute(0, 3, 1, 2).float() / 127.5 - 1
        masks = torch.from_numpy(group_masks(target.groups[:1])).float()
        best = (-2.0, -2.0)
        for latents in latents_of(trained, reference_of(clip(2 * i, d, e))):
            flow = generate_flow(trained.model, image, masks, latents)
            pair = (
                direction_cosine(region_motion(flow, masks, SKY), d),
                direction_cosine(region_motion(flow, masks, WATER), e),
            )
            best = max(best, pair, key=min)
        sky_cos.append(best[0])
        water_cos.append(best[1])
    sky, water = np.array(sky_cos), np.array(water_cos)
    return {
        "sky_cosine": round(float(sky.mean()), 3),
        "water_cosine": round(float(water.mean()), 3),
        "sky_accuracy": round(float((sky >= CORRECT).mean()), 3),
        "water_accuracy": round(float((water >= CORRECT).mean()), 3),
        "both_accuracy": round(float(((sky >= CORRECT) & (water >= CORRECT)).mean()), 3),
    }


def region_speed(flow: torch.Tensor, masks: torch.Tensor, group: int) -> float:
    """Mean generated motion magnitude over the group, pixels per frame at SIZE."""
    return float(flow.norm(dim=1)[masks[:, group] > 0].mean()) * SIZE / 2


def speed_control(trained: TrainedModel, count: int) -> dict[str, float]:
    """References 1x (0.26 px per frame) and 3x as fast: the ratio of the generated mean
    magnitudes per region (median over cases); and references whose sky or water holds still:
    the generated mean magnitude of that region (mean over cases, pixels at SIZE)."""
    ratios: dict[int, list[float]] = {SKY: [], WATER: []}
    still: list[float] = []
    for i, (d, e) in enumerate(cases(count, same=False)):
        target = clip(2 * i + 1, (0.0, 0.0), (0.0, 0.0))
        image = torch.from_numpy(target.frames[:1]).permute(0, 3, 1, 2).float() / 127.5 - 1
        masks = torch.from_numpy(group_masks(target.groups[:1])).float()
        speeds = []
        for speed in (0.26, 0.78):
            latents = from_reference(trained, reference_of(clip(2 * i, d, e, speed)))[0]
            speeds.append(generate_flow(trained.model, image, masks, latents))
        for group in ratios:
            slow, fast = (region_speed(f, masks, group) for f in speeds)
            ratios[group].append(fast / max(slow, 1e-9))
        half = clip(2 * i, (0.0, 0.0) if i % 2 else d, e if i % 2 else (0.0, 0.0))
        flow = generate_flow(
            trained.model, image, masks, from_reference(trained, reference_of(half))[0]
        )
        still.append(region_speed(flow, masks, SKY if i % 2 else WATER))
    return {
        "sky_speed_ratio": round(float(np.median(ratios[SKY])), 3),
        "water_speed_ratio": round(float(np.median(ratios[WATER])), 3),
        "still_region_px": round(float(np.mean(still)), 4),
    }


def control_arguments(doc: str) -> argparse.Namespace:
    """The options shared by the control-corpus benchmarks; one torch thread (two shared cores
    are far slower when oversubscribed)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--cases", type=int, default=24)
    torch.set_num_threads(1)
    return parser.parse_args()


def main() -> None:
    args = control_arguments(__doc__)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_control_build(folder / "build", SEED, args.clips, size=SIZE)
        trained, seconds = {}, {}
        for name in CONFIGS:
            checkpoint, seconds[name] = train_model(
                name, folder / "build", folder, args.steps, CONFIGS[name]
            )
            trained[name] = load_trained(checkpoint)
        runs = [
            ("FGLA, reference", "FGLA", from_reference),
            ("AL, reference", "AL", from_reference),
            ("AL, best codebook entry (oracle)", "AL", from_codebook),
        ]
        for same in (False, True):
            drawn = cases(args.cases, same)
            for label, name, latents_of in runs:
                rows.append(
                    {
                        "model": label,
                        "regions": "same direction" if same else "different directions",
                        **score(trained[name], latents_of, drawn),
                    }
                )
        speeds = {name: speed_control(model, args.cases) for name, model in trained.items()}
        print("speed control (1x vs 3x references; still regions):", speeds)
        protocol = masked_scores(folder, {name: model.source for name, model in trained.items()})
    print_table(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": platform.processor() or platform.machine(),
        "steps": args.steps,
        "training_clips": args.clips,
        "cases": args.cases,
        "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "codebook_size": len(trained["AL"].codebook) if trained["AL"].codebook is not None else 0,
        "rows": rows,
        "speed": speeds,
        "protocol": protocol,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {RESULTS}")


def masked_scores(folder: Path, checkpoints: dict[str, Path]) -> dict[str, dict[str, float]]:
    """Masked PSNR and SSIM of `tld eval` on 24 held-out clips of 33 frames, recurrent (the
    default) and single-flow."""
    heldout = folder / "heldout"
    if not heldout.exists():
        write_control_build(heldout, SEED + 1, 24, size=SIZE, frames=33)
    scores: dict[str, dict[str, float]] = {}
    for mode in ("recurrent", "single"):
        options = EvalOptions(
            data=heldout,
            checkpoints=checkpoints,
            out=folder / f"eval-{mode}",
            split="all",
            metrics=("psnr", "ssim"),
            mode=mode,
        )
        for name, row in evaluate(options)["models"].items():
            print(f"{name} ({mode}): masked PSNR {row['psnr']:.2f}, SSIM {row['ssim']:.4f}")
            scores[f"{name}, {mode}"] = {m: round(row[m], 4) for m in ("psnr", "ssim")}
    return scores


def print_table(rows: list[dict[str, object]]) -> None:
    keys = ["sky_cosine", "water_cosine", "sky_accuracy", "water_accuracy", "both_accuracy"]
    print("| regions | model | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for row in rows:
        cells = " | ".join(f"{row[k]:.3f}" for k in keys)
        print(f"| {row['regions']} | {row['model']} | {cells} |")


if __name__ == "__main__":
    main()
