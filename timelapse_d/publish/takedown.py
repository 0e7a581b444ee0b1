"""`tld takedown OUT --video ID | --owner NAME | --url URL | --file LIST`: take every clip of
the named source videos out of a build, and keep them out.

The request is recorded first, in ``OUT/takedowns.parquet`` (what was asked, when, which videos
and clips); then every shard holding one of those clips (clip shards and every field shard) is
rewritten without it, each to a temporary file that is read back and checked before it
replaces the old one, so the other samples stay byte-identical. The per-shard and global
manifests, previews, the cut clips and analysis results under ``run/``, a downloaded source
file, the report and the card follow. Every step is idempotent and works from the recorded
requests, so a takedown killed half-way is completed by running it (or any takedown) again.
Later builds and `tld rehydrate` skip recorded videos
(:func:`timelapse_d.publish.takedown_requests.blocklist`).
"""

from __future__ import annotations

import dataclasses
import logging
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from timelapse_d.acquire.provenance import RELEASED
from timelapse_d.acquire.provenance import STAGE as DOWNLOAD_STAGE
from timelapse_d.assemble import CLIPS_TABLE, MANIFEST
from timelapse_d.errors import ConfigError
from timelapse_d.manifest import CLIP_SCHEMA, VIDEO_SCHEMA, read_rows, write_table
from timelapse_d.publish.takedown_requests import (
    KINDS,
    TAKEDOWN_SCHEMA,
    TAKEDOWNS,
    Request,
    blocklist,
    recorded_requests,
)
from timelapse_d.runs import RunDir, write_atomic, write_json
from timelapse_d.shards.fields import verified_members, write_field_shard
from timelapse_d.shards.naming import CLIPS
from timelapse_d.shards.reader import iter_joined
from timelapse_d.shards.tar import FieldMismatch, iter_samples, write_samples
from timelapse_d.sources.remote import Acquired, write_attribution

LOG = logging.getLogger("timelapse_d")


@dataclass
class TakedownReport:
    """What a takedown run did."""

    new_requests: int = 0
    videos: set[str] = field(default_factory=set)
    clips: set[str] = field(default_factory=set)
    shards_rewritten: list[str] = field(default_factory=list)
    shards_removed: list[str] = field(default_factory=list)

    def text(self) -> str:
        return (
            f"takedown: {self.new_requests} new request(s); {len(self.videos)} video(s), "
            f"{len(self.clips)} clip(s) out of the build; {len(self.shards_rewritten)} shard "
            f"file(s) rewritten, {len(self.shards_removed)} removed (now empty); requests in "
            f"{TAKEDOWNS}"
        )


def without_taken_down(acquired: Acquired, out: Path) -> Acquired:
    """The acquired videos less those a takedown in `out` names."""
    is_blocked = blocklist(out)
    videos = [v for v in acquired.videos if not is_blocked(dataclasses.asdict(v))]
    wanted = {v.video_id for v in videos}
    return Acquired(
        videos,
        {k: v for k, v in acquired.provenance.items() if k in wanted},
        [v for v in acquired.failed if not is_blocked(dataclasses.asdict(v))],
    )


def without_taken_down_clips(published: Any, *folders: Path) -> Any:
    """A published manifest (:class:`timelapse_d.rehydrate.Published`) less the clips and
    sources that a takedown recorded in any of `folders` names."""
    is_blocked = blocklist(*folders)
    candidates = [c for c in published.candidates if not is_blocked(dataclasses.asdict(c.meta))]
    wanted = {c.video_id for c in candidates}
    return dataclasses.replace(
        published,
        clips=[c for c in published.clips if c.video_id in wanted and not is_blocked(c.row())],
        candidates=candidates,
    )


def takedown(out: Path, requests: list[Request]) -> TakedownReport:
    """Record `requests` and remove every clip of the videos they name from `out`."""
    if not (out / "manifest.parquet").is_file():
        raise ConfigError(f"{out / 'manifest.parquet'} is missing: nothing to take down")
    run = RunDir(out)
    with run.exclusive():
        handler = run.start_logging()
        try:
            report = TakedownReport()
            _record(out, requests, report)
            _apply(out, run, report)
            LOG.info("%s", report.text())
            return report
        finally:
            LOG.removeHandler(handler)
            handler.close()


def _record(out: Path, requests: list[Request], report: TakedownReport) -> None:
    videos = read_rows(out / "videos.parquet") if (out / "videos.parquet").is_file() else []
    clips = read_rows(out / "manifest.parquet")
    rows = recorded_requests(out)
    known = {(r["kind"], r["value"]) for r in rows}
    for request in requests:
        if request.kind not in KINDS:
            raise ConfigError(f"unknown takedown kind {request.kind!r}; use {', '.join(KINDS)}")
        matched = sorted(v["video_id"] for v in videos if request.matches(v))
        if (request.kind, request.value) in known:
            continue  # recorded by an earlier (perhaps interrupted) run: applied below
        if not matched:
            raise ConfigError(f"no video of {out} matches {request.kind} {request.value!r}")
        gone = sorted(c["clip_id"] for c in clips if c["video_id"] in matched)
        when = datetime.now(UTC).isoformat(timespec="seconds")
        rows.append(
            {"kind": request.kind, "value": request.value, "requested_at": when,
             "video_ids": matched, "clip_ids": gone}
        )  # fmt: skip
        known.add((request.kind, request.value))
        report.new_requests += 1
    table = pa.Table.from_pylist(rows, schema=TAKEDOWN_SCHEMA)
    write_atomic(out / TAKEDOWNS, lambda fh: pq.write_table(table, fh))


def _apply(out: Path, run: RunDir, report: TakedownReport) -> None:
    rows = recorded_requests(out)
    report.videos = {v for r in rows for v in r["video_ids"] or []}
    report.clips = {c for r in rows for c in r["clip_ids"] or []}
    shard_dir = out / "shards"
    rewritten = set()
    for tar in sorted(shard_dir.glob("*-*.tar")) if shard_dir.is_dir() else []:
        if _rewrite_shard(tar, report):
            rewritten.add(tar.name.partition("-")[2])
    for number in sorted(rewritten):
        _verify_aligned(shard_dir / f"{CLIPS}-{number}")
    _drop_rows(out, report)
    _remove_files(out, run, report)
    _refresh(out, run)


def _rewrite_shard(tar: Path, report: TakedownReport) -> bool:
    """Rewrite one shard file without the taken-down clips (and its Parquet for a clip shard);
    remove it when nothing is left. Returns whether it changed."""
    if not _keys(tar) & report.clips:
        return False
    keep = [(key, members) for key, members in iter_samples(tar) if key not in report.clips]
    is_clips = tar.name.startswith(f"{CLIPS}-")
    if not keep:
        tar.unlink()
        if is_clips:
            tar.with_suffix(".parquet").unlink(missing_ok=True)
        report.shards_removed.append(tar.name)
        return False
    keys = [key for key, _ in keep]
    if is_clips:
        write_atomic(tar, lambda fh: write_samples(fh, ({"__key__": k, **m} for k, m in keep)))
        if [key for key, _ in iter_samples(tar)] != keys:
            raise FieldMismatch(f"{tar.name}: keys read back differ after the takedown")
        table = tar.with_suffix(".parquet")
        if table.is_file():
            rows = [r for r in read_rows(table) if r["clip_id"] not in report.clips]
            write_table(table, rows, CLIP_SCHEMA)
    else:
        members = [{"__key__": k, **verified_members(tar, k, m)} for k, m in keep]
        write_field_shard(tar, members, keys)
    report.shards_rewritten.append(tar.name)
    return True


def _keys(tar: Path) -> set[str]:
    """Sample keys of a shard from its member headers alone (the data is skipped)."""
    try:
        with tarfile.open(tar, "r:") as archive:
            return {name.partition(".")[0] for name in archive.getnames()}
    except (tarfile.TarError, OSError) as exc:
        raise FieldMismatch(f"{tar.name} is damaged: {exc}") from exc


def _verify_aligned(clip_shard: Path) -> None:
    """Read a rewritten clip shard joined with every field shard present (digests included)."""
    if not clip_shard.is_file():
        return
    prefix = clip_shard.name.partition("-")[2]
    present = tuple(
        p.name.partition("-")[0]
        for p in sorted(clip_shard.parent.glob(f"*-{prefix}"))
        if not p.name.startswith(f"{CLIPS}-")
    )
    for _ in iter_joined(clip_shard, present):
        pass


def _drop_rows(out: Path, report: TakedownReport) -> None:
    for table in (out / MANIFEST, out / CLIPS_TABLE):  # the manifest and the build's clips
        clips = read_rows(table) if table.is_file() else []
        if any(c["clip_id"] in report.clips or c["video_id"] in report.videos for c in clips):
            kept = [
                c
                for c in clips
                if c["clip_id"] not in report.clips and c["video_id"] not in report.videos
            ]
            write_table(table, kept, CLIP_SCHEMA)
    videos_table = out / "videos.parquet"
    if videos_table.is_file():
        videos = read_rows(videos_table)
        if any(v["video_id"] in report.videos for v in videos):
            rows = [v for v in videos if v["video_id"] not in report.videos]
            write_table(videos_table, rows, VIDEO_SCHEMA)
            _remove_sources(out, [v for v in videos if v["video_id"] in report.videos])


def _remove_sources(out: Path, videos: list[dict[str, Any]]) -> None:
    """Source files the build downloaded or generated inside OUT (never files outside it)."""
    root = out.resolve()
    for video in videos:
        if not video.get("local_path"):
            continue
        path = (out / video["local_path"]).resolve()
        if path.is_relative_to(root) and path.parent != root:
            for sibling in path.parent.glob(f"{path.name.partition('.')[0]}.*"):
                sibling.unlink()


def _remove_files(out: Path, run: RunDir, report: TakedownReport) -> None:
    """Cut clips, previews, download records and analysis results of the taken-down videos."""
    # Imported here: the build imports this module (for its blocklist), never annotation code.
    from timelapse_d.annotation.previews import STAGE as PREVIEWS_STAGE
    from timelapse_d.annotation.previews import preview_path

    for clip_id in report.clips:
        for path in (
            preview_path(out, clip_id),
            run.marker(PREVIEWS_STAGE, clip_id),
            run.stage_dir("encode") / f"{clip_id}.mp4",
            run.marker("encode", clip_id),
        ):
            path.unlink(missing_ok=True)
    for video_id in report.videos:
        for records in (DOWNLOAD_STAGE, RELEASED):
            (run.stage_dir("acquire") / records / f"{video_id}.json").unlink(missing_ok=True)
        run.marker("analyze", video_id).unlink(missing_ok=True)
        (run.stage_dir("analyze") / f"{video_id}.json").unlink(missing_ok=True)
    if report.shards_rewritten or report.shards_removed:
        run.marker("shard", "all").unlink(missing_ok=True)  # a rebuild re-plans the shards


def _refresh(out: Path, run: RunDir) -> None:
    """The summary, the card, and the report and attribution list when they exist."""
    from timelapse_d.publish.card import write_card
    from timelapse_d.publish.report import REPORT_NAME, write_report
    from timelapse_d.report import summarize

    if run.summary_path.is_file():
        write_json(run.summary_path, dataclasses.asdict(summarize(out, finished=True)))
    write_card(out)
    if (out / REPORT_NAME).is_file():
        write_report(out)
    if (out / "ATTRIBUTION.txt").is_file():
        write_attribution(out)
