"""The `tld` command line."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from timelapse_d import __version__
from timelapse_d.acquire.retry import AcquireError
from timelapse_d.config import ConfigError, parse_set, resolve_config
from timelapse_d.runs import HostError, RunDir, is_host_failure
from timelapse_d.sources import SOURCES

if TYPE_CHECKING:
    from timelapse_d.annotation.studio import Studio


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # one line per request from Label Studio's HTTP client: debug detail
        logging.getLogger("httpx").setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tld")
@click.option("-v", "--verbose", is_flag=True, help="Debug log lines.")
def cli(verbose: bool) -> None:
    """timelapse-d: build and curate time-lapse landscape video datasets."""
    _setup_logging(verbose)


@cli.command()
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default="synthetic",
    show_default=True,
    help="Where videos come from: the built-in procedural demo, files on disk, a Flickr "
    "search, a YouTube search/playlist/channel, or a list of URLs.",
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    help="--source local: directory (searched recursively) or file; --source urls: a text "
    "file of URLs or a Parquet file with a `url` column.",
)
@click.option("--query", help="flickr/youtube: search text.")
@click.option("--tags", help="flickr: comma-separated tags.")
@click.option(
    "--license",
    "licenses",
    multiple=True,
    help="flickr: accepted licence kind (by, by-sa, by-nc, cc0, pdm, ...; repeatable; "
    "default: those that allow redistribution with attribution).",
)
@click.option("--min-upload-date", help="flickr: earliest upload date (YYYY-MM-DD).")
@click.option("--max-upload-date", help="flickr: latest upload date (YYYY-MM-DD).")
@click.option("--max-videos", type=int, help="flickr/youtube: at most this many videos.")
@click.option("--playlist", help="youtube: playlist URL or id.")
@click.option("--channel", help="youtube: channel URL.")
@click.option("--retry-failed", is_flag=True, help="Retry downloads recorded as failed.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output directory: shards/, manifest.parquet, videos.parquet, run/.",
)
@click.option(
    "--recipe",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="YAML recipe overriding the defaults (see pipelines/).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config key, e.g. --set filter.min_height=240 (repeatable).",
)
@click.option("--workers", type=int, help="Parallel worker processes (default 1).")
def build(
    source: str,
    input_path: Path | None,
    out: Path,
    recipe: Path | None,
    sets: tuple[str, ...],
    workers: int | None,
    query: str | None,
    tags: str | None,
    licenses: tuple[str, ...],
    min_upload_date: str | None,
    max_upload_date: str | None,
    max_videos: int | None,
    playlist: str | None,
    channel: str | None,
    retry_failed: bool,
) -> None:
    """Download or find videos, cut, analyse, filter, encode and shard them into OUT.

    Re-running the same command resumes: finished tasks (search calls, downloads, analyses,
    encodes) are skipped. Flickr needs FLICKR_API_KEY and FLICKR_API_SECRET (or
    ~/.config/timelapse-d/credentials.yaml).
    """
    from timelapse_d.pipeline import build as run_build

    section = "youtube" if source == "youtube" else "flickr"
    flags = {
        f"{section}.query": query,
        "flickr.tags": [t.strip() for t in tags.split(",") if t.strip()] if tags else None,
        "flickr.licenses": list(licenses) or None,
        "flickr.min_upload_date": min_upload_date,
        "flickr.max_upload_date": max_upload_date,
        f"{section}.max_videos": max_videos,
        "youtube.playlist": playlist,
        "youtube.channel": channel,
        "download.retry_failed": retry_failed or None,
    }
    overrides = {key: value for key, value in flags.items() if value is not None}
    overrides.update(parse_set(list(sets)))
    if input_path is not None:
        overrides["input"] = str(input_path)
    if workers is not None:
        overrides["workers"] = workers
    config = resolve_config(source=source, recipe=recipe, overrides=overrides)
    summary = run_build(config, out)
    click.echo(summary.text())
    if not summary.complete:
        sys.exit(1)


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--videos", "num_videos", type=int, default=4, show_default=True)
@click.option("--width", type=int, default=384, show_default=True)
@click.option("--height", type=int, default=216, show_default=True)
def synth(out: Path, seed: int, num_videos: int, width: int, height: int) -> None:
    """Write the procedural demo videos with their truth (cuts, decisions, flow, regions)."""
    from timelapse_d.synth import write_corpus

    paths = write_corpus(out, seed, width=width, height=height, num_videos=num_videos)
    for path in paths:
        click.echo(str(path))


@cli.command()
@click.argument("out", type=click.Path(path_type=Path, exists=True, file_okay=False))
def status(out: Path) -> None:
    """Summary of a finished or interrupted build in OUT."""
    from timelapse_d.report import summarize

    if not (out / "run").is_dir():
        raise ConfigError(f"{out} is not a build folder (no run/): give the --out of a build")
    click.echo(summarize(out).text())


@cli.command()
@click.argument("field", type=click.Choice(["frames", "flow", "masks"]))
@click.argument("out", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--backend",
    help="frames: decode; flow: dis (CPU default, no weights), flownet2, raft, truth "
    "(synthetic builds); masks: hrnet (default), truth.",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path, exists=True),
    help="Checkpoint file (flow) or folder with both HRNetV2 files (masks); "
    "default: installed by `tld weights`.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--batch", type=int, default=16, show_default=True, help="Pairs or frames per call.")
@click.option(
    "--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True
)
@click.option("--stride", type=int, default=4, show_default=True, help="Sample every Nth frame.")
@click.option("--size", type=int, default=256, show_default=True, help="Square frame size.")
@click.option("--classes", is_flag=True, help="masks: also store the 150 ADE20K class map.")
def precompute(
    field: str,
    out: Path,
    backend: str | None,
    weights: Path | None,
    device: str,
    batch: int,
    precision: str,
    stride: int,
    size: int,
    classes: bool,
) -> None:
    """Write frames, flow or mask shards aligned with the clip shards of OUT/shards.

    Resumable: finished shards are skipped; a shard is written, checked, then renamed.
    """
    from timelapse_d.precompute.sampling import Sampling
    from timelapse_d.precompute.stage import PrecomputeOptions
    from timelapse_d.precompute.stage import precompute as run_precompute

    options = PrecomputeOptions(
        field="mask" if field == "masks" else field,
        backend=backend,
        sampling=Sampling(stride=stride, size=size),
        device=device,
        batch=batch,
        precision=precision,
        weights=str(weights) if weights else None,
        classes=classes,
    )
    for line in run_precompute(out, options).lines():
        click.echo(line)


@cli.command()
@click.argument("out", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Default: OUT/ATTRIBUTION.txt"
)
@click.option("--all", "every_download", is_flag=True, help="Credit every downloaded video.")
def attribution(out: Path, output: Path | None, every_download: bool) -> None:
    """Write the attribution list a release must ship (authors, pages, licences)."""
    from timelapse_d.sources.remote import write_attribution

    with RunDir(out).exclusive():
        click.echo(str(write_attribution(out, output, every_download)))


@cli.command()
@click.argument("manifest", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output directory: shards/, manifest.parquet, videos.parquet, run/.",
)
@click.option("--workers", type=int, help="Parallel encode processes (default 1).")
@click.option("--retry-failed", is_flag=True, help="Retry downloads recorded as failed.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config key: the published build's encode.* and shard.* settings, "
    "download.* (workers, proxy, cookies, rate limit) (repeatable).",
)
def rehydrate(
    manifest: Path, out: Path, workers: int | None, retry_failed: bool, sets: tuple[str, ...]
) -> None:
    """Rebuild a published dataset in OUT from MANIFEST, a Parquet file of clip rows whose
    source_uri is the source video's URL.

    Each needed source is downloaded once, whole; the listed clips are cut and sharded as
    `tld build` does. Clips whose source cannot be had are listed as rejected with the
    download error's class. Re-running the same command resumes.
    """
    from timelapse_d.rehydrate import rehydrate as run_rehydrate

    overrides = parse_set(list(sets))
    if workers is not None:
        overrides["workers"] = workers
    if retry_failed:
        overrides["download.retry_failed"] = True
    config = resolve_config(source="urls", overrides=overrides)
    summary = run_rehydrate(manifest, out, config)
    click.echo(summary.text())
    if not summary.complete:
        sys.exit(1)


@cli.group()
def weights() -> None:
    """Model weights: what the toolkit can use, and installing them (checked strictly)."""


_WEIGHTS_DIR = click.option(
    "--weights-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where weights live (default: $TLD_WEIGHTS_DIR, else timelapse-d/weights under "
    "$XDG_CACHE_HOME or ~/.cache).",
)


@weights.command("list")
@_WEIGHTS_DIR
def weights_list(weights_dir: Path | None) -> None:
    """Every known checkpoint, whether it is installed, its checksum, licence and source."""
    from timelapse_d.weights import list_weights, resolve_weights_dir

    click.echo(f"weights directory: {resolve_weights_dir(weights_dir)}")
    for row in list_weights(weights_dir):
        state = "installed" if row.installed else "missing"
        size = f"{row.size / 1e6:.0f} MB" if row.size else "size unknown"
        click.echo(f"{row.name:16} {state:9} {row.file} ({size})")
        click.echo(f"{'':16} sha256 {row.sha256}; licence: {row.licence}")
        click.echo(f"{'':16} {row.url}")


@weights.command("fetch")
@click.argument("name")
@click.option("--url", help="Download from this mirror instead of the registry's address.")
@_WEIGHTS_DIR
def weights_fetch(name: str, url: str | None, weights_dir: Path | None) -> None:
    """Download NAME, check its checksum (when known), keys and shapes, then install it."""
    from timelapse_d.weights import fetch

    click.echo(f"installed {fetch(name, weights_dir, url=url)}")


@weights.command("import")
@click.argument("name")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@_WEIGHTS_DIR
def weights_import(name: str, path: Path, weights_dir: Path | None) -> None:
    """Check a local checkpoint file for NAME (keys, shapes, checksum) and install a copy."""
    from timelapse_d.weights import import_weights

    click.echo(f"installed {import_weights(name, path, weights_dir)}")


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Model config (default: the shipped models/fgla.yaml).",
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

    if not any((data / "shards").glob("clips-*.tar")):
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


_SINGLE_FLOW = click.option(
    "--single-flow",
    is_flag=True,
    help="One flow from the input, composed with itself (faster, steady), instead of the "
    "papers' recurrent prediction from each generated frame.",
)


@cli.command()
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
@_SINGLE_FLOW
@_WEIGHTS_DIR
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


@cli.command("eval")
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
@_SINGLE_FLOW
@_WEIGHTS_DIR
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
    from timelapse_d.fgla.protocol import RESULTS_MD, EvalOptions, evaluate, markdown_table

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


@cli.group()
def annotate() -> None:
    """Crowdsourced curation in Label Studio: push clips, pull answers, follow progress."""


def _connection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--url, --token-file, --files-root and --server-data shared by push, pull and status."""
    options = [
        click.option("--url", help="Label Studio URL (default: $LABEL_STUDIO_URL, else the "
                     "server `tld annotate server start` runs)."),
        click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False),
                     help="File holding the API token (default: $LABEL_STUDIO_API_KEY, else "
                     "the local server's token file). The token is never printed."),
        click.option("--files-root", type=click.Path(path_type=Path, file_okay=False),
                     help="Folder the server serves local files from (its "
                     "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT); the build must lie under it."),
        click.option("--server-data", type=click.Path(path_type=Path, file_okay=False),
                     help="Data folder of the local server (default: under "
                     "$TLD_LABEL_STUDIO_HOME)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _studio(
    url: str | None, token_file: Path | None, files_root: Path | None, server_data: Path | None
) -> Studio:
    from timelapse_d.annotation.studio import Studio, resolve_connection

    return Studio(resolve_connection(url, token_file, files_root, server_data))


@annotate.command("push")
@click.argument("out", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--project",
    default="timelapse-d curation",
    show_default=True,
    help="Label Studio project title (created when missing).",
)
@click.option("--overlap", type=int, help="Annotators per task (default: as before, else 1).")
@click.option(
    "--select",
    "selection",
    default="all",
    show_default=True,
    help="Clips to send: all, kept, borderline (a score within a factor 1.5 of its threshold) "
    "or reason=REASON (e.g. reason=camera_motion); all but reason= skip the clips no answer "
    "can rescue (too_short, low_resolution, unreadable, duplicate).",
)
@click.option(
    "--gold",
    "gold_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Gold tasks (annotation/gold_format.md).",
)
@click.option("--workers", type=int, default=1, show_default=True, help="Parallel preview encodes.")
@_connection_options
def annotate_push(
    out: Path,
    project: str,
    overlap: int | None,
    selection: str,
    gold_file: Path | None,
    workers: int,
    **connection: Any,
) -> None:
    """Create or update the Label Studio project of OUT: one task per clip with a preview and
    the automatic decision as pre-annotation; re-running never duplicates tasks."""
    from timelapse_d.annotation.push import push

    with RunDir(out).exclusive():
        studio = _studio(**connection)
        summary = push(out, studio, project, overlap, selection, gold_file, workers=workers)
    click.echo(summary.text())


@annotate.command("pull")
@click.argument("out", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--vote",
    type=click.Choice(["auto", "majority", "weighted"]),
    default="auto",
    show_default=True,
    help="weighted: by gold accuracy (auto picks it when gold tasks were pushed).",
)
@_connection_options
def annotate_pull(out: Path, vote: str, **connection: Any) -> None:
    """Export the answers into OUT/annotations/ (a new file each time), resolve every clip and
    re-decide the manifest; prints agreement and gold accuracy."""
    from timelapse_d.annotation.pull import pull

    with RunDir(out).exclusive():
        summary = pull(out, _studio(**connection), vote)
    click.echo(summary.text(), nl=False)


@annotate.command("status")
@click.argument("out", type=click.Path(path_type=Path, exists=True, file_okay=False))
@_connection_options
def annotate_status(out: Path, **connection: Any) -> None:
    """Tasks done of all, answers per annotator and per category."""
    from timelapse_d.annotation.pull import project_status

    click.echo(project_status(out, _studio(**connection)).text(), nl=False)


@annotate.group("server")
def annotate_server() -> None:
    """A local Label Studio in its own virtual environment, on 127.0.0.1."""


def _home_option(name: str, sub: str, text: str) -> Callable[..., Any]:
    from timelapse_d.annotation.server import default_home

    return click.option(
        name,
        type=click.Path(path_type=Path, file_okay=False),
        default=lambda: default_home() / sub,
        show_default=f"$TLD_LABEL_STUDIO_HOME/{sub}",
        help=text,
    )


@annotate_server.command("install")
@_home_option("--venv", "venv", "Virtual environment to install Label Studio into.")
def server_install(venv: Path) -> None:
    """pip-install the supported Label Studio into its own virtual environment."""
    from timelapse_d.annotation.server import LABEL_STUDIO_VERSION, install

    click.echo(f"label-studio {LABEL_STUDIO_VERSION}: {install(venv)}")


@annotate_server.command("start")
@_home_option("--venv", "venv", "Virtual environment Label Studio is installed in.")
@_home_option("--data", "data", "Data folder (database, token, log).")
@click.option(
    "--files-root",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path.home,
    show_default="home folder",
    help="Folder whose files (the previews) the server may serve.",
)
@click.option("--port", type=int, default=8080, show_default=True, help="0: any free port.")
def server_start(venv: Path, data: Path, files_root: Path, port: int) -> None:
    """Start Label Studio headless on 127.0.0.1 (the first start migrates its database)."""
    from timelapse_d.annotation.server import ADMIN_EMAIL, start

    info = start(data, venv, files_root, port)
    click.echo(
        f"Label Studio at {info.url} (pid {info.pid}); log in as {ADMIN_EMAIL}, password in "
        f"{info.password_file}; API token in {info.token_file}"
    )


@annotate_server.command("stop")
@_home_option("--data", "data", "Data folder of the server to stop.")
def server_stop(data: Path) -> None:
    """Stop the server started with --data."""
    from timelapse_d.annotation.server import stop

    click.echo("stopped" if stop(data) else "no server was running")


@cli.command("split")
@click.argument("out", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--test-fraction",
    type=float,
    default=0.146,
    show_default=True,
    help="Share of kept clips in test (Time-lapse-D: 2,456 of 16,874).",
)
@click.option("--seed", type=int, default=0, show_default=True)
def split_command(out: Path, test_fraction: float, seed: int) -> None:
    """Split the kept clips of OUT into train and test: whole source videos on one side, every
    category in the same proportion; written to the manifest's `split` column."""
    from timelapse_d.annotation.split import write_split

    with RunDir(out).exclusive():
        click.echo(write_split(out, test_fraction, seed).text())


@cli.command()
@click.argument("out", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Default: OUT/report.html")
def report(out: Path, output: Path | None) -> None:
    """Write a self-contained HTML page of what the build in OUT kept, rejected and why."""
    from timelapse_d.publish.report import write_report

    with RunDir(out).exclusive():
        click.echo(str(write_report(out, output)))


@cli.command()
@click.argument("out", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--video", "videos", multiple=True, help="A source video id (repeatable).")
@click.option("--owner", "owners", multiple=True, help="An owner's name or id (repeatable).")
@click.option("--url", "urls", multiple=True, help="A source or page URL (repeatable).")
@click.option(
    "--file",
    "list_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A list: one `video ID`, `owner NAME` or `url URL` per line.",
)
def takedown(
    out: Path,
    videos: tuple[str, ...],
    owners: tuple[str, ...],
    urls: tuple[str, ...],
    list_file: Path | None,
) -> None:
    """Remove every clip of the named source videos from OUT (shards, field shards, manifests,
    previews, report) and record the request in OUT/takedowns.parquet so no later build or
    rehydrate brings them back. Re-running completes an interrupted takedown."""
    from timelapse_d.publish.takedown import Request, parse_list
    from timelapse_d.publish.takedown import takedown as run_takedown

    named = (("video", videos), ("owner", owners), ("url", urls))
    requests = [Request(kind, value) for kind, values in named for value in values]
    requests += parse_list(list_file) if list_file else []
    if not requests:
        raise ConfigError("name what to take down: --video, --owner, --url or --file")
    click.echo(run_takedown(out, requests).text())


@cli.command()
@click.argument("out", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--labels",
    type=click.Path(path_type=Path),
    help="CSV clip_id,decision,reasons "
    "or a manifest with human columns (default: OUT's own, from `tld annotate pull`).",
)
@click.option(
    "--recipe",
    type=click.Path(path_type=Path),
    help="Recipe to write (default: OUT/calibrated_recipe.yaml).",
)
def calibrate(out: Path, labels: Path | None, recipe: Path | None) -> None:
    """Fit the filter thresholds of build OUT to curators' labels; print precision and recall
    per reason (cross-validated by video) and the clips labels and thresholds disagree on."""
    from timelapse_d.calibration.run import calibrate as run_calibrate

    with RunDir(out).exclusive():
        click.echo(run_calibrate(out, labels, recipe or out / "calibrated_recipe.yaml").text())


@cli.command()
def schema() -> None:
    """Print the manifest schema and reject reasons (the text of manifests/README.md)."""
    from timelapse_d.manifest import schema_markdown

    click.echo(schema_markdown(), nl=False)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as an interrupt."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def main() -> None:
    """Entry point of the `tld` script; exit codes (README "Exit codes"): 1 an incomplete
    build or a source failing after its retries, 2 a configuration or input error, 3 a
    failure of the machine (disk full, I/O error), 130/143 interrupted by SIGINT/SIGTERM."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort as exc:
        click.echo("interrupted: re-run the same command to resume", err=True)
        sys.exit(143 if isinstance(exc.__cause__, _Terminated) else 130)
    except (HostError, OSError) as exc:
        if not is_host_failure(exc):
            raise
        click.echo(f"error: {exc}; finished work is kept: re-run the same command", err=True)
        sys.exit(3)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except AcquireError as exc:  # a source that stayed unreachable after every retry
        click.echo(
            f"error: {exc.error_class}: {exc.message}\n"
            "Finished work is kept: run the same command again to go on from here.",
            err=True,
        )
        sys.exit(1)
