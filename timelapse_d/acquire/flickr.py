"""`--source flickr`: search Flickr for videos with the real flickrapi client, resumably.

Every API call is rate limited (one limiter shared by all processes through the state folder),
retried on 5xx, 429, timeouts and Flickr's transient error codes, and its answer stored under
``STATE/flickr/`` before it is used, so a killed run resumes without repeating a finished call:

    licenses.json                         photos.licenses.getInfo
    search/<query fingerprint>/until.json the upload-date end pinned by the first run
    search/<fp>/<start>-<end>-<page>.json photos.search pages, by upload-date window
    photos/<photo id>-info.json           photos.getInfo (or its permanent failure)
    photos/<photo id>-sizes.json          photos.getSizes (or its permanent failure)
    ratelimit.json                        the shared rate limiter

Flickr serves about 4,000 results per query, so a window of upload dates whose total is larger
is split in half until each part fits. The key and secret are sent in OAuth-signed headers
only; they are never stored, and the library loggers whose DEBUG lines show the key are held
above DEBUG.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import flickrapi
import requests
from flickrapi.exceptions import FlickrError

from timelapse_d.acquire.checks import check_flickr, parse_date
from timelapse_d.acquire.credentials import FlickrCredentials, flickr_credentials
from timelapse_d.acquire.licenses import License, accepted, parse_licenses
from timelapse_d.acquire.provenance import Candidate, MediaFormat, Provenance
from timelapse_d.acquire.ratelimit import RateLimiter
from timelapse_d.acquire.retry import call_with_retry, parse_retry_after
from timelapse_d.acquire.retry import status_class as http_status_class
from timelapse_d.acquire.settings import FlickrConfig
from timelapse_d.config import fingerprint
from timelapse_d.errors import AcquireError, ConfigError
from timelapse_d.records import is_plain_id, video_id_for
from timelapse_d.runs import read_json, write_json

LOG = logging.getLogger("timelapse_d")
SOURCE = "flickr"
SEARCH_EXTRAS = "owner_name,license,date_upload,date_taken,tags,geo,o_dims,media,url_o"
_TRANSIENT_CODES = frozenset({10, 105, 106})  # search off, service unavailable, write failed
_KEY_CODES = frozenset({96, 97, 100})  # invalid signature, missing signature, invalid key
_PHOTO_CODES = {1: "removed", 2: "private"}  # photos.getInfo / getSizes
# Library loggers held above DEBUG, whose lines show the key (flickrapi's client repr, signed
# headers); flickrapi's ERROR lines report HTTP failures that the retries handle and log.
_QUIET_LOGGERS = {
    "flickrapi": logging.CRITICAL,
    "oauthlib": logging.INFO,
    "requests_oauthlib": logging.INFO,
}


class FlickrClient:
    """flickrapi aimed at `rest_url`; every call rate limited and retried. One thread only."""

    def __init__(
        self, config: FlickrConfig, credentials: FlickrCredentials, limiter: RateLimiter
    ) -> None:
        for name, level in _QUIET_LOGGERS.items():
            logger = logging.getLogger(name)
            if logger.getEffectiveLevel() < level:
                logger.setLevel(level)
        api = flickrapi.FlickrAPI(
            credentials.key,
            credentials.secret,
            format="parsed-json",
            store_token=False,  # a token cache would write the key under ~/.flickrapi
            timeout=config.timeout_s,
        )
        api.REST_URL = config.rest_url  # an instance attribute: other clients keep theirs
        session = requests.Session()  # flickrapi's default session is shared by all instances
        session.hooks["response"].append(self._remember)
        api.flickr_oauth.session = session
        self._api = api
        self._config = config
        self._limiter = limiter
        self._last: requests.Response | None = None

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One API call (``flickr.photos.search``...), its parsed JSON answer; AcquireError."""

        def attempt() -> dict[str, Any]:
            self._limiter.acquire()
            self._last = None
            try:
                return self._api.do_flickr_call(method, **params)
            except FlickrError as exc:
                raise self._error(method, exc) from None
            except (requests.RequestException, ValueError) as exc:
                raise AcquireError("network", f"{method}: {type(exc).__name__}: {exc}") from None

        result, _ = call_with_retry(
            attempt, self._config.retry, what=method, on_server_wait=self._limiter.defer
        )
        return result

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last = response

    def _error(self, method: str, exc: FlickrError) -> AcquireError:
        response = self._last
        if exc.code is None and response is not None and response.status_code != 200:
            status = response.status_code
            return AcquireError(
                http_status_class(status),
                f"{method}: HTTP {status}",
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if exc.code in _KEY_CODES:
            raise ConfigError(
                f"Flickr refused the credentials ({exc}); check FLICKR_API_KEY and "
                "FLICKR_API_SECRET (or the credentials file) and the flickr.rest_url"
            )
        if exc.code in _TRANSIENT_CODES:
            return AcquireError("network", f"{method}: {exc}")
        if exc.code in _PHOTO_CODES and method != "flickr.photos.search":
            return AcquireError(_PHOTO_CODES[exc.code], f"{method}: {exc}")
        return AcquireError("unsupported", f"{method}: {exc}")


def search_flickr(
    config: FlickrConfig, state_dir: Path, credentials: FlickrCredentials | None = None
) -> list[Candidate]:
    """Videos matching the config, in upload order, each with its provenance and video files.

    Photos Flickr no longer serves (removed, private) come back with ``failure`` set. Raises
    ConfigError for settings and credentials, AcquireError when a search page cannot be had
    after the retries (a re-run resumes from the pages already stored).
    """
    check_flickr(config)
    root = state_dir / SOURCE
    limiter = RateLimiter(root / "ratelimit.json", config.calls_per_period, config.period_s)
    client = FlickrClient(
        config, credentials or flickr_credentials(config.credentials_file), limiter
    )
    catalogue = parse_licenses(
        _stored(root / "licenses.json", client, "flickr.photos.licenses.getInfo")
    )
    licenses = {lic.id: lic for lic in accepted(catalogue, config.licenses)}
    query = _search_params(config, sorted(licenses, key=lambda i: (len(i), i)))
    folder = root / "search" / fingerprint(query, config.result_cap)
    start = parse_date(config.min_upload_date, "flickr.min_upload_date")
    end = (
        parse_date(config.max_upload_date, "flickr.max_upload_date")
        if config.max_upload_date is not None
        else _stored_value(folder / "until.json", lambda: int(time.time()))
    )
    candidates: list[Candidate] = []
    seen: set[str] = set()
    for photo in _search(client, folder, query, start, end, config.result_cap):
        if photo["id"] in seen or str(photo.get("license")) not in licenses:
            continue
        seen.add(photo["id"])
        candidates.append(_candidate(client, root / "photos", photo, licenses))
        if len(candidates) == config.max_videos:
            break
    failed = sum(c.failure is not None for c in candidates)
    LOG.info("flickr: %d videos found, %d no longer available", len(candidates), failed)
    return candidates


def _search_params(config: FlickrConfig, license_ids: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "media": "videos",
        "license": ",".join(license_ids),
        "extras": SEARCH_EXTRAS,
        "sort": "date-posted-asc",  # new uploads land after the pages already stored
        "per_page": config.per_page,
    }
    if config.query:
        params["text"] = config.query
    if config.tags:
        params["tags"] = ",".join(config.tags)
        params["tag_mode"] = config.tag_mode
    return params


def _search(
    client: FlickrClient, folder: Path, query: dict[str, Any], start: int, end: int, cap: int
) -> Iterator[dict[str, Any]]:
    """Search results window by window (earliest first), splitting windows over the cap."""

    def page(lo: int, hi: int, number: int) -> dict[str, Any]:
        params = {**query, "min_upload_date": lo, "max_upload_date": hi, "page": number}
        path = folder / f"{lo}-{hi}-{number}.json"
        return _stored(path, client, "flickr.photos.search", **params)["photos"]

    windows = [(start, end)]
    while windows:
        lo, hi = windows.pop()
        first = page(lo, hi, 1)
        total = int(first["total"])
        if total > cap and hi > lo:
            middle = (lo + hi) // 2
            LOG.info("flickr: %d results uploaded %d-%d, split at %d", total, lo, hi, middle)
            windows += [(middle + 1, hi), (lo, middle)]
            continue
        if total > cap:
            LOG.warning(
                "flickr: %d results uploaded in second %d, the first %d kept", total, lo, cap
            )
        yield from first["photo"]
        last = min(int(first["pages"]), -(-cap // int(query["per_page"])))
        for number in range(2, last + 1):
            yield from page(lo, hi, number)["photo"]


def _candidate(
    client: FlickrClient, folder: Path, photo: dict[str, Any], licenses: dict[str, License]
) -> Candidate:
    photo_id = str(photo["id"])
    info = None
    if not is_plain_id(photo_id):  # it names files under OUT: never a path
        error = AcquireError("unsupported", f"the search returned a malformed id {photo_id!r}")
        return Candidate(_provenance(photo, info, licenses), failure=error)
    try:
        info = _stored(
            folder / f"{photo_id}-info.json", client, "flickr.photos.getInfo", photo_id=photo_id
        )["photo"]
        if info.get("media") != "video":
            raise AcquireError("unsupported", f"photo {photo_id} is not a video")
        sizes = _stored(
            folder / f"{photo_id}-sizes.json", client, "flickr.photos.getSizes", photo_id=photo_id
        )["sizes"]["size"]
    except AcquireError as exc:
        return Candidate(_provenance(photo, info, licenses), failure=exc)
    meta = _provenance(photo, info, licenses)
    formats = video_formats(sizes)
    if not formats:
        error = AcquireError("unsupported", f"photo {photo_id}: Flickr lists no video file")
        return Candidate(meta, failure=error)
    return Candidate(meta, formats)


def video_formats(sizes: list[dict[str, Any]]) -> tuple[MediaFormat, ...]:
    """The video files of a ``photos.getSizes`` answer (the Flash player entry left out).

    Flickr's transcodes are MP4; the original keeps the uploaded container, so its extension
    is left unknown. The downloader picks among them by height.
    """
    return tuple(
        MediaFormat(
            url=str(size["source"]),
            label=str(size["label"]),
            width=_int(size.get("width")),
            height=_int(size.get("height")),
            ext="unknown_video" if size["label"] == "Video Original" else "mp4",
        )
        for size in sizes
        if size.get("media") == "video" and size.get("label") != "Video Player"
    )


def _provenance(
    photo: dict[str, Any], info: dict[str, Any] | None, licenses: dict[str, License]
) -> Provenance:
    """Provenance from the search extras, completed by photos.getInfo when it answered."""
    photo_id, owner_id = str(photo["id"]), str(photo.get("owner", ""))
    page_url = f"https://www.flickr.com/photos/{owner_id}/{photo_id}/"
    title, owner_name, duration = str(photo.get("title", "")), str(photo.get("ownername", "")), None
    if info is not None:
        urls = info.get("urls", {}).get("url", [])
        page_url = next((u["_content"] for u in urls if u.get("type") == "photopage"), page_url)
        title = str(info.get("title", {}).get("_content", title))
        owner_name = str(info.get("owner", {}).get("username") or owner_name)
        duration = _float(info.get("video", {}).get("duration"))
    licence = licenses.get(
        str(photo.get("license")), License(str(photo.get("license", "")), "", "")
    )
    latitude, longitude = _float(photo.get("latitude")), _float(photo.get("longitude"))
    has_geo = bool(latitude or longitude)  # Flickr answers 0, 0 for photos without a place
    return Provenance(
        video_id=video_id_for(SOURCE, photo_id),
        source=SOURCE,
        url=page_url,
        page_url=page_url,
        owner_id=owner_id,
        owner_name=owner_name,
        license_id=licence.id,
        license_name=licence.name,
        license_url=licence.url,
        title=title,
        upload_date=_iso(photo.get("dateupload")),
        taken_date=str(photo.get("datetaken", "")),
        tags=tuple(str(photo.get("tags", "")).split()),
        latitude=latitude if has_geo else None,
        longitude=longitude if has_geo else None,
        duration_s=duration,
    )


def _stored(path: Path, client: FlickrClient, method: str, **params: Any) -> dict[str, Any]:
    """A call's answer from `path`, or the call made and its answer stored there.

    Permanent failures (a removed or private photo) are stored too and raised again.
    """
    if path.is_file():
        stored = read_json(path)
        if "failure" in stored:
            raise AcquireError(stored["failure"]["class"], stored["failure"]["message"])
        return stored
    try:
        answer = client.call(method, **params)
    except AcquireError as exc:
        if exc.kind.permanent:
            write_json(path, {"failure": {"class": exc.error_class, "message": exc.message}})
        raise
    write_json(path, answer)
    return answer


def _stored_value(path: Path, produce: Callable[[], Any]) -> Any:
    if path.is_file():
        return read_json(path)
    value = produce()
    write_json(path, value)
    return value


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _iso(unix: Any) -> str:
    seconds = _int(unix)
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
