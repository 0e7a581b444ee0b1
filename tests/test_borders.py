"""Letterbox and pillarbox bars are found in the analysis pass and cropped when encoding."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from timelapse_d.config import AnalyzeConfig, EncodeConfig
from timelapse_d.sources.local import find_videos
from timelapse_d.stages.analyze import analyze_video
from timelapse_d.stages.encode import encode_clip


def _padded(path: Path, content: str, pad: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={content}:rate=25",
         "-frames:v", "30", "-vf", f"pad={pad}:black", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("content", "pad", "expected"),
    [
        ("960x720", "1280:720:160:0", (160, 0, 960, 720)),  # pillarbox
        ("1280x544", "1280:720:0:88", (0, 88, 1280, 544)),  # letterbox
    ],
    ids=["pillarbox", "letterbox"],
)
def test_bars_are_cropped(tmp_path: Path, content: str, pad: str, expected: tuple) -> None:
    source = _padded(tmp_path / "boxed.mp4", content, pad)
    (clip,) = analyze_video(find_videos(source)[0], AnalyzeConfig())["clips"]
    crop = (clip["crop_x"], clip["crop_y"], clip["crop_width"], clip["crop_height"])
    # Bars are measured on 256-pixel-wide analysis frames: within one analysis pixel (5 px).
    assert all(abs(a - b) <= 6 for a, b in zip(crop, expected, strict=True)), crop
    out = tmp_path / "clip.mp4"
    encode_clip(clip, source, out, EncodeConfig())
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (clip["crop_width"], clip["crop_height"])
        gray = frame.to_ndarray(format="gray")
    assert min(gray[:, :2].mean(), gray[:2].mean()) > 20  # no black bar left at an edge


def test_a_dark_band_on_one_side_only_is_not_cropped(tmp_path: Path) -> None:
    source = _padded(tmp_path / "top.mp4", "1280x620", "1280:720:0:100")
    (clip,) = analyze_video(find_videos(source)[0], AnalyzeConfig())["clips"]
    assert clip["crop_width"] is None and clip["crop_height"] is None
