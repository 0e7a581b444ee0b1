"""Dataset commands: `tld build`, `synth`, `status`, `rehydrate` and `schema`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from timelapse_d.cli.options import BUILD_FOLDER, executor_options, executor_overrides
from timelapse_d.config import resolve_config
from timelapse_d.config_loader import parse_set
from timelapse_d.errors import ConfigError
from timelapse_d.sources import SOURCES


@click.command()
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
    help="YAML recipe overriding the defaults (see timelapse_d/recipes/).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config key, e.g. --set filter.min_height=240 (repeatable).",
)
@click.option("--workers", type=int, help="Parallel worker processes (default 1).")
@executor_options
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
    executor: str | None,
    ray_address: str | None,
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
    overrides.update(executor_overrides(executor, ray_address))
    config = resolve_config(source=source, recipe=recipe, overrides=overrides)
    summary = run_build(config, out)
    click.echo(summary.text())
    if not summary.complete:
        sys.exit(1)


@click.command()
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


@click.command()
@BUILD_FOLDER
def status(out: Path) -> None:
    """Summary of a finished or interrupted build in OUT."""
    from timelapse_d.report import summarize

    if not (out / "run").is_dir():
        raise ConfigError(f"{out} is not a build folder (no run/): give the --out of a build")
    click.echo(summarize(out).text())


@click.command()
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
@executor_options
def rehydrate(
    manifest: Path,
    out: Path,
    workers: int | None,
    retry_failed: bool,
    sets: tuple[str, ...],
    executor: str | None,
    ray_address: str | None,
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
    overrides.update(executor_overrides(executor, ray_address))
    config = resolve_config(source="urls", overrides=overrides)
    summary = run_rehydrate(manifest, out, config)
    click.echo(summary.text())
    if not summary.complete:
        sys.exit(1)


@click.command()
def schema() -> None:
    """Print the manifest schema and reject reasons (the text of manifests/README.md)."""
    from timelapse_d.manifest import schema_markdown

    click.echo(schema_markdown(), nl=False)
