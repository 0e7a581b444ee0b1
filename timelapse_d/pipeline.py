"""`tld build`: acquire -> analyze -> filter -> encode -> shard, resumable at task level.

Each per-item stage runs through :func:`timelapse_d.executors.run_tasks`; a task whose marker
carries the current fingerprint is skipped, so a re-run after a crash or `kill -9` does only
what is missing, and a changed config re-runs exactly the tasks whose inputs it changes.
The global outputs (manifests, shards) are rebuilt from the per-task outputs and replaced
atomically, so they never mix an old and a new config.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any

from timelapse_d.assemble import assemble, decide_all, read_labels, write_clips
from timelapse_d.config import BuildConfig, ConfigError, fingerprint
from timelapse_d.executors import Task, TaskFailure, run_tasks
from timelapse_d.manifest import VIDEO_SCHEMA, write_table
from timelapse_d.publish.card import write_card
from timelapse_d.publish.takedown import without_taken_down
from timelapse_d.records import CLIP_KEPT, Clip, SourceVideo
from timelapse_d.report import Summary, summarize
from timelapse_d.runs import RunDir, host_error_text, read_json, write_json
from timelapse_d.sources import REMOTE_SOURCES, SOURCES
from timelapse_d.sources.local import find_videos
from timelapse_d.sources.remote import Acquired, acquire_remote
from timelapse_d.stages import analyze, encode, shard
from timelapse_d.stages.filter import find_duplicates

LOG = logging.getLogger("timelapse_d")


def acquire(config: BuildConfig, out: Path, run: RunDir) -> Acquired:
    """The source videos of this build (and, for remote sources, provenance and failures)."""
    if config.source == "synthetic":
        from timelapse_d.sources.synthetic import acquire_synthetic

        return Acquired(acquire_synthetic(config.synthetic, out, run))
    if config.source == "local":
        if not config.input:
            raise ConfigError("--source local needs --input DIR_OR_FILE")
        return Acquired(find_videos(Path(config.input).expanduser(), skip=out))
    if config.source in REMOTE_SOURCES:
        return acquire_remote(config, out, run)
    raise ConfigError(f"unknown source {config.source!r}; available: {', '.join(SOURCES)}")


def _local_path(path: str | Path, out: Path) -> str:
    """`path` relative to the build folder when inside it (the folder can move), else absolute."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(out.resolve()).as_posix()
    except ValueError:
        return str(resolved)


def _file_identity(path: str) -> list[int]:
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime_ns]


def _analyze_task(video: SourceVideo, config: BuildConfig, run: RunDir, key: str) -> str:
    result = analyze.analyze_video(video, config.analyze)
    path = run.stage_dir(analyze.STAGE) / f"{video.video_id}.json"
    write_json(path, result)
    run.mark_done(analyze.STAGE, video.video_id, key, result["stats"], [path])
    return video.video_id


def run_analyze(
    videos: list[SourceVideo], config: BuildConfig, run: RunDir
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Analyze every video not done yet; return {video_id: result} and the fingerprints."""
    section = dataclasses.asdict(config.analyze)
    keys = {v.video_id: fingerprint(section, v.source_uri, _file_identity(v.path)) for v in videos}
    todo = [v for v in videos if not run.is_done(analyze.STAGE, v.video_id, keys[v.video_id])]
    LOG.info("analyze: %d videos, %d already done", len(videos), len(videos) - len(todo))
    tasks = [Task(v.video_id, _analyze_task, (v, config, run, keys[v.video_id])) for v in todo]
    _collect_failures(run, analyze.STAGE, run_tasks(tasks, config.workers, "analyze"))
    results = {}
    for video in videos:
        if run.is_done(analyze.STAGE, video.video_id, keys[video.video_id]):
            results[video.video_id] = read_json(
                run.stage_dir(analyze.STAGE) / f"{video.video_id}.json"
            )
    return results, keys


def _encode_task(
    clip: dict[str, Any], source: str, config: BuildConfig, run: RunDir, key: str
) -> dict[str, Any]:
    out = run.stage_dir(encode.STAGE) / f"{clip['clip_id']}.mp4"
    try:
        outcome: dict[str, Any] = encode.encode_clip(clip, Path(source), out, config.encode)
    except encode.EncodeError as exc:
        out.unlink(missing_ok=True)
        outcome = {"encode_error": str(exc)}
    outputs = [] if "encode_error" in outcome else [out]
    run.mark_done(encode.STAGE, clip["clip_id"], key, outcome, outputs)
    return outcome


def _encoded(run: RunDir, clip_id: str, key: str) -> dict[str, Any] | None:
    """The outcome of a finished encode; None when it must run (again): not done, or recorded
    with an error of the machine by an earlier version of the tool."""
    outcome = run.done_stats(encode.STAGE, clip_id, key)
    if outcome is None or host_error_text(outcome.get("encode_error")):
        return None
    return outcome


def run_encode(
    clips: list[dict[str, Any]],
    paths: dict[str, str],
    video_keys: dict[str, str],
    config: BuildConfig,
    run: RunDir,
) -> dict[str, dict[str, Any]]:
    """Encode every kept clip not done yet; return {clip_id: {'clip_bytes'|'encode_error'}}."""
    section = dataclasses.asdict(config.encode)
    keys = {c["clip_id"]: fingerprint(section, video_keys[c["video_id"]]) for c in clips}
    todo = [c for c in clips if _encoded(run, c["clip_id"], keys[c["clip_id"]]) is None]
    LOG.info("encode: %d clips, %d already done", len(clips), len(clips) - len(todo))
    tasks = [
        Task(c["clip_id"], _encode_task, (c, paths[c["video_id"]], config, run, keys[c["clip_id"]]))
        for c in todo
    ]
    _collect_failures(run, encode.STAGE, run_tasks(tasks, config.workers, "encode"))
    outcomes = {c["clip_id"]: _encoded(run, c["clip_id"], keys[c["clip_id"]]) for c in clips}
    return {clip_id: stats for clip_id, stats in outcomes.items() if stats is not None}


def _collect_failures(run: RunDir, stage: str, results: Any) -> None:
    for task, result in results:
        if isinstance(result, TaskFailure):
            LOG.error("%s task %s failed: %s", stage, task.name, result.error)
            run.record_failure(stage, task.name, f"{result.error}\n\n{result.traceback}")


def apply_encoding(clip: Clip, encoded: dict[str, dict[str, Any]]) -> Clip:
    """An encoded clip with its encode outcome (and stage reason when it failed)."""
    outcome = encoded.get(clip.clip_id)
    if outcome is None:  # the encode task failed unexpectedly: see run/failures/encode/
        return dataclasses.replace(clip, reject_reasons=["encode_failed"])
    if "encode_error" in outcome:
        error = outcome["encode_error"]
        return dataclasses.replace(clip, reject_reasons=["unreadable"], encode_error=error)
    copied = outcome.get("stream_copied", False)
    return dataclasses.replace(clip, clip_bytes=outcome["clip_bytes"], stream_copied=copied)


def run_shard(
    clips: list[dict[str, Any]], config: BuildConfig, out: Path, run: RunDir
) -> list[dict[str, Any]]:
    """Shard the kept clips (skipped when the same rows were already sharded)."""
    kept = sorted((c for c in clips if c["status"] == CLIP_KEPT), key=lambda c: c["clip_id"])
    plan = shard.plan_shards(kept, config.shard.max_bytes)
    key = fingerprint(dataclasses.asdict(config.shard), kept)
    names = {row["clip_id"]: shard.shard_name(i) for i, rows in enumerate(plan) for row in rows}
    if not run.is_done(shard.STAGE, "all", key):
        shard_dir = out / "shards"
        shard.write_shards(
            shard_dir, plan, lambda row: run.stage_dir(encode.STAGE) / f"{row['clip_id']}.mp4"
        )
        written = [shard_dir / shard.shard_name(i) for i in range(len(plan))]
        written += [path.with_suffix(".parquet") for path in written]
        run.mark_done(shard.STAGE, "all", key, {"shards": len(plan)}, written)
    return [{**c, "shard": names.get(c["clip_id"])} for c in clips]


def build(config: BuildConfig, out: Path) -> Summary:
    """Run the whole build into `out`; return the summary (also saved in run/summary.json).

    A build that fails before writing anything but its log and config leaves no `out`
    behind when it created it.
    """
    encode.require_ffmpeg()
    run = RunDir(out)
    created = not out.exists()
    try:
        with run.exclusive():
            return _build_locked(config, out, run)
    except Exception:
        bookkeeping = {run.root / name for name in ("lock", "build.log", "config.yaml")}
        if created and all(p in bookkeeping for p in out.rglob("*") if not p.is_dir()):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _build_locked(config: BuildConfig, out: Path, run: RunDir) -> Summary:
    handler = run.start_logging()
    try:
        run.summary_path.unlink(missing_ok=True)
        run.save_config(config.to_dict())
        run.check_space(config.min_free_mb, "acquire")
        acquired = without_taken_down(acquire(config, out, run), out)
        videos = acquired.videos
        LOG.info("build: %d source videos from %s", len(videos), config.source)
        run.check_space(config.min_free_mb, "analyze")
        results, video_keys = run_analyze(videos, config, run)
        video_rows = [
            {
                **results[v.video_id]["video"],
                **acquired.provenance.get(v.video_id, {}),
                "local_path": _local_path(v.path, out),
            }
            for v in videos
            if v.video_id in results
        ] + acquired.failed_rows
        scored = [
            Clip.from_row(clip)
            for v in videos
            if v.video_id in results
            for clip in results[v.video_id]["clips"]
        ]
        clips = find_duplicates(scored, config.filter)
        labels = read_labels(out)
        kept = {
            c.clip_id for c in decide_all(clips, config.filter, labels) if c.status == CLIP_KEPT
        }
        paths = {v.video_id: v.path for v in videos}
        run.check_space(config.min_free_mb, "encode")
        to_encode = [c.row() for c in clips if c.clip_id in kept]
        encoded = run_encode(to_encode, paths, video_keys, config, run)
        clips = [apply_encoding(c, encoded) if c.clip_id in kept else c for c in clips]
        run.check_space(config.min_free_mb, "shard")
        rows = [c.row() for c in decide_all(clips, config.filter, labels)]
        shards = {r["clip_id"]: r["shard"] for r in run_shard(rows, config, out, run)}
        write_table(out / "videos.parquet", video_rows, VIDEO_SCHEMA)
        write_clips(out, [dataclasses.replace(c, shard=shards[c.clip_id]) for c in clips])
        assemble(out, config.filter)
        summary = summarize(out, finished=True)
        write_json(run.summary_path, dataclasses.asdict(summary))
        write_card(out)
        return summary
    finally:
        logging.getLogger("timelapse_d").removeHandler(handler)
        handler.close()
