"""Publishing a build: `tld attribution`, `tld report` and `tld takedown`."""

from __future__ import annotations

from pathlib import Path

import click

from timelapse_d.cli.options import BUILD_FOLDER
from timelapse_d.errors import ConfigError
from timelapse_d.runs import RunDir


@click.command()
@BUILD_FOLDER
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Default: OUT/ATTRIBUTION.txt"
)
@click.option("--all", "every_download", is_flag=True, help="Credit every downloaded video.")
def attribution(out: Path, output: Path | None, every_download: bool) -> None:
    """Write the attribution list a release must ship (authors, pages, licences)."""
    from timelapse_d.sources.remote import write_attribution

    with RunDir(out).exclusive():
        click.echo(str(write_attribution(out, output, every_download)))


@click.command()
@BUILD_FOLDER
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Default: OUT/report.html")
def report(out: Path, output: Path | None) -> None:
    """Write a self-contained HTML page of what the build in OUT kept, rejected and why."""
    from timelapse_d.publish.report import write_report

    with RunDir(out).exclusive():
        click.echo(str(write_report(out, output)))


@click.command()
@BUILD_FOLDER
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
    from timelapse_d.publish.takedown import takedown as run_takedown
    from timelapse_d.publish.takedown_requests import Request, parse_list

    named = (("video", videos), ("owner", owners), ("url", urls))
    requests = [Request(kind, value) for kind, values in named for value in values]
    requests += parse_list(list_file) if list_file else []
    if not requests:
        raise ConfigError("name what to take down: --video, --owner, --url or --file")
    click.echo(run_takedown(out, requests).text())
