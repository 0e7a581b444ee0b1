"""Search Flickr and download in a separate process, so a test can kill it with SIGKILL.

Usage: python acquire_child.py STATE_DIR OUT_DIR SETTINGS_JSON, where the JSON holds the
``flickr`` and ``download`` sections (retry sections included) as dicts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from timelapse_d.acquire.download import download_all
from timelapse_d.acquire.flickr import search_flickr
from timelapse_d.acquire.settings import DownloadConfig, FlickrConfig, RetryConfig
from timelapse_d.runs import RunDir


def main() -> None:
    state, out, raw = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    flickr = FlickrConfig(**{**raw["flickr"], "retry": RetryConfig(**raw["flickr"]["retry"])})
    download = DownloadConfig(
        **{**raw["download"], "retry": RetryConfig(**raw["download"]["retry"])}
    )
    report = download_all(search_flickr(flickr, state), download, out, state, RunDir(state.parent))
    print(json.dumps(dict(report.counts())))


if __name__ == "__main__":
    main()
