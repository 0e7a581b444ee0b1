"""Model inputs: `tld precompute` (field shards) and `tld weights` (checkpoints)."""

from __future__ import annotations

from pathlib import Path

import click

from timelapse_d.cli.options import BUILD_FOLDER, WEIGHTS_DIR, executor_options


@click.command()
@click.argument("field", type=click.Choice(["frames", "flow", "masks"]))
@BUILD_FOLDER
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
@click.option("--device", help="cpu (default), cuda, cuda:1, ...")
@click.option("--batch", type=int, help="Pairs or frames per call (default 16).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), help="Default fp32.")
@click.option("--stride", type=int, help="Sample every Nth frame (default 4).")
@click.option("--size", type=int, help="Square frame size (default 256).")
@click.option("--classes", is_flag=True, help="masks: also store the 150 ADE20K class map.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="precompute.<key>=...")
@click.option("--workers", type=int, default=1, show_default=True, help="Shards at a time (local).")
@executor_options
def precompute(
    field: str,
    out: Path,
    backend: str | None,
    weights: Path | None,
    device: str | None,
    batch: int | None,
    precision: str | None,
    stride: int | None,
    size: int | None,
    classes: bool,
    sets: tuple[str, ...],
    workers: int,
    executor: str | None,
    ray_address: str | None,
) -> None:
    """Write frames, flow or mask shards aligned with the clip shards of OUT/shards.

    Settings: the recipe's `precompute` section saved with the build, then --set, then the
    options; what a run used is saved in OUT/run/precompute-FIELD.yaml. Resumable: finished
    shards are skipped; a shard is written, checked, then renamed. One task per clip shard:
    with --executor ray, each runs on a long-lived Ray worker holding the network (one GPU
    each with --device cuda).
    """
    from timelapse_d.config_loader import parse_set
    from timelapse_d.executors import make_executor
    from timelapse_d.precompute import resolve
    from timelapse_d.precompute.stage import precompute as run_precompute

    name = "mask" if field == "masks" else field
    given = {
        f"{name}_backend": backend,
        f"{name}_weights": str(weights) if weights else None,
        "device": device,
        "batch": batch,
        "precision": precision,
        "stride": stride,
        "size": size,
        "classes": classes or None,
    }
    overrides = parse_set(list(sets))
    overrides.update({f"precompute.{k}": v for k, v in given.items() if v is not None})
    section = resolve.precompute_section(out, overrides)
    runner = make_executor(executor or "local", workers, ray_address or "auto")
    report = run_precompute(out, resolve.precompute_options(name, section), runner)
    resolve.save_section(out, name, section)
    for line in report.lines():
        click.echo(line)


@click.group()
def weights() -> None:
    """Model weights: what the toolkit can use, and installing them (checked strictly)."""


@weights.command("list")
@WEIGHTS_DIR
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
@WEIGHTS_DIR
def weights_fetch(name: str, url: str | None, weights_dir: Path | None) -> None:
    """Download NAME, check its checksum (when known), keys and shapes, then install it."""
    from timelapse_d.weights import fetch

    click.echo(f"installed {fetch(name, weights_dir, url=url)}")


@weights.command("import")
@click.argument("name")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@WEIGHTS_DIR
def weights_import(name: str, path: Path, weights_dir: Path | None) -> None:
    """Check a local checkpoint file for NAME (keys, shapes, checksum) and install a copy."""
    from timelapse_d.weights import import_weights

    click.echo(f"installed {import_weights(name, path, weights_dir)}")
