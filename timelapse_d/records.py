"""Records and identifiers: source videos and candidate clips.

`Video` and `Clip` declare every column of `videos.parquet` and `manifest.parquet` once, with
its Arrow type and its meaning; the manifest schema and `manifests/README.md` are generated
from them (`timelapse_d.manifest`). A clip's columns are of three kinds: contract columns
(fixed place at the front of the table), outcome columns (set by a later step: encode, shard,
labels, split; left out of a row while null) and scores (measured by the analysis, after the
contract columns in name order).

Ids are deterministic from the source and the frame range, never change when a stage re-runs,
and contain no dots (WebDataset splits a sample key at its first dot).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Self

import pyarrow as pa

VIDEO_STATUS_OK = "ok"
VIDEO_STATUS_FAILED = "failed"
CLIP_KEPT = "kept"
CLIP_REJECTED = "rejected"
# A human label's `human_decision`.
KEEP, REJECT = "keep", "reject"
# Manifest columns holding a clip's keyframe hashes (at 1/4, 1/2 and 3/4 of the clip).
KEYFRAME_HASH_COLUMNS = ("dhash_q1", "dhash_mid", "dhash_q3")

_SAFE = re.compile(r"[^a-z0-9]+")
# Every id that reaches a file or tar member name, the tool's own and any from outside (a
# manifest, a URL list, a search answer): no dots, slashes or leading dash.
ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,199}")


def is_plain_id(value: object) -> bool:
    """True when `value` is a string matching ID_PATTERN (safe as a file name)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def video_id_for(source: str, key: str) -> str:
    """Id of a source video from its source name and a stable key (relative path, URL, id)."""
    digest = hashlib.sha256(f"{source}\0{key}".encode()).hexdigest()[:16]
    prefix = _SAFE.sub("", source.lower())[:12] or "src"
    return f"{prefix}-{digest}"


def clip_id_for(video_id: str, start_frame: int, end_frame: int) -> str:
    """Id of a clip: its video and its [start, end) source frame range."""
    return f"{video_id}-{start_frame:07d}-{end_frame:07d}"


STRING, INT, FLOAT, BOOL, STRINGS = (
    pa.string(),
    pa.int64(),
    pa.float64(),
    pa.bool_(),
    pa.list_(pa.string()),
)


def column(
    arrow: pa.DataType, meaning: str, *, outcome: bool = False, required: bool = False
) -> Any:
    """A contract column: its Arrow type and its one-line meaning (null by default)."""
    metadata = {"arrow": arrow, "meaning": meaning, "score": False, "outcome": outcome}
    return field(metadata=metadata) if required else field(default=None, metadata=metadata)


def score(arrow: pa.DataType, meaning: str) -> Any:
    """A score column written by the analysis: its Arrow type and its one-line meaning."""
    return field(
        default=None, metadata={"arrow": arrow, "meaning": meaning, "score": True, "outcome": False}
    )


class Record:
    """A table row declared as a dataclass of `column`s and `score`s."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Self:
        """The record of a table row (TypeError naming an undeclared column)."""
        return cls(**row)

    def row(self) -> dict[str, Any]:
        """The table row: every column, less the outcome columns that are null."""
        values = ((f, getattr(self, f.name)) for f in fields(self))  # type: ignore[arg-type]
        return {f.name: v for f, v in values if v is not None or not f.metadata["outcome"]}


@dataclass(frozen=True)
class Video(Record):
    """One row of `videos.parquet`: a source video, its probe and its provenance."""

    video_id: str | None = column(
        STRING,
        "Stable id of the source video (source name + hash of its key); no dots.",
    )
    source: str | None = column(
        STRING,
        "Source that produced it: `local`, `synthetic`, ...",
    )
    source_uri: str | None = column(
        STRING,
        "Where it came from (`file://` URI for files on disk).",
    )
    status: str | None = column(
        STRING,
        "`ok`, or `failed` when the file could not be used at all.",
    )
    error: str | None = column(
        STRING,
        "Null, or `reason: message` (`empty_file`, `not_a_video`, `no_video_stream`, "
        "`unreadable`, `truncated`; for downloads `removed`, `private`, `geo_blocked`, "
        "`rate_limited`, `bot_check`, `network`, `unsupported`, `corrupt`). A truncated "
        "file is `ok` with the frames before the break.",
    )
    codec: str | None = column(
        STRING,
        "Video codec name (probe).",
    )
    width: int | None = column(
        INT,
        "Display width in pixels, after rotation (probe).",
    )
    height: int | None = column(
        INT,
        "Display height in pixels, after rotation (probe).",
    )
    fps: float | None = column(
        FLOAT,
        "Average frame rate (probe).",
    )
    duration_s: float | None = column(
        FLOAT,
        "Duration in seconds (probe).",
    )
    num_frames: int | None = column(
        INT,
        "Frame count the container declares, or duration x fps when it has none.",
    )
    decoded_frames: int | None = column(
        INT,
        "Frames the analysis pass actually decoded.",
    )
    pix_fmt: str | None = column(
        STRING,
        "Pixel format of the source (probe).",
    )
    rotation: float | None = column(
        FLOAT,
        "Display rotation in degrees (frames are analysed and encoded upright).",
    )
    variable_frame_rate: bool | None = column(
        BOOL,
        "True when timestamps are not evenly spaced.",
    )
    page_url: str | None = column(
        STRING,
        "Remote sources: the video's public page (null for local files).",
    )
    owner_id: str | None = column(
        STRING,
        "Remote sources: the uploader's id on the source.",
    )
    owner_name: str | None = column(
        STRING,
        "Remote sources: the uploader's name, for attribution.",
    )
    license_id: str | None = column(
        STRING,
        "Remote sources: the source's licence id.",
    )
    license_name: str | None = column(
        STRING,
        "Remote sources: the licence name (from the source, e.g. Flickr's "
        "photos.licenses.getInfo).",
    )
    license_url: str | None = column(
        STRING,
        "Remote sources: the licence's URL.",
    )
    title: str | None = column(
        STRING,
        "Remote sources: the video's title.",
    )
    upload_date: str | None = column(
        STRING,
        "Remote sources: upload time (ISO 8601, UTC).",
    )
    taken_date: str | None = column(
        STRING,
        "Remote sources: capture time as the source states it.",
    )
    tags: list[str] | None = column(
        STRINGS,
        "Remote sources: the uploader's tags.",
    )
    latitude: float | None = column(
        FLOAT,
        "Remote sources: place of capture, when published.",
    )
    longitude: float | None = column(
        FLOAT,
        "Remote sources: place of capture, when published.",
    )
    listed_duration_s: float | None = column(
        FLOAT,
        "Remote sources: duration the source lists (before download).",
    )
    download_bytes: int | None = column(
        INT,
        "Remote sources: size of the downloaded file.",
    )
    download_attempts: int | None = column(
        INT,
        "Remote sources: download attempts (retries after transient errors).",
    )
    sha256: str | None = column(
        STRING,
        "Remote sources: SHA-256 of the downloaded file.",
    )
    local_path: str | None = column(
        STRING,
        "The file the build read (relative to the build folder when inside it); `tld "
        "annotate push` cuts its previews from it.",
    )

    def with_provenance(self, provenance: dict[str, Any], local_path: str | None = None) -> Video:
        """This video with the provenance columns of its download (`sources.remote`) and the
        file the build read."""
        return replace(self, **provenance, local_path=local_path)


@dataclass(frozen=True)
class Clip(Record):
    """One row of `manifest.parquet`: a candidate clip, its scores and its outcome."""

    clip_id: str = column(
        STRING,
        "`<video_id>-<start_frame>-<end_frame>` (7-digit frames); stable, no dots; the "
        "WebDataset key.",
        required=True,
    )
    video_id: str | None = column(
        STRING,
        "The source video.",
    )
    source_uri: str | None = column(
        STRING,
        "The source video's URI.",
    )
    start_frame: int | None = column(
        INT,
        "First source frame of the clip (0-based, presentation order).",
    )
    end_frame: int | None = column(
        INT,
        "One past the last source frame (exclusive).",
    )
    fps: float | None = column(
        FLOAT,
        "Frame rate of the source.",
    )
    width: int | None = column(
        INT,
        "Source display width in pixels.",
    )
    height: int | None = column(
        INT,
        "Source display height in pixels.",
    )
    num_frames: int | None = column(
        INT,
        "end_frame - start_frame.",
    )
    status: str | None = column(
        STRING,
        "`kept` or `rejected`; rejected clips stay in the manifest.",
    )
    reject_reasons: list[str] | None = column(
        STRINGS,
        "List of reasons (empty when kept); see the table of reasons.",
    )
    shard: str | None = column(
        STRING,
        "Tar holding the clip (`clips-NNNNNN.tar`), null when rejected.",
        outcome=True,
    )
    encode_error: str | None = column(
        STRING,
        "Why encoding failed, when it did (reason `unreadable`).",
        outcome=True,
    )
    clip_bytes: int | None = column(
        INT,
        "Size of the encoded clip in its shard.",
        outcome=True,
    )
    stream_copied: bool | None = column(
        BOOL,
        "True when the clip's coded frames were copied from the source (see "
        "`stream_copyable`), false when it was re-encoded.",
        outcome=True,
    )
    duplicate_of: str | None = column(
        STRING,
        "For a `duplicate`, the kept clip it repeats.",
        outcome=True,
    )
    source_error: str | None = column(
        STRING,
        "`tld rehydrate`: why the clip's source could not be downloaded (`class: message`).",
        outcome=True,
    )
    categories: list[str] | None = column(
        STRINGS,
        "Scene categories (timelapse_d/annotation_config/taxonomy.yaml) resolved from "
        "annotators; null until annotated.",
        outcome=True,
    )
    split: str | None = column(
        STRING,
        "`train` or `test` after `tld split` (kept clips only; whole source videos on one"
        " side, every category in the configured proportion); null otherwise.",
        outcome=True,
    )
    human_decision: str | None = column(
        STRING,
        "`keep` or `reject` resolved from annotators by `tld annotate pull` (weighted or "
        "majority vote); null until annotated.",
        outcome=True,
    )
    human_reasons: list[str] | None = column(
        STRINGS,
        "Reject reasons (timelapse_d/annotation_config/taxonomy.yaml) the rejecting annotators "
        "gave; null until annotated.",
        outcome=True,
    )
    agreement: float | None = column(
        FLOAT,
        "Share of the annotators' weight behind `human_decision` (0.5-1); null with one annotator.",
        outcome=True,
    )
    n_annotations: int | None = column(
        INT,
        "Annotators who answered the clip (their latest answer each); 0 until annotated.",
        outcome=True,
    )
    crop_x: int | None = column(
        INT,
        "Left of the picture inside letterbox/pillarbox bars (source pixels), null "
        "without bars; the encoded clip is cropped to it.",
    )
    crop_y: int | None = column(
        INT,
        "Top of the picture inside the bars, null without bars.",
    )
    crop_width: int | None = column(
        INT,
        "Width of the picture inside the bars, null without bars.",
    )
    crop_height: int | None = column(
        INT,
        "Height of the picture inside the bars, null without bars.",
    )
    stream_copyable: bool | None = score(
        BOOL,
        "The source is H.264 4:2:0, upright, without B-frames, and the clip starts on a "
        "keyframe: it can be copied when it also needs no crop or scaling.",
    )
    max_keyframe_gap: int | None = score(
        INT,
        "Longest run of source frames in the clip without a keyframe.",
    )
    dhash_q1: int | None = score(
        INT,
        "64-bit difference hash (as int64) of the frame a quarter into the clip.",
    )
    dhash_mid: int | None = score(
        INT,
        "Difference hash of the middle frame.",
    )
    dhash_q3: int | None = score(
        INT,
        "Difference hash of the frame three quarters into the clip.",
    )
    first_frame_time_s: float | None = score(
        FLOAT,
        "Timestamp of the source's first decoded frame (seconds).",
    )
    start_time_s: float | None = score(
        FLOAT,
        "Clip start, seconds from the first frame.",
    )
    end_time_s: float | None = score(
        FLOAT,
        "Clip end, seconds from the first frame.",
    )
    mean_luma: float | None = score(
        FLOAT,
        "Mean brightness, 0-1.",
    )
    black_fraction: float | None = score(
        FLOAT,
        "Share of frames that are black (flat and darker than analyze.black_luma).",
    )
    flashes: int | None = score(
        INT,
        "Single-frame flashes inside the clip that were not taken as cuts.",
    )
    camera_translation: float | None = score(
        FLOAT,
        "Typical camera translation per frame, in frame widths (median).",
    )
    camera_drift: float | None = score(
        FLOAT,
        "Net camera displacement per frame (median over the clip's pairs of each axis), "
        "in frame widths.",
    )
    camera_zoom: float | None = score(
        FLOAT,
        "Typical relative scale change per frame (median |zoom|).",
    )
    camera_rotation: float | None = score(
        FLOAT,
        "Typical camera rotation per frame, radians.",
    )
    camera_shake: float | None = score(
        FLOAT,
        "Jitter of the camera translation, frame widths.",
    )
    scene_motion: float | None = score(
        FLOAT,
        "Motion left after removing camera motion, frame widths per frame.",
    )
    frame_change: float | None = score(
        FLOAT,
        "Frame difference of the most-changing 1% of the frame (99th percentile, frames "
        "area-averaged to 64 px wide), median over pairs, 0-1.",
    )
    motion_pairs: float | None = score(
        FLOAT,
        "Frame pairs measured for the motion scores.",
    )
    sharpness: float | None = score(
        FLOAT,
        "1 - no-reference blur estimate (share of local contrast a further blur would "
        "remove), median over every 4th frame at the analysis size, 0-1; null when too "
        "flat to judge.",
    )
    highlight_luma: float | None = score(
        FLOAT,
        "Luma below which 99.5% of pixels lie, median over every 4th frame, 0-1.",
    )
    clipped_white: float | None = score(
        FLOAT,
        "Share of pixels at luma 250 or more, median over every 4th frame.",
    )
    stills: float | None = score(
        FLOAT,
        "Held pictures the clip is made of (isolated jumps over a still background + 1); "
        "0 for continuous footage.",
    )
    mean_still_s: float | None = score(
        FLOAT,
        "Clip duration divided by `stills` (seconds); 0 when `stills` is 0.",
    )


@dataclass(frozen=True)
class SourceVideo:
    """A video to curate: where it came from and where its bytes are on disk.

    `content_id` names the bytes themselves (a download's SHA-256): task keys use it instead of
    the file's size and modification time, so they hold after the file is deleted and after a
    download of the same bytes again."""

    video_id: str
    source: str
    source_uri: str
    path: str
    content_id: str | None = None


@dataclass(frozen=True)
class Label:
    """The human label of one clip resolved from its annotators' answers (a row of
    `labels.parquet`, which `tld annotate pull` writes)."""

    clip_id: str
    human_decision: str | None  # KEEP or REJECT; None: nobody answered the clip
    human_reasons: tuple[str, ...]  # taxonomy reject reasons; empty when kept
    categories: tuple[str, ...]  # taxonomy categories
    agreement: float | None  # share of the weight behind `human_decision`; None: one annotator
    n_annotations: int  # annotators who answered (latest answer each)
    tie: bool = False  # keep and reject had equal weight (resolved as reject)

    @classmethod
    def unanswered(cls, clip_id: str) -> Label:
        """The label of a clip of an annotated build that nobody answered."""
        return cls(clip_id, None, (), (), None, 0)
