"""Options shared by several `tld` commands."""

from __future__ import annotations

from pathlib import Path

import click

WEIGHTS_DIR = click.option(
    "--weights-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where weights live (default: $TLD_WEIGHTS_DIR, else timelapse-d/weights under "
    "$XDG_CACHE_HOME or ~/.cache).",
)

SINGLE_FLOW = click.option(
    "--single-flow",
    is_flag=True,
    help="One flow from the input, composed with itself (faster, steady), instead of the "
    "papers' recurrent prediction from each generated frame.",
)

BUILD_FOLDER = click.argument("out", type=click.Path(path_type=Path, exists=True, file_okay=False))
