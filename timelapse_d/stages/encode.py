"""Stage `encode`: cut each kept clip out of its source with the ffmpeg CLI.

H.264 (yuv420p, even dimensions, upright, cropped to the picture inside any letterbox or
pillarbox bars) with a fixed short GOP and no B-frames, so a reader can
seek to any frame by decoding at most `gop` frames. The output is verified (frame count by
demuxing, no decode) before it is renamed into place; a failure is an expected per-clip outcome
recorded as reason `unreadable` with ffmpeg's message.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import av

from timelapse_d.config import ConfigError, EncodeConfig
from timelapse_d.runs import atomic_path

STAGE = "encode"


class EncodeError(Exception):
    """ffmpeg could not produce a clip that matches its manifest row."""


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


def ffmpeg_command(
    clip: dict[str, Any], source: Path, out: Path, config: EncodeConfig
) -> list[str]:
    """The ffmpeg call that cuts and encodes one clip."""
    crop = ""
    width, height = clip["width"], clip["height"]
    if clip.get("crop_width"):
        width, height = clip["crop_width"], clip["crop_height"]
        crop = f"crop={width}:{height}:{clip['crop_x']}:{clip['crop_y']},"
    width, height = output_size(width, height, config.max_height)
    # Seek half a frame early so the start frame is the first one at or after the seek point.
    fps = clip["fps"] or 25.0
    seek = max(0.0, clip["start_time_s"] + clip["first_frame_time_s"] - 0.5 / fps)
    return [
        require_ffmpeg(),
        *("-nostdin", "-hide_banner", "-loglevel", "error", "-y"),
        *("-ss", f"{seek:.6f}", "-i", str(source)),
        *("-map", "0:v:0", "-an", "-sn", "-dn", "-frames:v", str(clip["num_frames"])),
        *("-vf", f"{crop}scale={width}:{height}:flags=area,setsar=1", "-pix_fmt", "yuv420p"),
        *("-c:v", config.codec, "-preset", config.preset, "-crf", str(config.crf)),
        *("-g", str(config.gop), "-keyint_min", str(config.gop), "-sc_threshold", "0", "-bf", "0"),
        *("-fps_mode", "passthrough", "-movflags", "+faststart", "-f", "mp4", str(out)),
    ]


def encode_clip(clip: dict[str, Any], source: Path, out: Path, config: EncodeConfig) -> int:
    """Write the clip to `out` atomically; return its size in bytes. Raises EncodeError."""
    clip = {**clip, "first_frame_time_s": clip.get("first_frame_time_s", 0.0)}
    clip["first_frame_time_s"] -= _container_start(source)
    with atomic_path(out) as tmp:
        result = subprocess.run(
            ffmpeg_command(clip, source, tmp, config), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            message = result.stderr.strip().splitlines()[-1:] or ["no message"]
            raise EncodeError(f"ffmpeg failed ({result.returncode}): {message[0]}")
        frames = count_video_packets(tmp)
        if frames != clip["num_frames"]:
            raise EncodeError(f"encoded {frames} frames, expected {clip['num_frames']}")
    return out.stat().st_size
