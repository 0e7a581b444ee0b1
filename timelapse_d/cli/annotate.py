"""Curation: `tld annotate` (Label Studio), `tld split` and `tld calibrate`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from timelapse_d.cli.options import BUILD_FOLDER
from timelapse_d.runs import RunDir

if TYPE_CHECKING:
    from timelapse_d.annotation.studio import Studio


@click.group()
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
@BUILD_FOLDER
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
    help="Gold tasks (timelapse_d/annotation_config/gold_format.md).",
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
@BUILD_FOLDER
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
@BUILD_FOLDER
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


@click.command("split")
@BUILD_FOLDER
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
    category in the same proportion; stored in OUT/splits.parquet, shown in the manifest's
    `split` column."""
    from timelapse_d.annotation.split import write_split

    with RunDir(out).exclusive():
        click.echo(write_split(out, test_fraction, seed).text())


@click.command()
@BUILD_FOLDER
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
