"""`python -m timelapse_d` runs the `tld` command line."""

from timelapse_d.cli import main

main()
