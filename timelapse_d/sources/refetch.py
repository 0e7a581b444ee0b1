"""Sources a streamed build released (``download.keep_sources: false``), fetched again for a
while: `tld annotate push` cuts its previews from them.

The videos come from the source's listing (a Flickr search's saved answers, a playlist, the
URL list), wave by wave (``download.videos_in_flight`` at a time, through the usual download
stage, rate limit and checks), and each wave is deleted again once used. A video whose bytes
changed since the build analysed it, or that cannot be had any more, is left out and named at
the end: its clips need `tld build` first.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from pathlib import Path

from timelapse_d.acquire.provenance import STAGE as RECORDS
from timelapse_d.acquire.provenance import load_record, to_source_videos
from timelapse_d.config import saved_build_config
from timelapse_d.errors import DataError
from timelapse_d.executors import Executor
from timelapse_d.runs import RunDir
from timelapse_d.sources.remote import list_candidates
from timelapse_d.stages.stream import download_waves, release

LOG = logging.getLogger("timelapse_d")


def refetched(
    video_ids: Collection[str], out: Path, executor: Executor
) -> Iterator[dict[str, Path]]:
    """Yield {video_id: file} wave by wave for the released videos of the build in `out`,
    each wave deleted again when the caller asks for the next; DataError at the end naming the
    videos that could not be had with the bytes the build analysed."""
    config = saved_build_config(out)
    run = RunDir(out)
    state, folder = run.stage_dir("acquire"), out / "sources" / config.source
    wanted = set(video_ids)
    candidates = [c for c in list_candidates(config, out, run) if c.video_id in wanted]
    lost = sorted(wanted - {c.video_id for c in candidates})
    analysed = {c.video_id: load_record(state / RECORDS / f"{c.video_id}.json") for c in candidates}
    LOG.info("fetching %d released source videos again for a while", len(candidates))
    for wave, report in download_waves(candidates, config, folder, run, executor):
        fetched = {r.video_id: r for r in report.records if r.ok}
        videos = to_source_videos(fetched.values(), folder)
        same = {
            v.video_id: Path(v.path)
            for v in videos
            if (old := analysed[v.video_id]) is not None and old.sha256 == v.content_id
        }
        lost += sorted({c.video_id for c in wave} - set(same))
        try:
            yield same
        finally:
            for video in videos:
                release(video, fetched[video.video_id], run)
    if lost:
        raise DataError(
            f"{len(lost)} released source video(s) could not be fetched again with the bytes the "
            f"build analysed ({', '.join(lost[:5])}): run `tld build` on this folder first"
        )
