"""`--source urls` and `--source youtube`: candidates from a URL list or a yt-dlp listing.

A URL list is a text file (one URL a line, ``#`` starts a comment line) or a Parquet file with
a ``url`` column; Parquet columns named like provenance fields (``title``, ``license_name``,
``video_id``...) are carried along, so a published manifest keeps its ids and credits.
YouTube searches, playlists and channels are listed with yt-dlp's flat extraction (one request
per page of results, no video page read) into one candidate per video.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from yt_dlp import YoutubeDL
from yt_dlp.utils import YoutubeDLError, unsmuggle_url

from timelapse_d.acquire.checks import check_download, check_youtube
from timelapse_d.acquire.download import classify_error, private_cookies, ytdlp_options
from timelapse_d.acquire.provenance import Candidate, Provenance
from timelapse_d.acquire.retry import call_with_retry
from timelapse_d.acquire.settings import DownloadConfig, YoutubeConfig
from timelapse_d.errors import ConfigError, DataError
from timelapse_d.manifest import read_table
from timelapse_d.records import is_plain_id, video_id_for

_CARRIED = tuple(
    f.name for f in dataclasses.fields(Provenance) if f.name not in ("url", "latitude", "longitude")
)
_TAB_SUFFIXES = ("/videos", "/shorts", "/streams", "/playlists")


def read_url_list(path: Path, source: str = "urls") -> list[Candidate]:
    """Candidates from a text or Parquet list of http(s) URLs, duplicates dropped, in order."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"URL list not found: {path}")
    if path.suffix.lower() == ".parquet":
        table = read_table(path)
        if "url" not in table.column_names:
            raise DataError(f"{path} has no 'url' column (columns: {table.column_names})")
        rows = table.to_pylist()
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path} is not UTF-8 text (byte {exc.start}): save the URL list as UTF-8"
            ) from None
        rows = [{"url": s} for s in (line.strip() for line in lines) if s and s[0] != "#"]
    candidates: dict[str, Candidate] = {}
    for number, row in enumerate(rows, 1):
        url = str(row.get("url") or "").strip()
        if not url.startswith(("http://", "https://")):
            raise DataError(f"{path}: entry {number} is not an http(s) URL: {url!r}")
        candidate = _candidate(url, source, row)
        candidates.setdefault(candidate.video_id, candidate)
    return list(candidates.values())


def expand_youtube(config: YoutubeConfig, download: DownloadConfig) -> list[Candidate]:
    """One candidate per video of a YouTube search, playlist or channel (any URL yt-dlp lists).

    The proxy and cookies of the download settings apply: listings meet bot checks too.
    Raises AcquireError when the listing fails after the retries.
    """
    check_youtube(config)
    check_download(download)
    target, limit = _listing(config)
    options = {"extract_flat": "in_playlist", "playlistend": limit or None}

    def listing() -> dict[str, Any]:
        with private_cookies(download) as cookies:
            try:
                with YoutubeDL(ytdlp_options(download, cookies) | options) as ydl:
                    return ydl.extract_info(target, download=False)
            except YoutubeDLError as exc:
                raise classify_error(exc) from None

    info, _ = call_with_retry(listing, download.retry, what=f"list {target}")
    entries = (info.get("entries") or []) if info.get("_type") == "playlist" else [info]
    candidates: dict[str, Candidate] = {}
    for entry in entries:
        url = unsmuggle_url(entry.get("webpage_url") or entry.get("url") or "")[0]
        if url:
            candidate = _candidate(url, "youtube", _entry_fields(entry, url))
            candidates.setdefault(candidate.video_id, candidate)
    return list(candidates.values())[: limit or None]


def _listing(config: YoutubeConfig) -> tuple[str, int]:
    if config.query:
        return f"ytsearch{config.max_videos}:{config.query}", config.max_videos
    if config.playlist:
        target = config.playlist
        if "://" not in target:
            target = f"https://www.youtube.com/playlist?list={target}"
        return target, config.max_videos
    channel = str(config.channel).rstrip("/")
    if "youtube.com/" in channel and not channel.endswith(_TAB_SUFFIXES):
        channel += "/videos"  # a channel's home lists its tabs, not its videos
    return channel, config.max_videos


def _entry_fields(entry: dict[str, Any], url: str) -> dict[str, Any]:
    return {
        "page_url": url,
        "owner_id": entry.get("channel_id") or entry.get("uploader_id"),
        "owner_name": entry.get("channel") or entry.get("uploader"),
        "title": entry.get("title"),
        "duration_s": entry.get("duration"),
    }


def _candidate(url: str, source: str, fields: dict[str, Any]) -> Candidate:
    carried = {k: fields[k] for k in _CARRIED if fields.get(k) not in (None, "", [])}
    carried["tags"] = tuple(str(t) for t in carried.get("tags", ()))
    if "duration_s" in carried:
        carried["duration_s"] = float(carried["duration_s"])
    for name in set(carried) - {"tags", "duration_s"}:
        carried[name] = str(carried[name])
    carried.setdefault("source", source)
    carried.setdefault("video_id", video_id_for(carried["source"], url))
    if not is_plain_id(carried["video_id"]):
        raise DataError(
            f"video id {carried['video_id']!r} for {url} is not a plain id "
            "(letters, digits, - and _)"
        )
    return Candidate(Provenance(url=url, **carried))
