"""The `tld` command line: the root group in :mod:`.root`, one module per command group."""

from timelapse_d.cli.root import cli, main

__all__ = ["cli", "main"]
