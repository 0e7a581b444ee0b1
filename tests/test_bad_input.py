"""Bad input never stops a build: each file becomes a failed video or clips with the right facts."""

from __future__ import annotations

import io
from pathlib import Path

import av
import media_factory as make
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from timelapse_d.config import resolve_config
from timelapse_d.pipeline import build

pytestmark = pytest.mark.slow

# Keep every clip that decodes, so the encoding of each odd input is checked too.
KEEP_ALL = {
    "filter.min_frames": 1,
    "filter.min_height": 1,
    "filter.min_scene_motion": -1.0,
    "filter.min_frame_change": -1.0,
    "filter.max_camera_translation": 1e9,
    "filter.max_camera_drift": 1e9,
    "filter.max_camera_zoom": 1e9,
    "filter.max_camera_rotation": 1e9,
    "filter.max_camera_shake": 1e9,
    "filter.max_duplicate_bits": -1,  # several inputs show the same test pattern
}


@pytest.fixture(scope="module")
def bad_build(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("bad")
    files = {
        "zero_byte": make.zero_byte(folder),
        "truncated_faststart": make.truncated_mp4(folder),
        "truncated_index_last": make.truncated_mp4(folder, faststart=False),
        "html": make.html_as_mp4(folder),
        "random": make.random_bytes(folder),
        "audio_only": make.audio_only(folder),
        "one_frame": make.one_frame(folder),
        "rotated": make.rotated(folder),
        "vfr": make.variable_frame_rate(folder),
        "ten_bit": make.ten_bit(folder),
        "odd_sized": make.odd_sized(folder),
        "unicode": make.unicode_name(folder),
        "corrupt_middle": make.corrupt_middle(folder),
    }
    out = tmp_path_factory.mktemp("bad_out")
    summary = build(
        resolve_config(source="local", overrides={"input": str(folder), **KEEP_ALL}), out
    )
    videos = {
        Path(v["source_uri"]).name: v for v in pq.read_table(out / "videos.parquet").to_pylist()
    }
    clips = pq.read_table(out / "manifest.parquet").to_pylist()
    samples = {}
    for tar in sorted((out / "shards").glob("clips-*.tar")):
        samples.update(
            {s["__key__"]: s["mp4"] for s in wds.WebDataset(str(tar), shardshuffle=False)}
        )

    def row(name: str) -> dict:
        uri = files[name].resolve().as_uri()
        return next(v for v in videos.values() if v["source_uri"] == uri)

    def clips_of(name: str) -> list[dict]:
        vid = row(name)["video_id"]
        return sorted((c for c in clips if c["video_id"] == vid), key=lambda c: c["start_frame"])

    return {"summary": summary, "row": row, "clips_of": clips_of, "samples": samples}


def _encoded(bad_build: dict, clip: dict) -> tuple[int, int, int, str]:
    with av.open(io.BytesIO(bad_build["samples"][clip["clip_id"]])) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return frames[0].width, frames[0].height, len(frames), frames[0].format.name


def test_the_build_completes_despite_every_bad_file(bad_build: dict) -> None:
    assert bad_build["summary"].complete, bad_build["summary"].text()


@pytest.mark.parametrize(
    ("name", "reasons"),
    [
        ("zero_byte", {"empty_file"}),
        ("html", {"not_a_video"}),
        ("random", {"not_a_video", "unreadable"}),
        ("audio_only", {"no_video_stream"}),
        ("truncated_index_last", {"unreadable", "truncated", "not_a_video"}),
    ],
)
def test_unusable_files_are_failed_videos_with_a_reason(
    bad_build: dict, name: str, reasons: set
) -> None:
    row = bad_build["row"](name)
    assert row["status"] == "failed"
    assert row["error"].split(":")[0] in reasons, row["error"]
    assert bad_build["clips_of"](name) == []


def test_truncated_file_keeps_the_frames_before_the_break(bad_build: dict) -> None:
    row = bad_build["row"]("truncated_faststart")
    assert row["status"] == "ok" and row["error"].startswith("truncated")
    clips = bad_build["clips_of"]("truncated_faststart")
    assert clips and sum(c["num_frames"] for c in clips) == row["decoded_frames"] > 0
    for clip in clips:
        assert _encoded(bad_build, clip)[2] == clip["num_frames"]


def test_one_frame_video_is_a_rejected_clip_when_limits_apply(
    bad_build: dict, tmp_path: Path
) -> None:
    clips = bad_build["clips_of"]("one_frame")
    assert [c["num_frames"] for c in clips] == [1]
    path = make.one_frame(tmp_path)
    out = tmp_path / "out"
    build(
        resolve_config(source="local", overrides={"input": str(path), "filter.min_height": 1}), out
    )
    (clip,) = pq.read_table(out / "manifest.parquet").to_pylist()
    assert clip["status"] == "rejected" and "too_short" in clip["reject_reasons"]


def test_rotated_video_is_analysed_and_encoded_upright(bad_build: dict) -> None:
    row = bad_build["row"]("rotated")
    assert (row["width"], row["height"]) == (240, 320) and abs(row["rotation"]) in (90, 270)
    clips = bad_build["clips_of"]("rotated")
    assert clips
    for clip in clips:
        assert _encoded(bad_build, clip)[:2] == (240, 320)


def test_variable_frame_rate_clips_have_their_exact_frames(bad_build: dict) -> None:
    row = bad_build["row"]("vfr")
    assert row["status"] == "ok" and row["variable_frame_rate"]
    clips = bad_build["clips_of"]("vfr")
    assert sum(c["num_frames"] for c in clips) == row["decoded_frames"] == 40
    for clip in clips:
        assert _encoded(bad_build, clip)[2] == clip["num_frames"]


def test_ten_bit_and_odd_sized_sources_encode_to_even_8bit(bad_build: dict) -> None:
    for name in ("ten_bit", "odd_sized"):
        clips = bad_build["clips_of"](name)
        assert clips and bad_build["row"](name)["status"] == "ok"
        for clip in clips:
            width, height, frames, pix_fmt = _encoded(bad_build, clip)
            assert width % 2 == 0 and height % 2 == 0 and pix_fmt == "yuv420p"
            assert frames == clip["num_frames"]
    assert bad_build["row"]("odd_sized")["width"] == 321


def test_non_ascii_names_with_spaces_work_and_ids_stay_ascii(bad_build: dict) -> None:
    row = bad_build["row"]("unicode")
    assert row["status"] == "ok"
    clips = bad_build["clips_of"]("unicode")
    assert clips and all(c["clip_id"].isascii() and "." not in c["clip_id"] for c in clips)


def test_corrupt_packets_mid_file_do_not_lose_the_video(bad_build: dict) -> None:
    row = bad_build["row"]("corrupt_middle")
    assert row["status"] == "ok" and row["decoded_frames"] > 0
