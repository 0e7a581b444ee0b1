"""Sources `flickr`, `youtube` and `urls`: find videos, download them (yt-dlp), keep provenance.

Search answers and download outcomes persist under ``OUT/run/acquire/``, files under
``OUT/sources/<source>/`` (deleted once processed unless ``download.keep_sources``); a re-run
repeats no finished call or download. Every candidate
becomes a row of ``videos.parquet``: downloaded ones with their provenance (owner, licence,
page, dates, tags, place) and file facts, failed ones with the error class and message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timelapse_d.config import BuildConfig
from timelapse_d.errors import ConfigError
from timelapse_d.executors import Executor, LocalExecutor
from timelapse_d.records import VIDEO_STATUS_FAILED, SourceVideo, Video
from timelapse_d.runs import RunDir, write_atomic
from timelapse_d.sources import REMOTE_SOURCES

if TYPE_CHECKING:
    from timelapse_d.acquire.provenance import Candidate

# videos.parquet columns filled from a download's provenance record.
PROVENANCE_COLUMNS = (
    "page_url",
    "owner_id",
    "owner_name",
    "license_id",
    "license_name",
    "license_url",
    "title",
    "upload_date",
    "taken_date",
    "tags",
    "latitude",
    "longitude",
    "sha256",
)


@dataclass
class Acquired:
    """What the acquire stage hands on: videos to analyse, provenance per video id, and the
    `failed` rows of the candidates that could not be downloaded."""

    videos: list[SourceVideo]
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: list[Video] = field(default_factory=list)


def acquire_remote(
    config: BuildConfig, out: Path, run: RunDir, executor: Executor | None = None
) -> Acquired:
    """Search (or list) the source, download what is missing (on `executor`), and describe
    every candidate.

    With ``download.keep_sources`` false the downloads stream (:mod:`timelapse_d.stages.stream`:
    analysed, encoded and deleted wave by wave on `executor`), else they all stay on disk.
    """
    from timelapse_d.acquire.download import download_all
    from timelapse_d.acquire.provenance import to_source_videos
    from timelapse_d.stages.stream import stream_downloads

    state = run.stage_dir("acquire")
    candidates = list_candidates(config, out, run)
    folder = out / "sources" / config.source
    if config.download.keep_sources:
        report = download_all(candidates, config.download, folder, state, run, executor)
    else:
        report = stream_downloads(candidates, config, folder, run, executor or LocalExecutor())
    provenance = {r.video_id: provenance_row(r.to_row()) for r in report.records}
    failed = [
        Video(
            r.video_id, r.source, r.url, VIDEO_STATUS_FAILED, f"{r.error_class}: {r.error_message}"
        ).with_provenance(provenance[r.video_id])
        for r in report.records
        if not r.ok
    ]
    return Acquired(to_source_videos(report.records, folder), provenance, failed)


def list_candidates(config: BuildConfig, out: Path, run: RunDir) -> list[Candidate]:
    """The source's videos to download: a Flickr search (answers saved under
    ``OUT/run/acquire/``, so a repeat makes no call), a YouTube query or playlist, or a URL
    list; without the videos `tld takedown` took out."""
    from timelapse_d.acquire.checks import check_download, check_flickr, check_youtube
    from timelapse_d.publish.takedown_requests import blocklist

    check_download(config.download)
    if config.source == "flickr":
        from timelapse_d.acquire.flickr import search_flickr

        check_flickr(config.flickr)
        candidates = search_flickr(config.flickr, run.stage_dir("acquire"))
    elif config.source == "youtube":
        from timelapse_d.acquire.urls import expand_youtube

        check_youtube(config.youtube)
        candidates = expand_youtube(config.youtube, config.download)
    else:
        assert config.source in REMOTE_SOURCES
        from timelapse_d.acquire.urls import read_url_list

        if not config.input:
            raise ConfigError("--source urls needs --input FILE (a text or Parquet URL list)")
        candidates = read_url_list(Path(config.input).expanduser())
    is_blocked = blocklist(out)  # videos `tld takedown` took out are never fetched again
    return [c for c in candidates if not is_blocked(dataclasses.asdict(c.meta))]


def provenance_row(record: dict[str, Any]) -> dict[str, Any]:
    """The videos.parquet provenance columns of a provenance record (empty strings as null)."""
    row = {name: record.get(name) or None for name in PROVENANCE_COLUMNS}
    row["download_bytes"] = record.get("bytes") or None
    row["download_attempts"] = record.get("attempts") or None
    row["listed_duration_s"] = record.get("duration_s")
    return row


def write_attribution(out: Path, target: Path | None = None, every_download: bool = False) -> Path:
    """Write the credit lines a release must ship: one per source video with a kept clip (or
    per downloaded video with `every_download`), from the provenance kept in OUT/run/."""
    from timelapse_d.acquire.provenance import attribution_lines, load_records
    from timelapse_d.manifest import read_rows

    records = load_records(RunDir(out).stage_dir("acquire"))
    if not records:
        raise ConfigError(f"{out} has no downloaded videos (attribution is for remote sources)")
    if not every_download:
        manifest = out / "manifest.parquet"
        if not manifest.is_file():
            raise ConfigError(f"{manifest} is missing: finish `tld build` first")
        used = {row["video_id"] for row in read_rows(manifest) if row["status"] == "kept"}
        records = [r for r in records if r.video_id in used]
    target = target or out / "ATTRIBUTION.txt"
    lines = attribution_lines(records)
    header = f"Source videos of this dataset ({len(lines)}), with their authors and licences.\n"
    write_atomic(target, lambda fh: fh.write((header + "\n".join(lines) + "\n").encode()))
    return target
