"""Options shared by several `tld` commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def executor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--executor` and `--ray-address`: where the command's tasks run (never what they write)."""
    command = click.option(
        "--ray-address",
        metavar="auto|HOST:PORT",
        help="The Ray cluster of --executor ray (default auto: the cluster this machine joined "
        "with `ray start`).",
    )(command)
    return click.option(
        "--executor",
        type=click.Choice(["local", "ray"]),
        help="local (default): this machine, --workers at a time; ray: a Ray cluster, tasks "
        "placed by the CPUs, GPUs and memory they ask.",
    )(command)


def executor_overrides(executor: str | None, ray_address: str | None) -> dict[str, Any]:
    """The config keys `executor_options` set."""
    given = {"executor": executor, "ray_address": ray_address}
    return {key: value for key, value in given.items() if value is not None}
