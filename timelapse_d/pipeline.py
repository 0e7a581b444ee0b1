"""`tld build`: acquire -> analyze -> decide -> encode -> shard -> assemble, resumable per task.

A remote source without ``download.keep_sources`` streams (:mod:`timelapse_d.stages.stream`):
acquire already analyses and encodes each wave of downloads before deleting it, so the later
stages find that work done; the shard stage then deletes the sharded clips' encode files.

Each per-item stage goes through :func:`timelapse_d.stages.base.run_stage` on the executor the
`executor` config key names: an item whose marker carries the current fingerprint is skipped,
so a re-run after a crash or `kill -9` does only what is missing, and a changed config re-runs
exactly the tasks whose inputs it changes. The global outputs (manifests, shards) are rebuilt
from the per-task outputs and replaced atomically, so they never mix an old and a new config.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any

from timelapse_d.assemble import assemble, decide_all, read_labels, write_clips
from timelapse_d.config import BuildConfig
from timelapse_d.executors import Executor, make_executor
from timelapse_d.manifest import write_videos
from timelapse_d.publish.card import write_card
from timelapse_d.publish.takedown import without_taken_down
from timelapse_d.records import CLIP_KEPT, Clip, Video
from timelapse_d.report import Summary, summarize
from timelapse_d.runs import RunDir, write_json
from timelapse_d.sources import streams
from timelapse_d.stages.acquire import Acquired, acquire, local_path
from timelapse_d.stages.analyze import analyze_videos, encode_sources
from timelapse_d.stages.encode import encode_clips, require_ffmpeg
from timelapse_d.stages.filter import find_duplicates
from timelapse_d.stages.shard import shard_clips

LOG = logging.getLogger("timelapse_d")


def build(config: BuildConfig, out: Path, executor: Executor | None = None) -> Summary:
    """Run the whole build into `out`; return the summary (also saved in run/summary.json).

    `executor` runs the tasks (default: the one `config.executor` names, `config.workers` at
    a time); it changes how the build runs, never what it writes. A build that fails before
    writing anything but its log and config leaves no `out` behind when it created it.
    """
    require_ffmpeg()
    executor = executor or make_executor(config.executor, config.workers, config.ray_address)
    run = RunDir(out)
    created = not out.exists()
    try:
        with run.exclusive():
            handler = run.start_logging()
            try:
                return _build_locked(config, out, run, executor)
            finally:
                LOG.removeHandler(handler)
                handler.close()
    except Exception:
        bookkeeping = {run.root / name for name in ("lock", "build.log", "config.yaml")}
        if created and all(p in bookkeeping for p in out.rglob("*") if not p.is_dir()):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _build_locked(config: BuildConfig, out: Path, run: RunDir, executor: Executor) -> Summary:
    executor.check_storage(out)
    if config.executor != "local" and not config.encode.threads:
        LOG.warning("encode.threads is 0: clips encoded on nodes with other core counts differ")
    run.summary_path.unlink(missing_ok=True)
    run.save_config(config.to_dict())
    run.check_space(config.min_free_mb, "acquire")
    acquired = without_taken_down(acquire(config, out, run, executor), out)
    LOG.info("build: %d source videos from %s", len(acquired.videos), config.source)
    run.check_space(config.min_free_mb, "analyze")
    analyzed = analyze_videos(acquired.videos, config.analyze, run, executor)
    scored = [Clip.from_row(c) for result in analyzed.values() for c in result["clips"]]
    clips = find_duplicates(scored, config.filter)
    labels = read_labels(out)
    kept = {c.clip_id for c in decide_all(clips, config.filter, labels) if c.status == CLIP_KEPT}
    run.check_space(config.min_free_mb, "encode")
    sources = encode_sources(acquired.videos, config.analyze, analyzed)
    to_encode = [c for c in clips if c.clip_id in kept]
    encoded = {c.clip_id: c for c in encode_clips(to_encode, sources, config.encode, run, executor)}
    clips = [encoded.get(c.clip_id, c) for c in clips]
    run.check_space(config.min_free_mb, "shard")
    decided = decide_all(clips, config.filter, labels)
    sharded = shard_clips(decided, config.shard, run, executor, release_encodes=streams(config))
    shards = {c.clip_id: c.shard for c in sharded}
    write_videos(out, _videos(acquired, analyzed, out))
    write_clips(out, [dataclasses.replace(c, shard=shards[c.clip_id]) for c in clips])
    assemble(out, config.filter)
    summary = summarize(out, finished=True)
    write_json(run.summary_path, dataclasses.asdict(summary))
    write_card(out)
    return summary


def _videos(acquired: Acquired, analyzed: dict[str, dict[str, Any]], out: Path) -> list[Video]:
    """videos.parquet: each analyzed video with its provenance, then failed downloads."""
    videos = [
        Video.from_row(analyzed[v.video_id]["video"]).with_provenance(
            acquired.provenance.get(v.video_id, {}), local_path(v.path, out)
        )
        for v in acquired.videos
        if v.video_id in analyzed
    ]
    return videos + acquired.failed
