"""`tld rehydrate MANIFEST --out OUT`: rebuild a published dataset from its clip manifest.

MANIFEST is a Parquet file of clip rows: at least ``clip_id``, ``video_id``, ``source_uri``
(an http(s) URL), ``start_frame`` and ``end_frame``; the other columns of a released
``manifest.parquet`` (``start_time_s``, ``fps``, ``crop_*``...) are used when present, and
provenance columns joined from its ``videos.parquet`` (``title``, ``owner_name``,
``license_*``, ``sha256``...) are carried into the rebuilt ``videos.parquet``.

Each source video with a kept clip is downloaded once, whole, through
:func:`timelapse_d.acquire.download.download_all` (rate limit, retries, verification, error
classes, resume); the kept clips are cut by the encode stage and sharded as `tld build` does,
so clip ids, frame counts and shards match the published ones. A clip whose source cannot be
had stays in the manifest, rejected with reason ``source_<class>`` (``source_removed``...) and
the download error in ``source_error``; published rejected clips are copied as they are. A
downloaded file whose SHA-256 differs from the published one is kept, flagged in the video
row's ``error`` (``source_changed``). Re-running resumes: finished downloads and encodes are
skipped (``--retry-failed`` fetches failed sources again).

Whole files, not ranges: yt-dlp's ``download_ranges`` hands each range to ffmpeg, which
stream-copies from the keyframe before the range start and re-times the frames, so the piece
holds other frames than the clip (81 for a 79-frame clip of the test corpus), its bytes cannot
be checked against the published SHA-256, and a killed range download starts over. On the
local host it was not cheaper either: ffmpeg opened 3 connections per range and the host wrote
14.5 MB for the 7 kept clips of two sources against 2.5 MB for both files whole.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa

from timelapse_d.acquire.download import DownloadReport, download_all
from timelapse_d.acquire.provenance import Candidate, Provenance, ProvenanceRecord
from timelapse_d.config import BuildConfig, fingerprint
from timelapse_d.errors import AcquireError, ConfigError, DataError
from timelapse_d.executors import Executor, make_executor
from timelapse_d.manifest import CLIP_COLUMNS, CLIP_SCHEMA, read_table, write_table, write_videos
from timelapse_d.publish.takedown import without_taken_down_clips
from timelapse_d.records import CLIP_KEPT, CLIP_REJECTED, Clip, Video, is_plain_id
from timelapse_d.report import Summary, summarize
from timelapse_d.runs import RunDir, write_json
from timelapse_d.sources.remote import PROVENANCE_COLUMNS, provenance_row
from timelapse_d.stages.encode import encode_clips, require_ffmpeg
from timelapse_d.stages.shard import shard_clips

LOG = logging.getLogger("timelapse_d")
ACQUIRE = "acquire"  # download records where `tld build` keeps them: `tld attribution OUT` works
DOWNLOADS = "rehydrate"  # files under OUT/sources/rehydrate/
REQUIRED_COLUMNS = ("clip_id", "video_id", "source_uri", "start_frame", "end_frame")
_PROVENANCE_FIELDS = {f.name for f in dataclasses.fields(Provenance)}


@dataclasses.dataclass(frozen=True)
class Published:
    """A published manifest: its clip rows, one candidate per source video, and the
    published SHA-256 of the sources that have one."""

    clips: list[Clip]
    candidates: list[Candidate]
    sha256: dict[str, str]


def read_published(path: Path) -> Published:
    """Read MANIFEST; clip rows keep the clip columns and numeric scores, provenance columns
    go to the candidates. Raises ConfigError for a missing file, DataError for a
    missing column or a bad id."""
    if not path.is_file():
        raise ConfigError(f"manifest not found: {path}")
    table = read_table(path)
    missing = [name for name in REQUIRED_COLUMNS if name not in table.column_names]
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(missing)}")
    clip_columns = [f.name for f in table.schema if _is_clip_column(f)]
    rows = table.to_pylist()
    for number, row in enumerate(rows, 1):
        for name in ("clip_id", "video_id"):
            if not is_plain_id(row[name]):
                raise DataError(
                    f"{path}: row {number} has {name} {row[name]!r}, not a plain id "
                    "(letters, digits, - and _)"
                )
    candidates: dict[str, Candidate] = {}
    sha256: dict[str, str] = {}
    for row in rows:
        if row["video_id"] not in candidates:
            candidates[row["video_id"]] = _candidate(row)
            if row.get("sha256"):
                sha256[row["video_id"]] = row["sha256"]
    clips = [Clip.from_row({name: row[name] for name in clip_columns}) for row in rows]
    return Published(clips, list(candidates.values()), sha256)


def rehydrate(
    manifest: Path, out: Path, config: BuildConfig, executor: Executor | None = None
) -> Summary:
    """Rebuild the dataset of `manifest` in `out` (see module); return the build summary.

    `config` supplies the download settings, `workers`, and the encode and shard settings,
    which must be those of the published build for the clips to come out the same.
    `executor` runs the download, encode and shard tasks (default: the one the config names).
    """
    require_ffmpeg()
    executor = executor or make_executor(config.executor, config.workers, config.ray_address)
    published = without_taken_down_clips(read_published(Path(manifest)), out, Path(manifest).parent)
    run = RunDir(out)
    with run.exclusive():
        handler = run.start_logging()
        try:
            run.summary_path.unlink(missing_ok=True)
            run.save_config(config.to_dict())
            return _rehydrate_locked(published, config, out, run, executor)
        finally:
            LOG.removeHandler(handler)
            handler.close()


def _rehydrate_locked(
    published: Published, config: BuildConfig, out: Path, run: RunDir, executor: Executor
) -> Summary:
    executor.check_storage(out)
    needed = {c.video_id for c in published.clips if _is_kept(c)}
    folder = out / "sources" / DOWNLOADS
    run.check_space(config.min_free_mb, "download")
    report = download_all(
        [c for c in published.candidates if c.video_id in needed],
        config.download,
        folder,
        run.stage_dir(ACQUIRE),
        run,
        executor,
    )
    records = {r.video_id: r for r in report.records}
    ok = {video_id: r for video_id, r in records.items() if r.ok}
    todo = [
        _encodable(c, ok[c.video_id]) for c in published.clips if _is_kept(c) and c.video_id in ok
    ]
    run.check_space(config.min_free_mb, "encode")
    sources = {v: (str(folder / r.path), fingerprint(r.sha256)) for v, r in ok.items()}
    encoded = encode_clips(todo, sources, config.encode, run, executor)
    by_id = {c.clip_id: _with_status(c) for c in encoded}
    crashed = {f.name: f.error for f in report.crashed}
    clips = [
        by_id.get(c.clip_id) or _unavailable(c, records.get(c.video_id or ""), crashed)
        if _is_kept(c)
        else c
        for c in published.clips
    ]
    run.check_space(config.min_free_mb, "shard")
    clips = shard_clips(clips, config.shard, run, executor)
    write_videos(out, _videos(report, published.sha256))
    write_table(out / "manifest.parquet", [c.row() for c in clips], CLIP_SCHEMA)
    summary = summarize(out, finished=True)
    write_json(run.summary_path, dataclasses.asdict(summary))
    return summary


def _is_clip_column(column: pa.Field) -> bool:
    """A declared clip column (`records.Clip`); video facts joined in are left out."""
    return column.name in CLIP_COLUMNS


def _with_status(clip: Clip) -> Clip:
    """A published kept clip after its encode: rejected when it could not be encoded."""
    return dataclasses.replace(clip, status=CLIP_REJECTED if clip.reject_reasons else CLIP_KEPT)


def _is_kept(clip: Clip) -> bool:
    """Kept in the published manifest (a manifest without `status` keeps every clip)."""
    return clip.status in (None, CLIP_KEPT)


def _candidate(row: dict[str, Any]) -> Candidate:
    """The download of a clip row's source, with the provenance columns the row carries."""
    url = str(row["source_uri"] or "")
    carried = {
        name: row[name]
        for name in PROVENANCE_COLUMNS
        if name in _PROVENANCE_FIELDS and row.get(name) not in (None, "", [])
    }
    carried["tags"] = tuple(carried.get("tags", ()))
    meta = Provenance(
        video_id=row["video_id"],
        source=row.get("source") or "urls",
        url=url,
        duration_s=row.get("listed_duration_s"),
        **carried,
    )
    if not url.startswith(("http://", "https://")):
        return Candidate(meta, failure=AcquireError("unsupported", f"not an http(s) URL: {url}"))
    return Candidate(meta)


def _encodable(clip: Clip, record: ProvenanceRecord) -> Clip:
    """The clip with what the encode stage reads, taken from the download where it is missing."""
    start, end = clip.start_frame or 0, clip.end_frame or 0  # required columns, never null
    fps = clip.fps or record.fps
    start_time_s = clip.start_time_s
    return dataclasses.replace(
        clip,
        fps=fps,
        width=clip.width or record.width,
        height=clip.height or record.height,
        num_frames=clip.num_frames or end - start,
        start_time_s=start / fps if start_time_s is None else start_time_s,
    )


def _unavailable(clip: Clip, record: ProvenanceRecord | None, crashed: dict[str, str]) -> Clip:
    """The row of a kept clip whose source could not be downloaded."""
    if record is not None:
        reason, error = f"source_{record.error_class}", _error(record)
    else:  # the download task crashed: see run/failures/acquire/
        reason, error = "download_failed", crashed.get(clip.video_id or "", "download task crashed")
    return dataclasses.replace(
        clip,
        status=CLIP_REJECTED,
        reject_reasons=[reason],
        shard=None,
        clip_bytes=None,
        stream_copied=None,
        source_error=error,
    )


def _videos(report: DownloadReport, published_sha256: dict[str, str]) -> list[Video]:
    """videos.parquet: one row per needed source, its download facts and provenance."""
    videos = []
    for record in report.records:
        error = None if record.ok else _error(record)
        published = published_sha256.get(record.video_id)
        if record.ok and published and published != record.sha256:
            error = f"source_changed: SHA-256 {record.sha256}, published {published}"
            LOG.warning("rehydrate %s: %s", record.video_id, error)
        video = Video(
            record.video_id,
            record.source,
            record.url,
            record.status,
            error,
            codec=record.codec or None,
            width=record.width or None,
            height=record.height or None,
            fps=record.fps or None,
            num_frames=record.num_frames or None,
        )
        videos.append(video.with_provenance(provenance_row(record.to_row())))
    return videos


def _error(record: ProvenanceRecord) -> str:
    return f"{record.error_class}: {record.error_message}"
