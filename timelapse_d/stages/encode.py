"""Stage `encode`: cut each kept clip out of its source with the ffmpeg CLI.

H.264 (yuv420p, even dimensions, upright, cropped to the picture inside any letterbox or
pillarbox bars) with a fixed short GOP and no B-frames, so a reader can
seek to any frame by decoding at most `gop` frames. A clip whose source already is such a
stream and that starts on a keyframe is stream-copied instead (no quality loss, a fraction of
the time) and checked to start on the right picture, else re-encoded. The output is verified
(frame count by demuxing) before it is renamed into place; a failure is an expected per-clip
outcome recorded as reason `unreadable` with ffmpeg's message. A failure of the machine (a full
disk, an I/O error, ffmpeg killed or interrupted) raises HostError instead, even when ffmpeg
exits 0 (it does after a failed write of the trailer): it says nothing about the clip.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from timelapse_d.config import EncodeConfig, fingerprint
from timelapse_d.errors import ConfigError, EncodeError, HostError
from timelapse_d.executors import Executor, Resources
from timelapse_d.executors.local import die_with_parent
from timelapse_d.records import Clip
from timelapse_d.runs import RunDir, atomic_path, host_error_text, outputs_present
from timelapse_d.shards.stored import StoredClip, find_clip
from timelapse_d.stages.base import MarkedStage, Outcome, run_stage

STAGE = "encode"
LOG = logging.getLogger("timelapse_d")


def require_ffmpeg() -> str:
    """Path of the ffmpeg CLI, or a ConfigError saying how to install it."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise ConfigError(
            "ffmpeg is not installed: install it (Debian/Ubuntu: apt-get install -y ffmpeg; "
            "macOS: brew install ffmpeg) and run again"
        )
    return path


def output_size(width: int, height: int, max_height: int) -> tuple[int, int]:
    """Even output dimensions, scaled down (aspect kept) when taller than `max_height`."""
    if height > max_height:
        width, height = round(width * max_height / height), max_height
    return max(2, width - width % 2), max(2, height - height % 2)


def _container_start(path: Path) -> float:
    with av.open(str(path)) as container:
        return (container.start_time or 0) / av.time_base


def count_video_packets(path: Path) -> int:
    """Frames in a file's first video stream, by demuxing (no decode)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size > 0)


def can_stream_copy(clip: dict[str, Any], config: EncodeConfig) -> bool:
    """True when copying the clip's coded frames gives what re-encoding would (see module)."""
    return (
        config.stream_copy
        and bool(clip.get("stream_copyable"))
        and clip.get("max_keyframe_gap", config.gop + 1) <= config.gop
        and not clip.get("crop_width")
        and output_size(clip["width"], clip["height"], config.max_height)
        == (clip["width"], clip["height"])
    )


def _start_s(clip: dict[str, Any]) -> float:
    return clip["start_time_s"] + clip["first_frame_time_s"]


def ffmpeg_command(
    clip: dict[str, Any], source: Path, out: Path, config: EncodeConfig, copy: bool = False
) -> list[str]:
    """The ffmpeg call that cuts and encodes (or, with `copy`, stream-copies) one clip."""
    fps = clip["fps"] or 25.0
    head = [
        require_ffmpeg(),
        *("-nostdin", "-hide_banner", "-loglevel", "error", "-y"),
    ]
    select = ("-map", "0:v:0", "-an", "-sn", "-dn", "-frames:v", str(clip["num_frames"]))
    # Half a frame early, so the start frame is the first one at or after the seek point.
    seek = max(0.0, _start_s(clip) - 0.5 / fps)
    if copy:
        # Output seeking: packets before the seek point are read and dropped, so the copy
        # starts exactly on the clip's first (key) frame and holds no hidden frames.
        return [
            *head,
            *("-i", str(source), "-ss", f"{seek:.6f}", *select, "-c:v", "copy"),
            *("-movflags", "+faststart", "-f", "mp4", str(out)),
        ]
    crop = ""
    width, height = clip["width"], clip["height"]
    if clip.get("crop_width"):
        width, height = clip["crop_width"], clip["crop_height"]
        crop = f"crop={width}:{height}:{clip['crop_x']}:{clip['crop_y']},"
    width, height = output_size(width, height, config.max_height)
    return [
        *head,
        *("-ss", f"{seek:.6f}", "-i", str(source), *select),
        *("-vf", f"{crop}scale={width}:{height}:flags=area,setsar=1", "-pix_fmt", "yuv420p"),
        *("-c:v", config.codec, "-preset", config.preset, "-crf", str(config.crf)),
        *(("-threads", str(config.threads)) if config.threads else ()),
        *("-g", str(config.gop), "-keyint_min", str(config.gop), "-sc_threshold", "0", "-bf", "0"),
        *("-fps_mode", "passthrough", "-movflags", "+faststart", "-f", "mp4", str(out)),
    ]


def encode_clip(
    clip: dict[str, Any], source: Path, out: Path, config: EncodeConfig
) -> dict[str, Any]:
    """Write the clip to `out` atomically; return {'clip_bytes', 'stream_copied',
    'encode_seconds'}. Raises EncodeError."""
    started = time.monotonic()
    clip = {**clip, "first_frame_time_s": clip.get("first_frame_time_s", 0.0)}
    clip["first_frame_time_s"] -= _container_start(source)
    copied = can_stream_copy(clip, config) and _try_copy(clip, source, out, config)
    if not copied:
        with atomic_path(out) as tmp:
            _run_ffmpeg(ffmpeg_command(clip, source, tmp, config))
            _check_frame_count(tmp, clip["num_frames"])
    return {
        "clip_bytes": out.stat().st_size,
        "stream_copied": copied,
        "encode_seconds": round(time.monotonic() - started, 3),
    }


def _try_copy(clip: dict[str, Any], source: Path, out: Path, config: EncodeConfig) -> bool:
    """Stream-copy the clip; False (nothing written) unless it starts on the right picture."""
    try:
        with atomic_path(out) as tmp:
            _run_ffmpeg(ffmpeg_command(clip, source, tmp, config, copy=True))
            _check_frame_count(tmp, clip["num_frames"])
            copied = _first_picture(tmp, 0.0)
            wanted = _first_picture(source, _start_s(clip))
            if copied is None or wanted is None or not np.array_equal(copied, wanted):
                raise EncodeError("the copied clip does not start on its first frame")
    except EncodeError:
        return False
    return True


def _run_ffmpeg(command: list[str]) -> None:
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,  # a Ctrl-C reaches the tool, which stops ffmpeg itself
        preexec_fn=die_with_parent,
    )
    lines = result.stderr.strip().splitlines() or ["no message"]
    message = lines[-1]
    if result.returncode < 0:
        raise HostError(f"ffmpeg was killed by signal {-result.returncode}")
    if host_error_text(result.stderr) or "received signal" in result.stderr:
        # The line naming the machine's error: a full disk while writing the header ends
        # with "Error initializing output stream" instead.
        raise HostError(f"ffmpeg: {next((x for x in lines if host_error_text(x)), message)}")
    if result.returncode != 0:
        raise EncodeError(f"ffmpeg failed ({result.returncode}): {message}")


def _check_frame_count(path: Path, expected: int) -> None:
    frames = count_video_packets(path)
    if frames != expected:
        raise EncodeError(f"encoded {frames} frames, expected {expected}")


def _first_picture(path: Path, at_s: float) -> np.ndarray | None:
    """The grey picture of the first frame at or after `at_s` (seconds from the file start)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = (container.start_time or 0) / av.time_base
        if at_s > 0:
            container.seek(int((start + at_s) * av.time_base), backward=True)
        half = 0.5 / float(stream.average_rate or 25)
        for frame in container.decode(stream):
            if frame.time is None or frame.time >= start + at_s - half:
                return frame.to_ndarray(format="gray")
    return None


@dataclass(frozen=True)
class EncodeItem:
    """A kept clip row, the path of its source and the fingerprint of that source (its
    analyze key, or a download's SHA-256)."""

    clip: dict[str, Any]
    source: str
    source_key: str


def clip_path(run_dir: RunDir, clip_id: str) -> Path:
    """Where the encoded clip lives until it is sharded (and after, unless the shard stage
    released it: then its shard is its home)."""
    return run_dir.stage_dir(STAGE) / f"{clip_id}.mp4"


def previous_shards(run_dir: RunDir) -> Path:
    """Hard links to the clip tars the shard stage is replacing: their clips stay readable
    until the new tars are verified (removed after; left by a killed run, used by the next)."""
    return run_dir.stage_dir("shard") / "previous"


def writing_shards(run_dir: RunDir) -> Path:
    """Where the shard stage writes a clip tar whose clips' encode files it deletes as it goes
    (moved to `shards/` once complete; a killed run's stays, and its clips with it)."""
    return run_dir.stage_dir("shard") / "writing"


def stored_clip(run_dir: RunDir, clip_id: str, size: int) -> StoredClip | None:
    """The clip's bytes in a clip tar (previous, being written or current) at `size`."""
    folders = [previous_shards(run_dir), writing_shards(run_dir), run_dir.out / "shards"]
    return find_clip(folders, clip_id, size)


@dataclass(frozen=True)
class EncodeStage(MarkedStage):
    """Per kept clip: ``run/encode/<clip_id>.mp4``, or the clip's `encode_error` when ffmpeg
    cannot make it (an expected outcome, marked done). A failure of the machine is never
    recorded: it raises HostError, and an outcome an earlier version recorded with one is
    done again. A clip whose file the shard stage released stays done while a clip tar holds
    it (:mod:`timelapse_d.shards.stored`)."""

    config: EncodeConfig
    name: str = STAGE

    @property
    def resources(self) -> Resources:
        """As many CPUs as x264 has threads (one when ffmpeg chooses)."""
        return Resources(cpus=float(self.config.threads or 1), memory_mb=512)

    def item_id(self, item: EncodeItem) -> str:
        return str(item.clip["clip_id"])

    def key(self, item: EncodeItem) -> str:
        return fingerprint(dataclasses.asdict(self.config), item.source_key)

    def run(self, item: EncodeItem, run_dir: RunDir) -> Outcome:
        if not Path(item.source).is_file():  # never an outcome of the clip: a re-run fetches it
            raise FileNotFoundError(f"the source of {self.item_id(item)} is not on disk")
        out = clip_path(run_dir, self.item_id(item))
        try:
            return Outcome(encode_clip(item.clip, Path(item.source), out, self.config), [out])
        except EncodeError as exc:
            out.unlink(missing_ok=True)
            return Outcome({"encode_error": str(exc)})

    def done(self, run_dir: RunDir, item_id: str, key: str) -> dict[str, Any] | None:
        """Marked with this key, and its clip file in place or its bytes in a clip tar."""
        marker = run_dir.matching_marker(STAGE, item_id, key)
        if marker is None or host_error_text(marker["stats"].get("encode_error")):
            return None
        outputs = marker.get("outputs", {})
        if not outputs_present(run_dir.out, outputs) and not (
            isinstance(outputs, dict)
            and len(outputs) == 1
            and stored_clip(run_dir, item_id, next(iter(outputs.values()))) is not None
        ):
            LOG.info("encode %s: its clip is neither in run/encode/ nor in a shard", item_id)
            return None
        stats: dict[str, Any] = marker["stats"]
        return stats


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


def encode_clips(
    clips: list[Clip],
    sources: dict[str, tuple[str, str]],
    config: EncodeConfig,
    run_dir: RunDir,
    executor: Executor,
) -> list[Clip]:
    """Encode the clips not done yet; return every clip with its encode outcome.

    `sources` maps a video id to its file and its fingerprint.
    """
    rows = [c.row() for c in clips]
    items = [EncodeItem(row, *sources[row["video_id"]]) for row in rows]
    encoded = run_stage(EncodeStage(config), items, run_dir, executor).stats
    return [apply_encoding(c, encoded) for c in clips]
