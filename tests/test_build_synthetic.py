"""`tld build --source synthetic`: decisions against the generator's truth, and the output
contract (manifests, shards, run directory)."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path

import av
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from timelapse_d.config import resolve_config
from timelapse_d.cut_scoring import clip_for_segment, cuts_of, score_cuts
from timelapse_d.manifest import CLIP_COLUMNS
from timelapse_d.pipeline import build
from timelapse_d.synth import load_truth

pytestmark = pytest.mark.slow


def _clips_by_video(out: Path) -> dict[str, list[dict]]:
    by_video: dict[str, list[dict]] = defaultdict(list)
    for row in pq.read_table(out / "manifest.parquet").to_pylist():
        by_video[row["source_uri"]].append(row)
    return by_video


def _truth_pairs(out: Path):
    """(truth, clips of that video) for every synthetic video."""
    by_video = _clips_by_video(out)
    for video in sorted((out / "sources" / "synthetic").glob("*.mp4")):
        yield (
            load_truth(video),
            sorted(by_video[f"synthetic://seed-0/{video.name}"], key=lambda c: c["start_frame"]),
        )


def test_known_cuts_found_within_two_frames(synthetic_build: Path) -> None:
    hits = predicted = actual = 0
    for truth, clips in _truth_pairs(synthetic_build):
        score = score_cuts(cuts_of(clips), truth.cuts, tolerance=2)
        hits, predicted, actual = (
            hits + score.true_positives,
            predicted + score.predicted,
            actual + score.actual,
        )
    assert actual > 10
    assert hits / predicted >= 0.95, (hits, predicted)
    assert hits / actual >= 0.95, (hits, actual)


def test_decisions_match_truth(synthetic_build: Path) -> None:
    """Every negative carries its expected reasons; positives are kept."""
    missing, negatives, positives, positives_kept = [], set(), 0, 0
    for truth, clips in _truth_pairs(synthetic_build):
        for segment in truth.segments:
            clip = clip_for_segment(clips, segment.start, segment.end)
            assert clip is not None
            if segment.expected_decision == "kept":
                positives += 1
                positives_kept += clip["status"] == "kept"
                continue
            negatives.add(segment.kind)
            lacking = set(segment.expected_reasons) - set(clip["reject_reasons"])
            if lacking:
                missing.append((segment.kind, clip["clip_id"], sorted(lacking)))
    assert not missing, missing
    assert {"still", "slideshow", "photo_steps", "pan", "zoom", "shake", "black"} <= negatives
    assert positives >= 9
    assert positives_kept / positives >= 0.95, (positives_kept, positives)


def test_manifest_contract(synthetic_build: Path) -> None:
    manifest = pq.read_table(synthetic_build / "manifest.parquet")
    for column in [
        "clip_id",
        "video_id",
        "source_uri",
        "start_frame",
        "end_frame",
        "fps",
        "width",
        "height",
        "num_frames",
        "status",
        "reject_reasons",
        "shard",
        "scene_motion",
        "camera_translation",
        "frame_change",
    ]:
        assert column in manifest.column_names, column
    assert set(manifest.column_names) <= set(CLIP_COLUMNS), "document every column"
    rows = manifest.to_pylist()
    ids = [r["clip_id"] for r in rows]
    assert len(ids) == len(set(ids)) and not any("." in i for i in ids)
    for row in rows:
        assert row["end_frame"] - row["start_frame"] == row["num_frames"]
        if row["status"] == "kept":
            assert row["reject_reasons"] == [] and row["shard"].startswith("clips-")
        else:
            assert row["status"] == "rejected" and row["reject_reasons"] and row["shard"] is None
    videos = pq.read_table(synthetic_build / "videos.parquet").to_pylist()
    assert len(videos) == 4 and all(v["status"] == "ok" and v["error"] is None for v in videos)
    assert {r["video_id"] for r in rows} == {v["video_id"] for v in videos}


def test_shards_are_webdataset_with_manifest_rows_and_decodable_clips(
    synthetic_build: Path,
) -> None:
    shard_dir = synthetic_build / "shards"
    tars = sorted(shard_dir.glob("clips-*.tar"))
    assert len(tars) >= 2  # the demo recipe rolls shards at 2 MB
    kept = {
        r["clip_id"]: r
        for r in pq.read_table(synthetic_build / "manifest.parquet").to_pylist()
        if r["status"] == "kept"
    }
    seen = []
    for tar in tars:
        assert tar.stat().st_size <= 2_000_000 or len(list(wds.WebDataset(str(tar)))) == 1
        shard_rows = pq.read_table(tar.with_suffix(".parquet")).to_pylist()
        samples = list(wds.WebDataset(str(tar), shardshuffle=False))
        assert [s["__key__"] for s in samples] == [r["clip_id"] for r in shard_rows]
        for sample in samples:
            row = json.loads(sample["json"])
            expected = kept[sample["__key__"]]
            assert {k: v for k, v in row.items() if k != "shard"} == {
                k: expected[k] for k in row if k != "shard"
            }
            assert row["shard"] == tar.name
            with av.open(io.BytesIO(sample["mp4"])) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.name == "h264"
                frames = sum(1 for _ in container.decode(stream))
            assert frames == row["num_frames"]
            seen.append(sample["__key__"])
    assert sorted(seen) == sorted(kept) and seen == sorted(seen)


def test_run_directory_records_config_markers_and_logs(synthetic_build: Path) -> None:
    run = synthetic_build / "run"
    assert (run / "config.yaml").exists() and (run / "build.log").exists()
    assert (run / "summary.json").exists()
    assert len(list((run / "analyze").glob("*.done.json"))) == 4
    assert not (run / "failures").exists() or not any((run / "failures").rglob("*.txt"))


def test_rerun_does_no_work_and_threshold_change_redecides_without_decoding(
    synthetic_build: Path, tmp_path: Path
) -> None:
    markers = sorted((synthetic_build / "run").rglob("*.done.json"))
    before = {m: m.stat().st_mtime_ns for m in markers}
    manifest_before = pq.read_table(synthetic_build / "manifest.parquet").to_pylist()
    build(resolve_config(source="synthetic"), synthetic_build)
    assert {m: m.stat().st_mtime_ns for m in markers} == before
    assert pq.read_table(synthetic_build / "manifest.parquet").to_pylist() == manifest_before

    # A stricter length threshold: no video is decoded again, fewer clips are kept.
    analyze_markers = sorted((synthetic_build / "run" / "analyze").glob("*.done.json"))
    analyzed = {m: m.stat().st_mtime_ns for m in analyze_markers}
    summary = build(
        resolve_config(source="synthetic", overrides={"filter.min_frames": 90}), synthetic_build
    )
    assert {m: m.stat().st_mtime_ns for m in analyze_markers} == analyzed
    rows = pq.read_table(synthetic_build / "manifest.parquet").to_pylist()
    assert all("too_short" in r["reject_reasons"] for r in rows if r["num_frames"] < 90)
    assert summary.clips_kept < sum(r["status"] == "kept" for r in manifest_before)
    # An encoding setting re-encodes the kept clips, and only that: no video is analysed again.
    encode_markers = sorted((synthetic_build / "run" / "encode").glob("*.done.json"))
    encoded = {m: m.stat().st_mtime_ns for m in encode_markers}
    build(resolve_config(source="synthetic", overrides={"encode.crf": 30}), synthetic_build)
    assert {m: m.stat().st_mtime_ns for m in analyze_markers} == analyzed
    assert all(m.stat().st_mtime_ns != encoded[m] for m in encode_markers)
    smaller = pq.read_table(synthetic_build / "manifest.parquet").to_pylist()
    assert sum(r["clip_bytes"] or 0 for r in smaller) < sum(
        r["clip_bytes"] or 0 for r in manifest_before
    )
    # ...and back: the original outputs again, still without decoding.
    build(resolve_config(source="synthetic"), synthetic_build)
    assert pq.read_table(synthetic_build / "manifest.parquet").to_pylist() == manifest_before
    assert {m: m.stat().st_mtime_ns for m in analyze_markers} == analyzed
