"""A Flickr REST stand-in: the answers of the real API, in its JSON shapes, on 127.0.0.1.

It checks every call's OAuth signature against the key and secret it was given (code 100
"Invalid API Key" or 96 "Invalid signature" otherwise, as Flickr answers) and implements
``flickr.photos.search`` (text, tags, tag_mode, license, media, upload-date window, sort,
paging and extras; at most ``cap`` results served per query while ``total`` counts them all),
``flickr.photos.getInfo``, ``flickr.photos.getSizes`` and ``flickr.photos.licenses.getInfo``.
Video sizes point at ``/play/<id>/<size>/``, which redirects to the file as Flickr's do.
Random transient failures also include Flickr's own ``stat: fail`` code 105.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from types import SimpleNamespace

from oauthlib.oauth1.rfc5849 import signature

from standins.host import Answer, VideoHost

REST_PATH = "/services/rest/"
# The licence list as photos.licenses.getInfo gives it (ids 0-10); 11 stands for a newer
# Creative Commons 4.0 entry, which the client must sort by its URL, not by a known id.
LICENSES = [
    (0, "All Rights Reserved", ""),
    (1, "Attribution-NonCommercial-ShareAlike License",
     "https://creativecommons.org/licenses/by-nc-sa/2.0/"),
    (2, "Attribution-NonCommercial License", "https://creativecommons.org/licenses/by-nc/2.0/"),
    (3, "Attribution-NonCommercial-NoDerivs License",
     "https://creativecommons.org/licenses/by-nc-nd/2.0/"),
    (4, "Attribution License", "https://creativecommons.org/licenses/by/2.0/"),
    (5, "Attribution-ShareAlike License", "https://creativecommons.org/licenses/by-sa/2.0/"),
    (6, "Attribution-NoDerivs License", "https://creativecommons.org/licenses/by-nd/2.0/"),
    (7, "No known copyright restrictions", "https://www.flickr.com/commons/usage/"),
    (8, "United States Government Work", "http://www.usa.gov/copyright.shtml"),
    (9, "Public Domain Dedication (CC0)", "https://creativecommons.org/publicdomain/zero/1.0/"),
    (10, "Public Domain Mark", "https://creativecommons.org/publicdomain/mark/1.0/"),
    (11, "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
]  # fmt: skip
# Video sizes (label -> width, height) in the order getSizes lists them.
VIDEO_SIZES = {
    "Mobile MP4": (480, 270),
    "Site MP4": (640, 360),
    "HD MP4": (1280, 720),
    "1080p": (1920, 1080),
    "Video Original": (3840, 2160),
}


@dataclass
class StandInVideo:
    """One video of the catalogue. `state`: ok; removed (getInfo: not found); private
    (getSizes: permission denied)."""

    id: str
    title: str
    dateupload: int
    license: int = 4
    owner: str = "12345678@N00"
    ownername: str = "Some Photographer"
    tags: tuple[str, ...] = ("timelapse",)
    datetaken: str = "2015-06-01 18:00:00"
    latitude: float = 0.0
    longitude: float = 0.0
    duration: int = 3
    state: str = "ok"
    media: str = "video"


def _fail(code: int, message: str) -> Answer:
    return _json({"stat": "fail", "code": code, "message": message})


def _json(payload: dict) -> Answer:
    body = json.dumps(payload).encode()
    return Answer(200, {"Content-Type": "application/json; charset=utf-8"}, body)


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


class FlickrStandIn(VideoHost):
    """The REST API at ``/services/rest/`` plus the video files of `videos`.

    `files_by_size` gives the bytes served for each video size label; only those sizes are
    listed by getSizes.
    """

    def __init__(
        self,
        videos: list[StandInVideo],
        files_by_size: dict[str, bytes],
        *,
        api_key: str,
        api_secret: str,
        cap: int = 4000,
        rest_delay_s: float = 0.0,
        **host_options: object,
    ) -> None:
        super().__init__(**host_options)  # type: ignore[arg-type]
        self.videos = {v.id: v for v in videos}
        self.api_key, self.api_secret = api_key, api_secret
        self.cap = cap
        self.rest_delay_s = rest_delay_s
        self.sizes = [label for label in VIDEO_SIZES if label in files_by_size]
        for video in videos:
            for label in self.sizes:
                file_path = f"/files/{video.id}-{_slug(label)}.mp4"
                self.redirects[self.play_path(video.id, label)] = file_path
                self.files[file_path] = files_by_size[label]

    @property
    def rest_url(self) -> str:
        return self.url(REST_PATH)

    @staticmethod
    def play_path(video_id: str, label: str) -> str:
        return f"/play/{video_id}/{_slug(label)}/"

    def rest_hits(self, method: str | None = None) -> list:
        return [
            h
            for h in self.hits(REST_PATH)
            if method is None or dict(h.params).get("method") == method
        ]

    def transient_answer(self, path: str) -> Answer:
        if path == REST_PATH and self._rng.random() < 0.25:
            return _fail(105, "Service currently unavailable")
        return super().transient_answer(path)

    def answer_api(self, method, path, params, handler) -> Answer | None:
        if path != REST_PATH:
            return None
        if self.rest_delay_s:
            time.sleep(self.rest_delay_s)
        refused = self._check_signature(params, handler)
        if refused is not None:
            return refused
        query = dict(params)
        calls = {
            "flickr.photos.search": self._search,
            "flickr.photos.getInfo": self._get_info,
            "flickr.photos.getSizes": self._get_sizes,
            "flickr.photos.licenses.getInfo": self._licenses,
        }
        call = calls.get(query.get("method", ""))
        if call is None:
            return _fail(112, f'Method "{query.get("method")}" not found')
        return call(query)

    def _check_signature(self, params, handler) -> Answer | None:
        signed = signature.collect_parameters(
            body=list(params),
            headers={"Authorization": handler.headers.get("Authorization", "")},
            exclude_oauth_signature=False,
        )
        oauth = dict(signed)
        if oauth.get("oauth_consumer_key") != self.api_key:
            return _fail(100, "Invalid API Key (Key has invalid format)")
        request = SimpleNamespace(
            uri=self.rest_url,
            http_method="POST",
            params=[(k, v) for k, v in signed if k != "oauth_signature"],
            signature=oauth.get("oauth_signature", ""),
        )
        if not signature.verify_hmac_sha1(request, self.api_secret):
            return _fail(96, "Invalid signature")
        return None

    # -- methods -----------------------------------------------------------------------------

    def _licenses(self, query: dict) -> Answer:
        items = [{"id": i, "name": name, "url": url} for i, name, url in LICENSES]
        return _json({"licenses": {"license": items}, "stat": "ok"})

    def _search(self, query: dict) -> Answer:
        per_page = min(int(query.get("per_page", 100)), 500)
        page = max(1, int(query.get("page", 1)))
        found = sorted(
            (v for v in self.videos.values() if self._matches(v, query)),
            key=lambda v: (v.dateupload, v.id),
            reverse=query.get("sort") == "date-posted-desc",
        )
        served = found[: self.cap]
        start = (page - 1) * per_page
        if start >= len(served):  # past the cap Flickr repeats its first results
            start = 0
        extras = set(query.get("extras", "").split(","))
        photos = [self._entry(v, extras) for v in served[start : start + per_page]]
        return _json(
            {
                "photos": {
                    "page": page,
                    "pages": math.ceil(len(found) / per_page),
                    "perpage": per_page,
                    "total": len(found),
                    "photo": photos,
                },
                "stat": "ok",
            }
        )

    def _matches(self, video: StandInVideo, query: dict) -> bool:
        media = query.get("media", "all")
        if media != "all" and video.media != media.rstrip("s"):
            return False
        text = query.get("text", "").lower()
        if text and text not in video.title.lower() and text not in video.tags:
            return False
        tags = [t for t in query.get("tags", "").lower().split(",") if t]
        has = [t in video.tags for t in tags]
        if tags and not (all(has) if query.get("tag_mode") == "all" else any(has)):
            return False
        licenses = query.get("license")
        if licenses and str(video.license) not in licenses.split(","):
            return False
        low = int(query.get("min_upload_date", 0))
        high = int(query.get("max_upload_date", 2**62))
        return low <= video.dateupload <= high

    def _entry(self, video: StandInVideo, extras: set[str]) -> dict:
        entry = {
            "id": video.id,
            "owner": video.owner,
            "secret": "a1b2c3d4e5",
            "server": "65535",
            "farm": 66,
            "title": video.title,
            "ispublic": 1,
            "isfriend": 0,
            "isfamily": 0,
        }
        if "license" in extras:
            entry["license"] = str(video.license)
        if "date_upload" in extras:
            entry["dateupload"] = str(video.dateupload)
        if "date_taken" in extras:
            entry |= {"datetaken": video.datetaken, "datetakengranularity": 0,
                      "datetakenunknown": "0"}  # fmt: skip
        if "owner_name" in extras:
            entry["ownername"] = video.ownername
        if "tags" in extras:
            entry["tags"] = " ".join(video.tags)
        if "geo" in extras:
            entry |= {"latitude": video.latitude, "longitude": video.longitude, "accuracy": 0,
                      "context": 0}  # fmt: skip
        if "o_dims" in extras:
            entry |= {"o_width": "1920", "o_height": "1080"}
        if "media" in extras:
            entry |= {"media": video.media, "media_status": "ready"}
        return entry

    def _get_info(self, query: dict) -> Answer:
        video = self.videos.get(query.get("photo_id", ""))
        if video is None or video.state == "removed":
            return _fail(1, "Photo not found")
        page = f"https://www.flickr.com/photos/{video.owner}/{video.id}/"
        photo = {
            "id": video.id,
            "secret": "a1b2c3d4e5",
            "server": "65535",
            "farm": 66,
            "dateuploaded": str(video.dateupload),
            "license": str(video.license),
            "owner": {"nsid": video.owner, "username": video.ownername, "realname": "",
                      "location": "", "path_alias": None},
            "title": {"_content": video.title},
            "description": {"_content": ""},
            "visibility": {"ispublic": 1, "isfriend": 0, "isfamily": 0},
            "dates": {"posted": str(video.dateupload), "taken": video.datetaken,
                      "takengranularity": 0, "takenunknown": "0"},
            "tags": {"tag": [{"id": f"{video.id}-{t}", "author": video.owner, "raw": t,
                              "_content": t, "machine_tag": 0} for t in video.tags]},
            "urls": {"url": [{"type": "photopage", "_content": page}]},
            "media": video.media,
            "video": {"ready": 1, "failed": 0, "pending": 0, "duration": str(video.duration),
                      "width": "1920", "height": "1080"},
        }  # fmt: skip
        return _json({"photo": photo, "stat": "ok"})

    def _get_sizes(self, query: dict) -> Answer:
        video = self.videos.get(query.get("photo_id", ""))
        if video is None or video.state == "removed":
            return _fail(1, "Photo not found")
        if video.state == "private":
            return _fail(2, "Permission denied")
        base = f"https://www.flickr.com/photos/{video.owner}/{video.id}/sizes"
        sizes = [
            {"label": "Square", "width": 75, "height": 75, "media": "photo",
             "source": f"https://live.staticflickr.com/65535/{video.id}_a1b2c3d4e5_s.jpg",
             "url": f"{base}/sq/"},
            {"label": "Video Player", "width": 640, "height": 360, "media": "video",
             "source": f"https://www.flickr.com/apps/video/stewart.swf?photo_id={video.id}",
             "url": f"https://www.flickr.com/photos/{video.owner}/{video.id}/"},
        ]  # fmt: skip
        for label in self.sizes:
            width, height = VIDEO_SIZES[label]
            sizes.append(
                {
                    "label": label,
                    "width": width,
                    "height": height,
                    "source": self.url(self.play_path(video.id, label)),
                    "url": f"{base}/{_slug(label)}/",
                    "media": "video",
                }
            )
        return _json({"sizes": {"canblog": 0, "canprint": 0, "candownload": 1, "size": sizes},
                      "stat": "ok"})  # fmt: skip
