"""The manifest is joined from the build's clips, the labels and the splits by one decision."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from timelapse_d.assemble import CLIPS_TABLE, MANIFEST, assemble, read_clips, write_labels
from timelapse_d.config import resolve_config
from timelapse_d.manifest import read_rows
from timelapse_d.pipeline import build
from timelapse_d.records import KEEP, REJECT, Label
from timelapse_d.stages.filter import SOFT_REASONS


def test_the_build_imports_no_annotation_code_and_no_downloader() -> None:
    """A local or demo build runs on the core install: no annotation code, no yt-dlp."""
    code = (
        "import sys, timelapse_d.pipeline; "
        "print(sorted(m for m in sys.modules if m.startswith(('timelapse_d.annotation', "
        "'yt_dlp', 'timelapse_d.acquire.download', 'timelapse_d.stages.stream'))))"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert imported.stdout.strip() == "[]", imported.stderr


def test_assemble_rewrites_the_same_manifest(synthetic_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(synthetic_build, out)
    before = (out / MANIFEST).read_bytes()
    assemble(out)
    assert (out / MANIFEST).read_bytes() == before
    clips = read_clips(out)
    assert all(clip.status is None for clip in clips)  # decided in the manifest only
    stage_reasons = {r for c in clips for r in c.reject_reasons or []}
    assert stage_reasons <= {"duplicate", "unreadable", "encode_failed"}
    assert pq.read_schema(out / CLIPS_TABLE).names == pq.read_schema(out / MANIFEST).names


def test_a_label_changes_what_the_next_build_encodes(synthetic_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(synthetic_build, out)
    rows = read_rows(out / MANIFEST)
    rescued = next(
        r for r in rows if r["reject_reasons"] and set(r["reject_reasons"]) <= SOFT_REASONS
    )
    dropped = next(r for r in rows if r["status"] == "kept")
    write_labels(
        out,
        [
            Label(rescued["clip_id"], KEEP, (), ("cloud",), 1.0, 2),
            Label(dropped["clip_id"], REJECT, ("text_watermark",), (), None, 1),
        ],
    )
    assemble(out)
    manifest = {r["clip_id"]: r for r in read_rows(out / MANIFEST)}
    assert manifest[rescued["clip_id"]]["status"] == "kept"
    assert manifest[rescued["clip_id"]]["shard"] is None  # not encoded until the next build
    assert manifest[dropped["clip_id"]]["reject_reasons"] == ["human_reject"]
    labelled = {rescued["clip_id"], dropped["clip_id"]}
    others = [r for r in manifest.values() if r["clip_id"] not in labelled]
    assert all(r["n_annotations"] == 0 and r["human_decision"] is None for r in others)

    assert build(resolve_config(source="synthetic", overrides={"workers": 2}), out).complete
    rebuilt = {r["clip_id"]: r for r in read_rows(out / MANIFEST)}
    assert rebuilt[rescued["clip_id"]]["status"] == "kept" and rebuilt[rescued["clip_id"]]["shard"]
    assert rebuilt[rescued["clip_id"]]["categories"] == ["cloud"]
    assert rebuilt[dropped["clip_id"]]["status"] == "rejected"
    assert rebuilt[dropped["clip_id"]]["shard"] is None
