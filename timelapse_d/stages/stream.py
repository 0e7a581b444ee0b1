"""Streamed downloads (``download.keep_sources: false``): disk use flat in corpus size.

Remote videos are processed in waves of ``download.videos_in_flight``: each wave is downloaded,
analysed, the clips that may be kept encoded (each clip decided on its own, with its human
label but without the cross-video duplicate check: a superset of what the build keeps), and
then its source files are deleted and recorded as released (``run/acquire/released/<id>.json``).
The disk holds one wave of sources besides the encoded clips and the shards.

Every step goes through `run_stage` with the usual markers; a remote video's task keys name its
bytes (the download's SHA-256), not its file, so they hold once the file is gone. A video is
fetched again only when its analysis or an encode of one of its clips is not done under the
current config (a changed setting, a human keep of a rejected clip, a lost encode); a run killed
between waves goes on from the first video not released.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from timelapse_d.acquire.download import DownloadReport, download_all
from timelapse_d.acquire.provenance import (
    RELEASED,
    Candidate,
    ProvenanceRecord,
    load_record,
    to_source_videos,
)
from timelapse_d.acquire.provenance import STAGE as RECORDS
from timelapse_d.assemble import decide_all, read_labels
from timelapse_d.config import BuildConfig
from timelapse_d.executors import Executor
from timelapse_d.records import CLIP_KEPT, Clip, Label, SourceVideo
from timelapse_d.runs import RunDir, write_json
from timelapse_d.stages.analyze import AnalyzeStage, analyze_videos, encode_sources, read_result
from timelapse_d.stages.encode import EncodeItem, EncodeStage, encode_clips

LOG = logging.getLogger("timelapse_d")


def stream_downloads(
    candidates: Iterable[Candidate],
    config: BuildConfig,
    folder: Path,
    run: RunDir,
    executor: Executor,
) -> DownloadReport:
    """Download, process and release the candidates wave by wave (see module); the records of
    all of them, as :func:`download_all` gives them."""
    state = run.stage_dir("acquire")
    unique: dict[str, Candidate] = {}
    for candidate in candidates:
        unique.setdefault(candidate.video_id, candidate)
    labels = read_labels(run.out)
    records: dict[str, ProvenanceRecord] = {}
    pending = []
    for video_id, candidate in unique.items():
        record = load_record(state / RECORDS / f"{video_id}.json")
        if record is not None and record.ok:
            video = to_source_videos([record], folder)[0]
            if _complete(video, config, run, labels):
                release(video, record, run)
                records[video_id] = record
                continue
        pending.append(candidate)
    size = config.download.videos_in_flight
    LOG.info("stream: %d videos done, %d to process %d at a time", len(records), len(pending), size)
    crashed = []
    for _, report in download_waves(pending, config, folder, run, executor):
        crashed += report.crashed
        videos = to_source_videos(report.records, folder)
        _process(videos, config, run, executor, labels)
        by_id = {r.video_id: r for r in report.records}
        for video in videos:
            if _complete(video, config, run, labels):  # else kept: the next run needs it
                release(video, by_id[video.video_id], run)
        records.update(by_id)
    return DownloadReport([records[v] for v in unique if v in records], crashed)


def download_waves(
    candidates: list[Candidate], config: BuildConfig, folder: Path, run: RunDir, executor: Executor
) -> Iterator[tuple[list[Candidate], DownloadReport]]:
    """Download `candidates` ``download.videos_in_flight`` at a time into `folder` (the free
    space checked before each wave); yield each wave with its report once it is downloaded."""
    size = config.download.videos_in_flight
    for start in range(0, len(candidates), size):
        run.check_space(config.min_free_mb, "download")
        wave = candidates[start : start + size]
        yield (
            wave,
            download_all(wave, config.download, folder, run.stage_dir("acquire"), run, executor),
        )


def _process(
    videos: list[SourceVideo],
    config: BuildConfig,
    run: RunDir,
    executor: Executor,
    labels: Mapping[str, Label] | None,
) -> None:
    """Analyse the videos and encode every clip that may be kept."""
    analyzed = analyze_videos(videos, config.analyze, run, executor)
    clips = [
        Clip.from_row(row)
        for video in videos
        if video.video_id in analyzed
        for row in analyzed[video.video_id]["clips"]
    ]
    wanted = _may_keep(clips, config, labels)
    sources = encode_sources(videos, config.analyze, analyzed)
    encode_clips(wanted, sources, config.encode, run, executor)


def _may_keep(
    clips: list[Clip], config: BuildConfig, labels: Mapping[str, Label] | None
) -> list[Clip]:
    """The clips kept when decided on their own (no duplicate check): a superset of the kept."""
    decided = decide_all(clips, config.filter, labels)
    return [clip for clip, d in zip(clips, decided, strict=True) if d.status == CLIP_KEPT]


def _complete(
    video: SourceVideo, config: BuildConfig, run: RunDir, labels: Mapping[str, Label] | None
) -> bool:
    """True when the video's analysis and the encodes of its clips that may be kept are done
    under the current config: the build needs its file no more."""
    analyze = AnalyzeStage(config.analyze)
    source_key = analyze.key(video)
    if analyze.done(run, video.video_id, source_key) is None:
        return False
    clips = [Clip.from_row(row) for row in read_result(run, video.video_id)["clips"]]
    encode = EncodeStage(config.encode)
    for clip in _may_keep(clips, config, labels):
        item = EncodeItem(clip.row(), video.path, source_key)
        if encode.done(run, clip.clip_id, encode.key(item)) is None:
            return False
    return True


def release(video: SourceVideo, record: ProvenanceRecord, run: RunDir) -> None:
    """Delete the video's file (the download record stays) and record that it was released."""
    path = Path(video.path)
    if path.exists():
        released = {"path": record.path, "bytes": record.bytes, "sha256": record.sha256}
        write_json(run.stage_dir("acquire") / RELEASED / f"{video.video_id}.json", released)
        path.unlink()
