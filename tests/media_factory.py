"""Write good and bad media inputs for tests with the ffmpeg CLI; each returns its Path.

Every file is small (well under 1 MB) and made in well under a second. What the probe and
decoder report for each:
- ``zero_byte``: ``empty_file``. ``html_as_mp4``, ``text_as_mp4``, ``random_bytes``:
  ``not_a_video``. ``audio_only``: ``no_video_stream``.
- ``truncated_mp4(faststart=True)``: probes fine (the index is intact), decoding yields the
  frames stored before the cut, then ``truncated``.
- ``truncated_mp4(faststart=False)``: the index (moov) sat at the end and is gone, so nothing
  can be opened: probe and decode raise ``truncated`` with no frame.
- ``truncated_webm``: probes fine; decoding yields the frames before the cut, then
  ``truncated`` (found from the declared duration, as WebM has no full frame index).
- ``corrupt_middle``: garbage over part of the frame data; decoding conceals it, no error.
- the others are valid clips with unusual properties (rotation, VFR, 10-bit, odd size...).
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

GOOD_FRAMES = 30
GOOD_FPS = 10
TRUNCATED_FRAMES = 60
VFR_FRAMES = 40  # 20 frames at 10 fps, then 20 at 30 fps
UNICODE_NAME = "Ünïcödé scène 東京 timelapse.mp4"


def ffmpeg(*args: str) -> None:
    """Run the ffmpeg CLI quietly; raise CalledProcessError with its stderr on failure."""
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True, capture_output=True)


def good_clip(
    path: Path,
    width: int = 320,
    height: int = 240,
    frames: int = GOOD_FRAMES,
    fps: float = GOOD_FPS,
    *,
    faststart: bool = True,
) -> Path:
    """A normal H.264 yuv420p MP4 with moving content (testsrc2), B-frames included."""
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
        "-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-g", "10",
        "-pix_fmt", "yuv420p", *(["-movflags", "+faststart"] if faststart else []), str(path),
    )  # fmt: skip
    return path


def zero_byte(directory: Path) -> Path:
    """An empty .mp4 file."""
    path = directory / "zero_byte.mp4"
    path.write_bytes(b"")
    return path


def truncated_mp4(directory: Path, *, faststart: bool = True, keep: float = 0.4) -> Path:
    """A valid MP4 (index first when ``faststart``) cut to ``keep`` of its bytes."""
    name = "truncated_faststart.mp4" if faststart else "truncated_moov_at_end.mp4"
    path = good_clip(directory / name, frames=TRUNCATED_FRAMES, faststart=faststart)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def truncated_webm(directory: Path, keep: float = 0.4) -> Path:
    """A 6 s VP9 WebM cut to ``keep`` of its bytes (WebM has no frame index to check)."""
    path = directory / "truncated.webm"
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={GOOD_FPS}",
        "-frames:v", str(TRUNCATED_FRAMES), "-c:v", "libvpx-vp9", "-deadline", "realtime",
        "-cpu-used", "8", str(path),
    )  # fmt: skip
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def html_as_mp4(directory: Path) -> Path:
    """An HTML error page saved under a video name, as a failed download leaves it."""
    path = directory / "html_as.mp4"
    path.write_text(
        "<!DOCTYPE html>\n<html><head><title>429 Too Many Requests</title></head>\n"
        "<body><h1>Too Many Requests</h1><p>Please try again later.</p></body></html>\n",
        encoding="utf-8",
    )
    return path


def text_as_mp4(directory: Path) -> Path:
    """A plain text file under a video name."""
    path = directory / "text_as.mp4"
    path.write_text("access denied\n", encoding="utf-8")
    return path


def random_bytes(directory: Path, size: int = 20_000) -> Path:
    """Seeded random garbage under a video name."""
    path = directory / "random_bytes.mp4"
    path.write_bytes(random.Random(7).randbytes(size))
    return path


def audio_only(directory: Path) -> Path:
    """One second of AAC sound in an MP4, no video stream."""
    path = directory / "audio_only.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(path))
    return path


def one_frame(directory: Path) -> Path:
    """A valid MP4 with a single frame."""
    return good_clip(directory / "one_frame.mp4", frames=1)


def rotated(directory: Path) -> Path:
    """A phone-style portrait clip: 320x240 stored, display matrix turning it to 240x320.

    Same matrix as a phone held upright (FFmpeg reports rotation -90, i.e. 270 counter-
    clockwise). ffmpeg 5.1 writes the matrix from the ``rotate`` tag only on stream copy.
    """
    plain = good_clip(directory / "rotated_source.mp4")
    path = directory / "rotated.mp4"
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=270", str(path))
    plain.unlink()
    return path


def variable_frame_rate(directory: Path) -> Path:
    """Real VFR timestamps: 20 frames 0.1 s apart, then 20 frames 1/30 s apart."""
    path = directory / "variable_frame_rate.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30", "-frames:v", str(VFR_FRAMES),
        "-vf", "setpts='if(lt(N,20),N/10,2+(N-20)/30)/TB'", "-fps_mode", "vfr",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


def ten_bit(directory: Path) -> Path:
    """H.264 High 10, yuv420p10le."""
    path = directory / "ten_bit.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={GOOD_FPS}",
        "-frames:v", str(GOOD_FRAMES), "-c:v", "libx264", "-preset", "veryfast",
        "-pix_fmt", "yuv420p10le", str(path),
    )  # fmt: skip
    return path


def odd_sized(directory: Path) -> Path:
    """A 321x241 VP9 yuv420p WebM (VP9 allows odd sizes; WebM stores no frame count)."""
    path = directory / "odd_sized.webm"
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc=size=321x241:rate={GOOD_FPS}",
        "-frames:v", str(GOOD_FRAMES), "-c:v", "libvpx-vp9", "-deadline", "realtime",
        "-cpu-used", "8", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


def unicode_name(directory: Path) -> Path:
    """A valid clip whose file name has accents, spaces and CJK characters."""
    return good_clip(directory / UNICODE_NAME)


def non_utf8_title(directory: Path) -> Path:
    """A valid clip whose title tag holds bytes that are not UTF-8 (Latin-1 e-acute, 0xff)."""
    plain = good_clip(directory / "plain_for_title.mp4")
    path = directory / "non_utf8_title.mp4"
    # Surrogate escapes reach ffmpeg as the raw bytes 0xe9 and 0xff.
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata", "title=caf\udce9 \udcff", str(path))
    return path


def corrupt_middle(directory: Path) -> Path:
    """A valid faststart clip with 1 KB of garbage written over its frame data at 60%."""
    path = good_clip(directory / "corrupt_middle.mp4", frames=TRUNCATED_FRAMES)
    data = bytearray(path.read_bytes())
    start = int(len(data) * 0.6)
    data[start : start + 1024] = random.Random(11).randbytes(1024)
    path.write_bytes(bytes(data))
    return path
