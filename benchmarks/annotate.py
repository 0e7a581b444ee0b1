"""Benchmark: `tld annotate push` and `pull` with N tasks against a real Label Studio.

Builds the synthetic demo, widens its manifest to N clip rows (copies of its clips under new
ids, so the previews of 24 clips stand for all: one preview per real clip, hard-linked), starts
Label Studio on 127.0.0.1 from $TLD_LABEL_STUDIO_VENV (or `tld annotate server install`'s
default), then times:
(a) previews: encoding the 24 real clips' previews (seconds per clip);
(b) the first push of N tasks with their pre-annotations;
(c) a second push (nothing to create: the listing and comparison only);
(d) three simulated annotators answering every task through the API (not our cost; shown);
(e) pull: export of 3 x N answers, resolution and the manifest rewrite.
Prints a table and saves benchmarks/results/annotate.json.
Usage: python benchmarks/annotate.py [--tasks N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from label_studio_sdk import LabelStudio

from timelapse_d.annotation.previews import (
    PREVIEWS,
    STAGE,
    make_previews,
    source_paths,
)
from timelapse_d.annotation.pull import pull
from timelapse_d.annotation.push import push
from timelapse_d.annotation.server import default_home, read_token, start, stop
from timelapse_d.annotation.studio import Connection, Studio
from timelapse_d.assemble import MANIFEST, assemble, read_clips, write_clips
from timelapse_d.config import resolve_config
from timelapse_d.executors import LocalExecutor
from timelapse_d.manifest import read_rows
from timelapse_d.pipeline import build
from timelapse_d.runs import RunDir
from timelapse_d.stages.filter import NEVER_OVERRIDDEN

RESULTS = Path(__file__).parent / "results"


def widen(out: Path, tasks: int) -> None:
    """Rewrite OUT's clips and manifest with `tasks` rows cycling over its clips under new ids
    (those a human answer can rescue: `push` leaves the others out)."""
    usable = {
        r["clip_id"]
        for r in read_rows(out / MANIFEST)
        if not NEVER_OVERRIDDEN & set(r["reject_reasons"])
    }
    clips = [c for c in read_clips(out) if c.clip_id in usable]
    wide = [
        replace(clips[i % len(clips)], clip_id=f"{clips[i % len(clips)].clip_id}-copy{i:05d}")
        for i in range(tasks)
    ]
    write_clips(out, wide)
    assemble(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is needed for the previews")
    venv = Path(os.environ.get("TLD_LABEL_STUDIO_VENV") or default_home() / "venv")
    with tempfile.TemporaryDirectory(prefix="tld-annotate-bench-") as tmp:
        root = Path(tmp)
        out = root / "build"
        build(resolve_config(source="synthetic", overrides={"workers": 2}), out)
        originals = read_rows(out / "manifest.parquet")
        previews = out / "annotations" / PREVIEWS
        started = time.monotonic()
        make_previews(originals, source_paths(out), out, LocalExecutor(2))
        preview_s = (time.monotonic() - started) / len(originals)
        widen(out, args.tasks)
        run = RunDir(out)
        for row in read_rows(out / "manifest.parquet"):
            original = row["clip_id"].rsplit("-copy", 1)[0]
            os.link(previews / f"{original}.mp4", previews / f"{row['clip_id']}.mp4")
            # a copy's cut and source are its original's, so is its marker (the same key)
            os.link(run.marker(STAGE, original), run.marker(STAGE, row["clip_id"]))

        info = start(root / "server", venv, root, port=0)
        try:
            token = read_token(info.token_file)
            studio = Studio(Connection(info.url, token, root))
            timings: dict[str, float] = {}
            started = time.monotonic()
            push(out, studio, "benchmark", overlap=3)
            timings["push_first_s"] = time.monotonic() - started
            started = time.monotonic()
            push(out, studio, "benchmark", overlap=3)
            timings["push_again_s"] = time.monotonic() - started
            timings["annotate_api_s"] = simulate_annotators(info.url, token, studio, out)
            started = time.monotonic()
            summary = pull(out, studio)
            timings["pull_s"] = time.monotonic() - started
        finally:
            stop(root / "server")
    result = {
        "tasks": args.tasks,
        "answers": summary.new_answers,
        "preview_s_per_clip": round(preview_s, 3),
        **{k: round(v, 2) for k, v in timings.items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "label_studio": "1.23.2, SQLite, django dev server",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "annotate.json").write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


def simulate_annotators(url: str, token: str, studio: Studio, out: Path) -> float:
    """Three annotators answer every task (keep or reject as the filter decided); seconds."""
    admin = LabelStudio(base_url=url, api_key=token)
    project = json.loads((out / "annotations" / "push.json").read_text())["project_id"]
    users = [
        admin.users.create(username=f"bench{i}", email=f"bench{i}@example.org") for i in range(3)
    ]
    started = time.monotonic()
    for task in studio.tasks(project):
        decision = "keep" if task["data"]["auto_status"] == "kept" else "reject"
        result = [{"from_name": "decision", "to_name": "video", "type": "choices",
                   "value": {"choices": [decision]}}]  # fmt: skip
        for user in users:
            admin.annotations.create(id=task["id"], result=result, completed_by=user.id)
    return time.monotonic() - started


if __name__ == "__main__":
    main()
