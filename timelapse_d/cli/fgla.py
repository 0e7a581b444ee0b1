"""The FGLA model: `tld train`, `tld animate` and `tld eval`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from timelapse_d.cli.options import SINGLE_FLOW, WEIGHTS_DIR
from timelapse_d.config_loader import parse_set
from timelapse_d.errors import ConfigError


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Model config (default: the shipped timelapse_d/model_configs/fgla.yaml).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    required=True,
    help="A build directory whose shards have frames, flow and mask fields (tld precompute).",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Checkpoint, logs.")
@click.option("--steps", type=int, required=True, help="Train until this many optimizer steps.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint in --out exactly.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader workers.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--checkpoint-every", type=int, default=100, show_default=True)
def train(
    config_path: Path | None,
    data: Path,
    out: Path,
    steps: int,
    resume: bool,
    sets: tuple[str, ...],
    device: str,
    workers: int,
    seed: int,
    checkpoint_every: int,
) -> None:
    """Train FGLA on the shards of DATA (one random frame pair per clip per pass)."""
    from timelapse_d.fgla.config import load_fgla_config
    from timelapse_d.fgla.monitor import LOG_FILE
    from timelapse_d.fgla.train import TrainOptions
    from timelapse_d.fgla.train import train as run_train
    from timelapse_d.shards.naming import clip_shards

    if not clip_shards(data / "shards"):
        raise ConfigError(f"{data} has no shards (shards/clips-*.tar): give the --out of a build")
    config = load_fgla_config(config_path, parse_set(list(sets)))
    options = TrainOptions(data, out, steps, resume, device, seed, workers, checkpoint_every)
    rows = run_train(config, options)
    if rows:
        click.echo(f"step {rows[-1]['step']}: loss {rows[-1]['loss']:.5f}; log {out / LOG_FILE}")


def _frame_size(value: str) -> tuple[int, int] | None:
    """``original`` -> None; ``WxH`` -> (width, height)."""
    if value == "original":
        return None
    width, sep, height = value.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) > 1 and int(height) > 1):
        raise ConfigError(
            f"--size must be original or WIDTHxHEIGHT (e.g. 1920x1080), got {value!r}"
        )
    return int(width), int(height)


@click.command()
@click.argument("image", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="OUT.mp4|.webm|.gif"
)
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    required=True,
    help="A `tld train` checkpoint (OUT/checkpoint.pt).",
)
@click.option(
    "--reference",
    "references",
    multiple=True,
    metavar="[GROUP=]VIDEO",
    help="A video whose motion to follow; GROUP= (sky, tree, grass, water, waterfall, others) "
    "gives that group its own video (repeatable).",
)
@click.option(
    "--reference-mask",
    "reference_masks",
    multiple=True,
    metavar="[GROUP=]FILE",
    help="Group-id image or boxes (as --mask) for the --reference with the same GROUP= "
    "(default: the segmenter).",
)
@click.option(
    "--code",
    type=int,
    metavar="K",
    help="Entry K of the model's motion codebook instead of references (Animating Landscape).",
)
@click.option(
    "--mask",
    default="auto",
    show_default=True,
    help="The photo's groups: auto (HRNetV2 segmenter, `tld weights`), an image of group ids "
    "(0 sky, 1 tree, 2 grass, 3 water, 4 waterfall, 5 others) or boxes without weights, "
    "GROUP:X0,Y0,X1,Y1[;...] in fractions (e.g. 'sky:0,0,1,0.45;water:0,0.6,1,1').",
)
@click.option("--frames", type=int, default=32, show_default=True)
@click.option("--speed", type=float, default=1.0, show_default=True, help="Motion per frame x S.")
@click.option("--loop", is_flag=True, help="Loop seamlessly (cross-fade over a quarter).")
@click.option("--size", default="original", show_default=True, help="original or WxH.")
@click.option("--fps", type=float, default=12.0, show_default=True)
@click.option(
    "--flow-backend",
    type=click.Choice(["dis", "flownet2", "raft"]),
    help="Flow of the reference videos [default: the model's data.flow_backend].",
)
@click.option("--flow-weights", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--device", default="cpu", show_default=True)
@SINGLE_FLOW
@WEIGHTS_DIR
def animate(
    image: Path,
    output: Path,
    checkpoint: Path,
    references: tuple[str, ...],
    reference_masks: tuple[str, ...],
    code: int | None,
    mask: str,
    frames: int,
    speed: float,
    loop: bool,
    size: str,
    fps: float,
    flow_backend: str | None,
    flow_weights: Path | None,
    device: str,
    single_flow: bool,
    weights_dir: Path | None,
) -> None:
    """Animate the photo IMAGE with the motion of reference videos (or a codebook entry), at
    its own resolution."""
    from timelapse_d.fgla.photo import AnimateOptions, animate_photo, parse_assignments

    options = AnimateOptions(
        image=image,
        output=output,
        checkpoint=checkpoint,
        references=parse_assignments(references, "--reference"),
        reference_masks=parse_assignments(reference_masks, "--reference-mask"),
        code=code,
        mask=None if mask == "auto" else Path(mask),
        frames=frames,
        speed=speed,
        loop=loop,
        size=_frame_size(size),
        fps=fps,
        flow_backend=flow_backend,
        flow_weights=flow_weights,
        device=device,
        weights_dir=weights_dir,
        progress=sys.stderr.isatty(),
        mode="single" if single_flow else None,
    )
    result = animate_photo(options)
    click.echo(
        f"{result.output}: {result.width}x{result.height}, {result.frames} frames "
        f"in {result.seconds:.1f} s"
    )


@click.command("eval")
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    required=True,
    metavar="[NAME=]CKPT",
    help="A `tld train` checkpoint; repeat to compare models side by side (NAME labels it).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    required=True,
    help="A build with frames, flow and mask fields (tld precompute) and a split (tld split).",
)
@click.option("--split", default="test", show_default=True, help="Manifest split, or all.")
@click.option("--samples", type=int, default=5, show_default=True, help="Videos per input.")
@click.option("--frames", type=int, default=32, show_default=True, help="Frames per video.")
@click.option(
    "--metrics",
    default="psnr,ssim,lpips,fid,fvd",
    show_default=True,
    help="Comma-separated subset. lpips, fid and fvd need weight files (tld weights list); "
    "psnr,ssim runs without them.",
)
@click.option("--max-clips", type=int, help="Score only the first N clips of the split.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("eval"), show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Choice of references.")
@SINGLE_FLOW
@WEIGHTS_DIR
def eval_command(
    checkpoints: tuple[str, ...],
    data: Path,
    split: str,
    samples: int,
    frames: int,
    metrics: str,
    max_clips: int | None,
    out: Path,
    device: str,
    seed: int,
    single_flow: bool,
    weights_dir: Path | None,
) -> None:
    """Score checkpoints on the FGLA paper's protocol (masked PSNR and SSIM, LPIPS, FID, FVD).

    Writes OUT/eval.json and OUT/eval.md (a Markdown table, one row per checkpoint).
    """
    from timelapse_d.fgla.evaluation import RESULTS_MD, EvalOptions, evaluate, markdown_table

    named: dict[str, Path] = {}
    for value in checkpoints:
        name, sep, path = value.rpartition("=")
        label = name if sep else Path(path).parent.name or path
        if label in named:
            raise ConfigError(f"two checkpoints are labelled {label!r}: name them NAME=CKPT")
        named[label] = Path(path)
    chosen = [m.strip() for m in metrics.split(",") if m.strip()]
    options = EvalOptions(
        data=data,
        checkpoints=named,
        out=out,
        split=split,
        samples=samples,
        frames=frames,
        metrics=chosen,
        device=device,
        seed=seed,
        max_clips=max_clips,
        weights_dir=weights_dir,
        mode="single" if single_flow else None,
    )
    click.echo(markdown_table(evaluate(options), chosen), nl=False)
    click.echo(f"(also in {out / RESULTS_MD} and eval.json)")
