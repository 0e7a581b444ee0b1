"""The `tld` root group, its commands (one module per group) and how it ends."""

from __future__ import annotations

import logging
import signal
import sys

import click

from timelapse_d import __version__
from timelapse_d.cli import annotate, build, fgla, precompute, publish
from timelapse_d.cli.exit_codes import SIGINT, SIGTERM, error_exit


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


COMMANDS = (
    build.build,
    build.synth,
    build.status,
    build.rehydrate,
    build.schema,
    precompute.precompute,
    precompute.weights,
    fgla.train,
    fgla.animate,
    fgla.eval_command,
    annotate.annotate,
    annotate.split_command,
    annotate.calibrate,
    publish.attribution,
    publish.report,
    publish.takedown,
)
for _command in COMMANDS:
    cli.add_command(_command)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as an interrupt."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def main() -> None:
    """Entry point of the `tld` script; an error of timelapse-d or of the machine ends it with
    one `error:` line and its exit code (:mod:`timelapse_d.cli.exit_codes`)."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort as exc:
        click.echo("interrupted: re-run the same command to resume", err=True)
        sys.exit(SIGTERM if isinstance(exc.__cause__, _Terminated) else SIGINT)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        ending = error_exit(exc)
        if ending is None:
            raise
        code, line = ending
        click.echo(line, err=True)
        sys.exit(code)
