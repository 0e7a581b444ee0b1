"""timelapse-d: build and curate time-lapse landscape video datasets."""

__version__ = "0.1.0"
