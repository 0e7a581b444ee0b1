"""Probe and decode on good and bad inputs made by media_factory with the ffmpeg CLI."""

from __future__ import annotations

import pickle
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import media_factory as mf
import numpy as np
import pytest

from timelapse_d.errors import DecodeError, MediaError, ProbeError
from timelapse_d.media.decode import Frame, analysis_size, iter_frames, prefetched
from timelapse_d.media.probe import probe_video

SHARED_CUTS = (Path(__file__).resolve().parents[1] / ".." / "shared" / "media" / "cuts").resolve()
TESTVIDEO = SHARED_CUTS / "testvideo.mp4"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Make each factory input once per module: media(mf.rotated) -> Path."""
    directory = tmp_path_factory.mktemp("media")
    made: dict[tuple, Path] = {}

    def make(factory: Callable[..., Path], **kwargs: object) -> Path:
        key = (factory.__name__, tuple(sorted(kwargs.items())))
        if key not in made:
            made[key] = factory(directory, **kwargs)
        return made[key]

    return make


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A normal 320x240 clip, 30 frames at 10 fps."""
    return mf.good_clip(tmp_path_factory.mktemp("good") / "good.mp4")


def decode_all(path: Path, **kwargs: object) -> tuple[list[Frame], DecodeError | None]:
    """All frames iter_frames yields, and the DecodeError that ended it, if any."""
    frames: list[Frame] = []
    try:
        for frame in iter_frames(path, **kwargs):
            frames.append(frame)
    except DecodeError as exc:
        return frames, exc
    return frames, None


def ffmpeg_frame(path: Path, width: int, height: int) -> np.ndarray:
    """The first frame as the ffmpeg CLI shows it (autorotated), as bgr24."""
    cmd = ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-vf"]
    cmd += [
        f"scale={width}:{height}:flags=fast_bilinear",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-",
    ]
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(height, width, 3)


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


BAD_INPUTS = [
    (mf.zero_byte, {}, "empty_file"),
    (mf.html_as_mp4, {}, "not_a_video"),
    (mf.text_as_mp4, {}, "not_a_video"),
    (mf.random_bytes, {}, "not_a_video"),
    (mf.audio_only, {}, "no_video_stream"),
    (mf.truncated_mp4, {"faststart": False}, "truncated"),
]


@pytest.mark.parametrize(("factory", "kwargs", "reason"), BAD_INPUTS)
def test_bad_input_raises_its_reason_naming_the_file(media, factory, kwargs, reason) -> None:
    path = media(factory, **kwargs)
    with pytest.raises(ProbeError) as probed:
        probe_video(path)
    frames, decoded = decode_all(path, width=64, height=48)
    assert frames == []
    for exc in (probed.value, decoded):
        assert isinstance(exc, MediaError)
        assert exc.reason == reason
        assert path.name in str(exc) and path.name in exc.message


def test_missing_file_is_reported() -> None:
    with pytest.raises(ProbeError) as probed:
        probe_video(Path("/nonexistent/clip.mp4"))
    assert probed.value.reason == "missing_file"
    assert "clip.mp4" in probed.value.message


def test_html_message_says_it_is_a_web_page(media) -> None:
    with pytest.raises(ProbeError, match="HTML page"):
        probe_video(media(mf.html_as_mp4))


def test_media_errors_survive_pickling_for_worker_processes() -> None:
    error = DecodeError(Path("/data/a.mp4"), "truncated", "decoding stopped after 3 frames")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is DecodeError
    assert (copy.reason, copy.path, str(copy)) == (error.reason, error.path, str(error))


def test_unknown_reason_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        MediaError(Path("a.mp4"), "bad", "x")


def test_good_clip_probe_and_decode(good) -> None:
    path: Path = good
    probe = probe_video(path)
    assert (probe.codec, probe.width, probe.height, probe.rotation) == ("h264", 320, 240, 0)
    assert (probe.coded_width, probe.coded_height) == (320, 240)
    assert probe.fps == pytest.approx(mf.GOOD_FPS)
    assert probe.num_frames == mf.GOOD_FRAMES and not probe.num_frames_estimated
    assert probe.duration_s == pytest.approx(mf.GOOD_FRAMES / mf.GOOD_FPS)
    assert (probe.pix_fmt, probe.bit_depth, probe.variable_frame_rate) == ("yuv420p", 8, False)
    assert not probe.has_audio and "mp4" in probe.container
    frames, error = decode_all(path, width=160, height=120)
    assert error is None
    assert [f.index for f in frames] == list(range(mf.GOOD_FRAMES))
    assert [f.time_s for f in frames] == pytest.approx(
        [i / mf.GOOD_FPS for i in range(mf.GOOD_FRAMES)]
    )
    assert all(f.image.shape == (120, 160, 3) and f.image.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0].image, frames[-1].image)  # the content moves


def test_decode_matches_ffmpeg_cli_and_formats(good) -> None:
    path: Path = good
    first = next(iter(iter_frames(path, width=160, height=120)))
    reference = ffmpeg_frame(path, 160, 120)
    assert mean_diff(first.image, reference) < 3
    rgb = next(iter(iter_frames(path, width=160, height=120, pix_fmt="rgb24")))
    assert mean_diff(rgb.image, first.image[..., ::-1]) < 2  # swscale's rgb/bgr paths round apart
    gray = next(iter(iter_frames(path, width=160, height=120, pix_fmt="gray")))
    assert gray.image.shape == (120, 160)
    native = next(iter(iter_frames(path, threads=False)))
    assert native.image.shape == (240, 320, 3)


def test_deblocking_only_reference_frames_leaves_them_exact(good) -> None:
    full, _ = decode_all(good, pix_fmt="gray")
    reference_only, _ = decode_all(good, pix_fmt="gray", deblock="reference")
    none, _ = decode_all(good, pix_fmt="gray", deblock="none")
    changed = []
    for a, b in zip(full, reference_only, strict=True):
        if not a.bidirectional:  # I and P frames: deblocked as before, so nothing drifts
            np.testing.assert_array_equal(a.image, b.image)
        assert mean_diff(a.image, b.image) < 1
        changed.append(not np.array_equal(a.image, b.image))
    assert any(changed)  # the B-frames no other frame refers to were left as decoded
    assert not np.array_equal(full[0].image, none[0].image)  # "none" skips it on keyframes too


def test_rotated_clip_is_portrait_and_upright(media) -> None:
    path = media(mf.rotated)
    probe = probe_video(path)
    assert (probe.width, probe.height) == (240, 320)
    assert (probe.coded_width, probe.coded_height) == (320, 240)
    assert probe.rotation == 270  # FFmpeg reports -90: a phone held upright
    frames, error = decode_all(path, width=120, height=160)
    assert error is None and len(frames) == mf.GOOD_FRAMES
    assert all(f.image.shape == (160, 120, 3) for f in frames)
    reference = ffmpeg_frame(path, 120, 160)  # the CLI rotates before scaling: small differences
    upright = mean_diff(frames[0].image, reference)
    assert upright < 15 and upright < 0.3 * mean_diff(frames[0].image[::-1, ::-1], reference)


def test_variable_frame_rate_is_flagged_and_timestamps_kept(media) -> None:
    path = media(mf.variable_frame_rate)
    probe = probe_video(path)
    assert probe.variable_frame_rate
    assert probe.num_frames == mf.VFR_FRAMES
    frames, error = decode_all(path, width=80, height=60)
    assert error is None and len(frames) == mf.VFR_FRAMES
    steps = np.diff([f.time_s for f in frames])
    assert steps[:19] == pytest.approx(0.1, abs=1e-3)
    assert steps[20:] == pytest.approx(1 / 30, abs=1e-3)


def test_ten_bit(media) -> None:
    path = media(mf.ten_bit)
    probe = probe_video(path)
    assert (probe.bit_depth, probe.pix_fmt) == (10, "yuv420p10le")
    frames, error = decode_all(path, width=160, height=120)
    assert error is None and len(frames) == mf.GOOD_FRAMES
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (120, 160, 3)


def test_odd_size_is_exact_and_frame_count_estimated(media) -> None:
    path = media(mf.odd_sized)
    probe = probe_video(path)
    assert (probe.codec, probe.width, probe.height) == ("vp9", 321, 241)
    assert probe.num_frames_estimated and probe.num_frames == mf.GOOD_FRAMES
    size = analysis_size(probe.width, probe.height)
    assert size == (256, 192)
    frames, error = decode_all(path, width=size[0], height=size[1])
    assert error is None and len(frames) == mf.GOOD_FRAMES
    assert frames[0].image.shape == (192, 256, 3) and frames[0].image.flags.c_contiguous
    native, _ = decode_all(path, threads=False)
    assert native[0].image.shape == (241, 321, 3)


def test_unicode_path(media) -> None:
    path = media(mf.unicode_name)
    assert path.name == mf.UNICODE_NAME
    assert probe_video(path).num_frames == mf.GOOD_FRAMES
    frames, error = decode_all(path, width=64, height=48)
    assert error is None and len(frames) == mf.GOOD_FRAMES


def test_title_that_is_not_utf8_does_not_stop_probe_or_decode(media) -> None:
    path = media(mf.non_utf8_title)
    assert b"caf\xe9 \xff" in path.read_bytes()
    assert probe_video(path).num_frames == mf.GOOD_FRAMES
    frames, error = decode_all(path, width=64, height=48)
    assert error is None and len(frames) == mf.GOOD_FRAMES


def test_one_frame(media) -> None:
    path = media(mf.one_frame)
    assert probe_video(path).num_frames == 1
    frames, error = decode_all(path, width=64, height=48)
    assert error is None and [f.index for f in frames] == [0]


@pytest.mark.parametrize("threads", [True, False])
def test_truncated_faststart_yields_good_frames_then_truncated(media, threads, tmp_path) -> None:
    path = media(mf.truncated_mp4)
    probe = probe_video(path)  # the index is intact: probing cannot tell
    assert probe.num_frames == mf.TRUNCATED_FRAMES
    frames, error = decode_all(path, width=64, height=48, threads=threads)
    assert error is not None and error.reason == "truncated" and path.name in error.message
    assert 5 < len(frames) < mf.TRUNCATED_FRAMES
    whole = mf.good_clip(tmp_path / "whole.mp4", frames=mf.TRUNCATED_FRAMES)
    full, _ = decode_all(whole, width=64, height=48)
    for got, want in zip(frames, full, strict=False):
        np.testing.assert_array_equal(got.image, want.image)


def test_truncated_webm_is_caught_by_its_declared_duration(media) -> None:
    cut = media(mf.truncated_webm)
    frames, error = decode_all(cut, width=64, height=48)
    assert frames and error is not None and error.reason == "truncated"


def test_concealed_corruption_in_the_middle_does_not_stop_decoding(media) -> None:
    path = media(mf.corrupt_middle)
    frames, error = decode_all(path, width=64, height=48)
    assert error is None
    assert len(frames) >= mf.TRUNCATED_FRAMES - 5
    assert [f.index for f in frames] == list(range(len(frames)))


def test_prefetched_decode_gives_the_same_frames_then_the_same_error(media) -> None:
    path = media(mf.truncated_mp4)
    direct, direct_error = decode_all(path, width=64, height=48)
    ahead: list[Frame] = []
    with pytest.raises(DecodeError) as caught:
        for frame in prefetched(iter_frames(path, width=64, height=48), depth=2):
            ahead.append(frame)
    assert direct_error is not None and caught.value.reason == direct_error.reason
    assert [f.index for f in ahead] == [f.index for f in direct]
    for got, want in zip(ahead, direct, strict=True):
        np.testing.assert_array_equal(got.image, want.image)


def test_decoding_ahead_gives_the_same_frames_then_the_same_error(media) -> None:
    path = media(mf.truncated_mp4)
    direct, direct_error = decode_all(path, width=64, height=48)
    ahead, ahead_error = decode_all(path, width=64, height=48, ahead=2)
    assert direct_error is not None and ahead_error is not None
    assert ahead_error.reason == direct_error.reason
    assert [(f.index, f.time_s, f.key_frame) for f in ahead] == [
        (f.index, f.time_s, f.key_frame) for f in direct
    ]
    for got, want in zip(ahead, direct, strict=True):
        np.testing.assert_array_equal(got.image, want.image)


def test_closing_a_decode_ahead_stops_its_thread(good) -> None:
    before = {t.name for t in threading.enumerate()}
    frames = iter_frames(good, width=64, height=48, ahead=1)
    assert next(frames).index == 0
    frames.close()
    assert "tld-decode" not in {t.name for t in threading.enumerate()} - before


def test_closing_a_prefetched_decode_stops_its_thread(good) -> None:
    before = {t.name for t in threading.enumerate()}
    frames = prefetched(iter_frames(good, width=64, height=48), depth=1)
    assert next(frames).index == 0
    frames.close()
    assert "tld-decode" not in {t.name for t in threading.enumerate()} - before


def test_stopping_early_closes_cleanly(good) -> None:
    frames = iter_frames(good, width=64, height=48)
    assert next(frames).index == 0
    frames.close()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        next(iter_frames(Path("x.mp4"), pix_fmt="yuv420p"))
    with pytest.raises(ValueError):
        next(iter_frames(Path("x.mp4"), deblock="some"))
    with pytest.raises(ValueError):
        analysis_size(0, 10)


@pytest.mark.parametrize(
    ("size", "target", "expected"),
    [
        ((1280, 720), 256, (256, 144)),
        ((1920, 1080), 256, (256, 144)),
        ((720, 1280), 256, (256, 456)),
        ((321, 241), 256, (256, 192)),
        ((200, 150), 256, (200, 150)),  # never upscaled
        ((255, 101), 256, (254, 100)),  # even, not above the source
        ((3, 3), 256, (2, 2)),
    ],
)
def test_analysis_size(size, target, expected) -> None:
    assert analysis_size(*size, target) == expected


@pytest.mark.skipif(not TESTVIDEO.is_file(), reason="shared test video is absent")
def test_probe_shared_testvideo() -> None:
    probe = probe_video(TESTVIDEO)
    assert (probe.codec, probe.width, probe.height, probe.rotation) == ("h264", 1280, 720, 0)
    assert probe.fps == pytest.approx(30000 / 1001)
    assert probe.num_frames == 720 and not probe.num_frames_estimated
    assert probe.duration_s == pytest.approx(24.02, abs=0.01)
    assert not probe.variable_frame_rate and probe.bit_depth == 8
