"""Downloads of every source through yt-dlp, each verified before it counts, resumable.

Layout (``OUT`` is the download folder, ``STATE`` the acquisition state folder)::

    OUT/<video_id>.<ext>             verified videos
    OUT/.incoming/                   yt-dlp's working files; a .part resumes after a kill
                                 (one already complete is fetched anew)
    STATE/downloads/<video_id>.json  the record of a finished video (ok or failed), written last
    STATE/download-ratelimit.json    limiter of download starts (download.calls_per_period)

Downloads run as `DownloadStage` through `run_stage`, the record being the stage's marker
(a crash leaves no record, only its report in ``run/failures/acquire/``, and is tried again).
A video with an ok record is never fetched again; a verified file without its record (a kill
between the two) is recorded without fetching. Failed videos are fetched again by the next run
when their class is not permanent, or always with ``download.retry_failed``.
A video whose ok record promises a file no longer there (or of another size) is fetched again.
A download counts once its size matches the announced Content-Length and PyAV opens it,
decodes its first frame and finds its index within the file. Each attempt is bounded: yt-dlp's
``max_filesize`` refuses a file announced larger than ``download.max_bytes``, a progress hook
stops a stream that passes it, and an interval timer stops an attempt running longer than
``download.attempt_timeout_s`` (even one blocked on a dripping socket).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yt_dlp import YoutubeDL
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import (
    ContentTooShortError,
    GeoRestrictedError,
    UnsupportedError,
    YoutubeDLError,
)

from timelapse_d.acquire.checks import check_download
from timelapse_d.acquire.provenance import (
    STAGE,
    Candidate,
    Provenance,
    ProvenanceRecord,
    load_record,
    provenance_fields,
)
from timelapse_d.acquire.ratelimit import Limiter
from timelapse_d.acquire.retry import call_with_retry, parse_retry_after, status_class
from timelapse_d.acquire.settings import DownloadConfig
from timelapse_d.errors import ERROR_CLASSES, AcquireError, ProbeError
from timelapse_d.executors import Executor, LocalExecutor, Resources, TaskFailure
from timelapse_d.media.probe import VideoProbe, index_past_end, open_video, probe_video
from timelapse_d.records import VIDEO_STATUS_OK
from timelapse_d.runs import RunDir, write_json
from timelapse_d.stages.base import Outcome, run_stage

LOG = logging.getLogger("timelapse_d")
INCOMING = ".incoming"
# Fragments of yt-dlp error messages (lower case) and their class; the first match wins, so
# the specific ("...not available in your country") comes before the general ("unavailable").
MESSAGE_CLASSES = (
    ("sign in to confirm your age", "private"),
    ("sign in to confirm", "bot_check"),
    ("not a bot", "bot_check"),
    ("captcha", "bot_check"),
    ("available in your country", "geo_blocked"),
    ("geo restriction", "geo_blocked"),
    ("private video", "private"),
    ("video is private", "private"),
    ("members-only", "private"),
    ("premium members", "private"),
    ("video unavailable", "removed"),
    ("has been removed", "removed"),
    ("has been terminated", "removed"),
    ("does not exist", "removed"),
    ("too many requests", "rate_limited"),
    ("drm protected", "unsupported"),
    ("unsupported url", "unsupported"),
    ("requested format is not available", "unsupported"),
    ("no video formats found", "unsupported"),
    ("timed out", "network"),
    ("connection", "network"),
    ("temporary failure", "network"),
    ("content too short", "network"),
    ("bytes read", "network"),
    ("got error:", "network"),  # the downloader's report of an error it would have retried
)
_HTTP_STATUS = re.compile(r"http error (\d{3})")
_PROBE_CLASSES = {"not_a_video": "unsupported", "no_video_stream": "unsupported"}
_SAFE_ID = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class _Fetched:
    path: Path  # in the download folder, verified
    meta: Provenance  # completed from the page the downloader read
    format_id: str
    probe: VideoProbe


@dataclass(frozen=True)
class DownloadReport:
    """The records of the candidates that reached an outcome, and tasks that crashed (no
    record: the next run tries them again)."""

    records: list[ProvenanceRecord]
    crashed: list[TaskFailure]

    def counts(self) -> Counter[str]:
        """ok, and failures by class."""
        return Counter("ok" if r.ok else r.error_class for r in self.records)


def download_all(
    candidates: Iterable[Candidate],
    config: DownloadConfig,
    out_dir: Path,
    state_dir: Path,
    run: RunDir,
    executor: Executor | None = None,
) -> DownloadReport:
    """Download every candidate not done yet through `run_stage` on `executor` (default: this
    machine), at most `config.workers` at once; records for all, crashes recorded in
    run/failures/acquire/.

    The records come in candidate order (the first of candidates sharing a video id).
    """
    check_download(config)
    unique: dict[str, Candidate] = {}
    for candidate in candidates:
        unique.setdefault(candidate.video_id, candidate)
    executor = executor or LocalExecutor()
    limiter = (
        executor.rate_limiter(
            state_dir / f"{STAGE}-ratelimit.json", config.calls_per_period, config.period_s
        )
        if config.calls_per_period
        else None
    )
    stage = DownloadStage(config, out_dir, state_dir, limiter)
    result = run_stage(stage, unique.values(), run, executor)
    records = [ProvenanceRecord.from_row(result.stats[v]) for v in unique if v in result.stats]
    report = DownloadReport(records, list(result.failed.values()))
    LOG.info("download: %s", ", ".join(f"{k} {v}" for k, v in sorted(report.counts().items())))
    return report


@dataclass(frozen=True)
class DownloadStage:
    """Per candidate: its verified file in `out_dir` and its record in
    ``state_dir/download/<video_id>.json``, which is also its marker (see module)."""

    config: DownloadConfig
    out_dir: Path
    state_dir: Path
    limiter: Limiter | None = None  # of download starts, shared by every task (see executor)
    name: str = "acquire"  # crashes in run/failures/acquire/, beside the search's state

    @property
    def resources(self) -> Resources:
        """A quarter of a CPU (it waits on the network), at most `download.workers` at once."""
        return Resources(cpus=0.25, memory_mb=512, concurrency=self.config.workers)

    def item_id(self, candidate: Candidate) -> str:
        return candidate.video_id

    def key(self, candidate: Candidate) -> str:
        return candidate.video_id  # a record stands whatever the settings (see `done`)

    def done(self, run_dir: RunDir, item_id: str, key: str) -> dict[str, Any] | None:
        """The record of an ok video whose file is in place at its size, or of a failure not
        to retry (a permanent class, without ``retry_failed``)."""
        record = load_record(self.state_dir / STAGE / f"{item_id}.json")
        if record is None or _wanted(record, self.config.retry_failed, self.out_dir):
            return None
        return record.to_row()

    def run(self, candidate: Candidate, run_dir: RunDir) -> Outcome:
        if candidate.failure is not None:  # the source already said why it cannot be had
            record = _save(
                self.state_dir, ProvenanceRecord.failed(candidate.meta, candidate.failure)
            )
        else:
            record = download_one(
                candidate, self.config, self.out_dir, self.state_dir, self.limiter
            )
        return Outcome(record.to_row())

    def mark(self, run_dir: RunDir, item_id: str, key: str, outcome: Outcome) -> None:
        """Nothing to write: `run` wrote the record; an old crash report is out of date."""
        run_dir.failure_path(self.name, item_id).unlink(missing_ok=True)


def download_one(
    candidate: Candidate,
    config: DownloadConfig,
    out_dir: Path,
    state_dir: Path,
    limiter: Limiter | None = None,
) -> ProvenanceRecord:
    """Fetch, verify and place one video (retrying transient errors, each attempt's start
    taken from `limiter`); write its record."""
    meta = candidate.meta

    def attempt() -> _Fetched:
        placed = _placed(out_dir, meta)
        if placed is not None:  # verified and moved by a run killed before its record
            return placed
        if limiter is not None:
            limiter.acquire()
        with _deadline(config.attempt_timeout_s):
            return _fetch(candidate, config, out_dir / INCOMING)

    try:
        fetched, attempts = call_with_retry(
            attempt,
            config.retry,
            what=f"download {meta.video_id}",
            on_server_wait=limiter.defer if limiter is not None else None,
        )
    except AcquireError as exc:
        if exc.kind.permanent:
            _discard_incoming(out_dir, meta.video_id)
        LOG.info("download %s: %s (%s)", meta.video_id, exc.error_class, exc.message)
        return _save(state_dir, ProvenanceRecord.failed(meta, exc))
    path, probe = fetched.path, fetched.probe
    record = ProvenanceRecord(
        **provenance_fields(fetched.meta),
        status=VIDEO_STATUS_OK,
        path=path.name,
        format_id=fetched.format_id,
        bytes=path.stat().st_size,
        sha256=_sha256(path),
        width=probe.width,
        height=probe.height,
        fps=probe.fps,
        num_frames=probe.num_frames,
        codec=probe.codec,
        attempts=attempts,
    )
    LOG.debug(
        "download %s: ok, %d bytes, %dx%d", meta.video_id, record.bytes, probe.width, probe.height
    )
    return _save(state_dir, record)


def verify_video(path: Path, expected_bytes: int | None = None) -> VideoProbe:
    """Check a downloaded file: announced size, opens, first frame decodes, index within the file.

    Raises AcquireError: network for a short file (fetch again), unsupported for something that
    is not a video (an HTML page), corrupt for a damaged one.
    """
    size = path.stat().st_size
    if expected_bytes and size != expected_bytes:
        raise AcquireError("network", f"got {size} of the {expected_bytes} bytes announced")
    try:
        probe = probe_video(path)
        container, stream = open_video(path)
    except ProbeError as exc:
        raise AcquireError(_PROBE_CLASSES.get(exc.reason, "corrupt"), exc.detail) from None
    with container:
        if index_past_end(stream, path):
            raise AcquireError("corrupt", "ends before the frames its index lists")
    return probe


def ytdlp_format(max_height: int) -> str:
    """yt-dlp format selector: H.264 MP4 up to `max_height`, then any MP4, then any video up to
    it, then the smallest video. Sound is not fetched: time-lapse data does not use it."""
    fits = f"[height<=?{max_height}]"
    return f"bv*[vcodec^=avc1]{fits}[ext=mp4]/bv*{fits}[ext=mp4]/bv*{fits}/wv*"


def classify_error(exc: BaseException) -> AcquireError:
    """The class of a yt-dlp error: from the HTTP status or exception type in its causes, else
    from its message."""
    message = re.sub(r"^ERROR:\s*", "", str(exc)).strip() or type(exc).__name__
    for cause in _causes(exc):
        if isinstance(cause, AcquireError):  # raised by our own limits inside yt-dlp
            return cause
        if isinstance(cause, HTTPError):
            retry_after = parse_retry_after(cause.response.headers.get("Retry-After"))
            return AcquireError(status_class(cause.status), message, retry_after)
        if isinstance(cause, GeoRestrictedError):
            return AcquireError("geo_blocked", message)
        if isinstance(cause, UnsupportedError):
            return AcquireError("unsupported", message)
        if isinstance(
            cause, TransportError | ContentTooShortError | TimeoutError | ConnectionError
        ):
            return AcquireError("network", message)
    lowered = message.lower()
    status = _HTTP_STATUS.search(lowered)
    if status is not None:
        return AcquireError(status_class(int(status.group(1))), message)
    for fragment, error_class in MESSAGE_CLASSES:
        if fragment in lowered:
            return AcquireError(error_class, message)
    return AcquireError("unsupported", message)


def ytdlp_options(config: DownloadConfig, cookies: Path | None = None) -> dict[str, Any]:
    """Options every YoutubeDL of this module shares: our retries, not yt-dlp's; no cache."""
    options: dict[str, Any] = {
        "logger": _YtdlpLog(),
        "quiet": True,
        "noprogress": True,
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "socket_timeout": config.timeout_s,
        "cachedir": False,
        "updatetime": False,
    }
    if config.proxy:
        options["proxy"] = config.proxy
    if cookies is not None:
        options["cookiefile"] = str(cookies)
    return options


@contextmanager
def private_cookies(config: DownloadConfig) -> Iterator[Path | None]:
    """A private copy of the cookies file, removed afterwards: yt-dlp writes its cookie jar
    back on close, and workers must neither race on the user's file nor leave copies behind."""
    if not config.cookies:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="tld-cookies-") as folder:
        copy = Path(folder) / "cookies.txt"
        shutil.copyfile(Path(config.cookies).expanduser(), copy)
        yield copy


def _fetch(candidate: Candidate, config: DownloadConfig, incoming: Path) -> _Fetched:
    """One download attempt into `incoming`; verified, then moved to the download folder."""
    video_id = candidate.video_id
    announced: dict[str, int | None] = {}
    cap, started = config.byte_cap(), time.monotonic()

    def hook(progress: dict[str, Any]) -> None:
        if progress.get("status") == "finished":
            announced["bytes"] = progress.get("total_bytes")
        elif (progress.get("downloaded_bytes") or 0) > cap:
            raise _too_large(cap)
        elif time.monotonic() - started > config.attempt_timeout_s:
            raise _too_slow(config.attempt_timeout_s)

    with private_cookies(config) as cookies:
        options = ytdlp_options(config, cookies) | {
            "outtmpl": {"default": str(incoming / f"{video_id}.%(ext)s")},
            "format": config.format or ytdlp_format(config.max_height),
            "noplaylist": True,
            "max_filesize": cap,
            "progress_hooks": [hook],
        }
        try:
            # Listed files need no extractor: skip loading them (a tenth of a second each).
            with YoutubeDL(options, auto_init=not candidate.formats) as ydl:
                info = _direct_info(candidate) if candidate.formats else _page_info(ydl, candidate)
                info = ydl.process_ie_result(info, download=True)
        except YoutubeDLError as exc:
            if _http_status(exc) == 416:  # a .part kept from a killed run holds the whole file
                _discard_incoming(incoming.parent, video_id)
                message = "kept partial download was complete; fetching anew"
                raise AcquireError("network", message) from None
            raise classify_error(exc) from None
    downloads = info.get("requested_downloads") or []
    if not downloads:
        raise AcquireError("unsupported", "yt-dlp chose no file to download")
    filepath = downloads[0].get("filepath")
    if not filepath or not Path(filepath).exists():  # skipped: announced over max_filesize
        raise _too_large(cap)
    path = Path(filepath)
    try:
        probe = verify_video(path, announced.get("bytes"))
    except AcquireError:
        path.unlink(missing_ok=True)
        raise
    placed = incoming.parent / path.name
    os.replace(path, placed)
    meta = candidate.meta if candidate.formats else _merge_info(candidate.meta, info)
    return _Fetched(placed, meta, str(info.get("format_id", "")), probe)


def _too_large(cap: int) -> AcquireError:
    return AcquireError("unsupported", f"larger than download.max_bytes ({cap} bytes)")


def _too_slow(limit_s: float) -> AcquireError:
    return AcquireError("network", f"took longer than download.attempt_timeout_s ({limit_s} s)")


@contextmanager
def _deadline(limit_s: float) -> Iterator[None]:
    """Raise the `network` AcquireError of a too slow attempt after `limit_s` seconds, even in a
    blocked read (an interval timer; on the main thread only, elsewhere the hook checks)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _too_slow(limit_s)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _http_status(exc: BaseException) -> int | None:
    """The status of the HTTP error among `exc`'s causes, if any."""
    return next((c.status for c in _causes(exc) if isinstance(c, HTTPError)), None)


def _page_info(ydl: YoutubeDL, candidate: Candidate) -> dict[str, Any]:
    info = ydl.extract_info(candidate.meta.url, download=False, process=False)
    if info.get("_type") in ("playlist", "multi_video"):
        raise AcquireError("unsupported", "is a playlist or channel; list its videos first")
    return info


def _direct_info(candidate: Candidate) -> dict[str, Any]:
    """An info dict for files the source listed: yt-dlp picks one and downloads it."""
    meta = candidate.meta
    return {
        "id": meta.video_id,
        "title": meta.title or meta.video_id,
        "extractor": "timelapse_d",
        "extractor_key": "TimelapseD",
        "webpage_url": meta.page_url or meta.url,
        "formats": [
            {
                "format_id": _SAFE_ID.sub("-", f.label.lower()).strip("-") or f"f{index}",
                "url": f.url,
                "ext": f.ext,
                "width": f.width,
                "height": f.height,
            }
            for index, f in enumerate(candidate.formats)
        ],
    }


def _merge_info(meta: Provenance, info: dict[str, Any]) -> Provenance:
    """Fill provenance the source did not give from what yt-dlp read on the page."""
    found: dict[str, Any] = {
        "page_url": info.get("webpage_url"),
        "owner_id": info.get("channel_id") or info.get("uploader_id"),
        "owner_name": info.get("channel") or info.get("uploader"),
        "license_name": info.get("license"),
        "title": info.get("title") if info.get("extractor") != "generic" else None,  # file name
        "upload_date": _iso_day(info.get("upload_date")),
        "tags": tuple(info.get("tags") or ()),
        "duration_s": info.get("duration"),
    }
    missing = {k: v for k, v in found.items() if v and not getattr(meta, k)}
    return dataclasses.replace(meta, **missing)


def _iso_day(yyyymmdd: Any) -> str | None:
    text = str(yyyymmdd or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:]}" if len(text) == 8 and text.isdigit() else None


def _wanted(record: ProvenanceRecord, retry_failed: bool, out_dir: Path) -> bool:
    if record.ok:
        try:
            return (out_dir / record.path).stat().st_size != record.bytes
        except OSError:
            LOG.info("download %s: its file is gone; fetching again", record.video_id)
            return True
    return retry_failed or not ERROR_CLASSES[record.error_class].permanent


def _placed(out_dir: Path, meta: Provenance) -> _Fetched | None:
    """A verified file already in the download folder (its record was never written)."""
    for path in out_dir.glob(f"{meta.video_id}.*"):
        try:
            return _Fetched(path, meta, "", verify_video(path))
        except AcquireError:
            path.unlink(missing_ok=True)
    return None


def _discard_incoming(out_dir: Path, video_id: str) -> None:
    for path in (out_dir / INCOMING).glob(f"{video_id}.*"):
        path.unlink(missing_ok=True)


def _save(state_dir: Path, record: ProvenanceRecord) -> ProvenanceRecord:
    write_json(state_dir / STAGE / f"{record.video_id}.json", record.to_row())
    return record


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps: yt-dlp keeps causes in ``exc_info`` and ``cause``."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "exc_info", None)
        stack += [current.__context__, current.__cause__, getattr(current, "cause", None)]
        if isinstance(wrapped, tuple) and len(wrapped) > 1:
            stack.append(wrapped[1])


class _YtdlpLog:
    """yt-dlp's messages into our log at DEBUG (errors become records, not log noise)."""

    def debug(self, message: str) -> None:
        LOG.debug("yt-dlp: %s", message)

    info = warning = error = debug
