"""`tld annotate` against a real Label Studio server on 127.0.0.1 (its own virtual environment,
started and stopped by this module): push with overlap 3 and gold tasks, three simulated
annotators (one unreliable) answer through the API, pull resolves them into the manifest;
re-pushing duplicates nothing; a server stopped mid-push leaves a state a re-run completes;
the token appears in no output.

The server's environment: $TLD_LABEL_STUDIO_VENV, else `tld annotate server install`'s default.
Without it the module is skipped, except under CI, where `.ci/run` installs it.
"""

from __future__ import annotations

import csv
import logging
import os
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from timelapse_d.annotation.agreement import alpha_nominal
from timelapse_d.annotation.pull import human_labels
from timelapse_d.annotation.push import push
from timelapse_d.annotation.resolve import SOFT_REASONS
from timelapse_d.annotation.server import (
    AnnotationServerError,
    ServerInfo,
    default_home,
    read_token,
    start,
    stop,
)
from timelapse_d.annotation.studio import Connection, Studio
from timelapse_d.cli import cli
from timelapse_d.config import BuildConfig, resolve_config
from timelapse_d.manifest import read_rows
from timelapse_d.pipeline import build
from timelapse_d.synth import write_corpus

pytestmark = pytest.mark.slow
label_studio_sdk = pytest.importorskip("label_studio_sdk")

VENV = Path(os.environ.get("TLD_LABEL_STUDIO_VENV") or default_home() / "venv")
ANNOTATORS = ("ann-a@example.org", "ann-b@example.org", "ann-c@example.org")


@pytest.fixture(scope="module")
def files_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="module")
def server(files_root: Path) -> Any:
    if not (VENV / "bin" / "label-studio").exists():
        if os.environ.get("CI"):
            pytest.fail(f"Label Studio is not installed in {VENV} (.ci/run installs it)")
        pytest.skip(f"Label Studio is not installed in {VENV}: tld annotate server install")
    data = files_root / "server"
    info = start(data, VENV, files_root, port=0)
    yield info
    stop(data)


@pytest.fixture(scope="module")
def build30(files_root: Path) -> Path:
    """A build of two synthetic corpora (48 clips) under the served folder."""
    for seed in (0, 1):
        write_corpus(files_root / "videos" / f"seed-{seed}", seed)
    out = files_root / "build"
    assert build(_config(files_root), out).complete
    return out


def _config(files_root: Path) -> BuildConfig:
    videos = str(files_root / "videos")
    synthetic_recipe = {"filter.min_height": 144, "filter.min_frames": 40}
    return resolve_config(
        source="local", overrides={"workers": 2, "input": videos, **synthetic_recipe}
    )


def _studio(info: ServerInfo) -> Studio:
    return Studio(Connection(info.url, read_token(info.token_file), Path(info.files_root)))


def _admin(info: ServerInfo) -> Any:
    return label_studio_sdk.LabelStudio(base_url=info.url, api_key=read_token(info.token_file))


def _choices(name: str, values: list[str]) -> dict[str, Any]:
    return {"from_name": name, "to_name": "video", "type": "choices", "value": {"choices": values}}


def _answers(clip_ids: list[str], truth: dict[str, str], gold: list[str]) -> dict:
    """Each annotator's decision per clip. A is always right; B is wrong on 3 ordinary clips
    and on 1 gold clip; C (unreliable) is wrong on those and on every other clip but one gold
    clip and half the rest. Majority is then wrong on B's 3 clips and the gold clip; the
    weighted vote follows A (weights: A ln 8, B ln 3.5, C 0)."""
    flip = {"keep": "reject", "reject": "keep"}
    ordinary = [c for c in clip_ids if c not in gold]
    b_wrong = set(ordinary[:3]) | {gold[0]}
    c_wrong = b_wrong | set(gold[1:5]) | set(ordinary[3::2])
    return {
        ANNOTATORS[0]: dict(truth),
        ANNOTATORS[1]: {c: flip[d] if c in b_wrong else d for c, d in truth.items()},
        ANNOTATORS[2]: {c: flip[d] if c in c_wrong else d for c, d in truth.items()},
    }


def test_push_annotate_pull_round_trip(
    server: ServerInfo, build30: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = read_token(server.token_file)
    rows = read_rows(build30 / "manifest.parquet")
    clip_ids = sorted(r["clip_id"] for r in rows)
    assert len(clip_ids) >= 30
    truth = {r["clip_id"]: "keep" if r["status"] == "kept" else "reject" for r in rows}
    # The annotators keep one clip the filter rejected for reasons a human keep lifts.
    overruled = next(
        r["clip_id"]
        for r in rows
        if r["reject_reasons"] and set(r["reject_reasons"]) <= SOFT_REASONS
    )
    truth[overruled] = "keep"
    gold = [c for c in clip_ids if c != overruled][-6:]
    gold_file = build30.parent / "gold.csv"
    with gold_file.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "decision", "reasons", "categories"])
        writer.writerows([c, truth[c], "", ""] for c in gold)

    connection = ["--url", server.url, "--token-file", str(server.token_file)]
    connection += ["--files-root", server.files_root]
    runner = CliRunner()
    push_args = ["annotate", "push", str(build30), "--project", "round trip", "--overlap", "3"]
    pushed = runner.invoke(cli, [*push_args, "--gold", str(gold_file), *connection])
    assert pushed.exit_code == 0, pushed.output
    assert f"{len(clip_ids)} tasks created" in pushed.output

    admin = _admin(server)
    project = next(p for p in admin.projects.list() if p.title == "round trip")
    assert project.maximum_annotations == 3
    tasks = list(admin.tasks.list(project=project.id, fields="all"))
    assert sorted(t.data["clip_id"] for t in tasks) == clip_ids
    by_clip = {t.data["clip_id"]: t for t in tasks}
    for row in rows:  # the automatic decision is the pre-annotation
        prediction = by_clip[row["clip_id"]].predictions[0].result[0]["value"]["choices"]
        assert prediction == ["keep" if row["status"] == "kept" else "reject"]
    preview = by_clip[clip_ids[0]].data["video"]
    request = urllib.request.Request(
        server.url + preview, headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    assert body == (build30 / "annotations" / "previews" / f"{clip_ids[0]}.mp4").read_bytes()
    assert body.index(b"moov") < body.index(b"mdat")  # faststart: plays before it has loaded

    answers = _answers(clip_ids, truth, gold)
    users = {
        email: admin.users.create(username=email.split("@")[0], email=email) for email in ANNOTATORS
    }
    for email, decisions in answers.items():
        for clip_id, decision in decisions.items():
            result = [_choices("decision", [decision])]
            if decision == "reject":
                result.append(_choices("reasons", ["not_timelapse"]))
            else:
                result.append(_choices("categories", ["cloud"]))
            admin.annotations.create(
                id=by_clip[clip_id].id, result=result, completed_by=users[email].id
            )

    status = runner.invoke(cli, ["annotate", "status", str(build30), *connection])
    assert f"tasks done: {len(clip_ids)} of {len(clip_ids)}" in status.output
    pulled = runner.invoke(cli, ["annotate", "pull", str(build30), *connection])
    assert pulled.exit_code == 0, pulled.output
    assert "by weighted vote" in pulled.output

    manifest = {r["clip_id"]: r for r in read_rows(build30 / "manifest.parquet")}
    assert {c: manifest[c]["human_decision"] for c in clip_ids} == truth
    assert all(manifest[c]["n_annotations"] == 3 for c in clip_ids)
    assert manifest[overruled]["status"] == "kept"  # the human keep lifted the soft reasons
    majority, _ = human_labels(build30, "majority")
    majority_right = sum(majority[c].human_decision == truth[c] for c in clip_ids)
    assert majority_right == len(clip_ids) - 4  # B's three clips and the gold clip B missed

    exports = sorted((build30 / "annotations").glob("annotations-*.parquet"))
    exported = pq.read_table(exports[0]).to_pylist()
    assert len(exported) == 3 * len(clip_ids)
    units = [[answers[a][c] for a in ANNOTATORS] for c in clip_ids]
    assert f"{alpha_nominal(units):.3f}" in pulled.output
    for email, expected in zip(ANNOTATORS, ("100.0%", "83.3%", "16.7%"), strict=True):
        line = next(line for line in pulled.output.splitlines() if email in line)
        assert line.split()[1:4] == [str(len(clip_ids)), "6", expected]  # answers, gold, accuracy

    # Pushing again creates nothing and keeps every answer; a second pull adds a new file.
    again = runner.invoke(cli, [*push_args, *connection])
    assert "0 tasks created" in again.output
    tasks = list(admin.tasks.list(project=project.id, fields="all"))
    assert len(tasks) == len(clip_ids) and sum(len(t.annotations) for t in tasks) == 3 * len(
        clip_ids
    )
    runner.invoke(cli, ["annotate", "pull", str(build30), *connection])
    assert len(list((build30 / "annotations").glob("annotations-*.parquet"))) == 2

    # Rebuilding keeps the human labels and encodes the clip the annotators kept.
    assert build(_config(build30.parent), build30).complete
    rebuilt = {r["clip_id"]: r for r in read_rows(build30 / "manifest.parquet")}
    assert rebuilt[overruled]["status"] == "kept" and rebuilt[overruled]["shard"]
    assert {c: rebuilt[c]["human_decision"] for c in clip_ids} == truth

    server_log = (Path(server.data_dir) / "server.log").read_text(errors="replace")
    outputs = [pushed.output, status.output, pulled.output, again.output, caplog.text, server_log]
    assert not any(token in text for text in outputs)
    for path in build30.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_server_stopped_mid_push_then_rerun_creates_every_task_once(
    server: ServerInfo, build30: Path
) -> None:
    studio = _studio(server)
    data, port = Path(server.data_dir), int(server.url.rsplit(":", 1)[1])

    def stop_after_first_batch(done: int) -> None:
        if done == 5:
            stop(data)

    with pytest.raises(AnnotationServerError, match="did not answer.*run the command again"):
        push(build30, studio, "interrupted", batch_size=5, on_batch=stop_after_first_batch)
    restarted = start(data, VENV, Path(server.files_root), port=port)
    assert restarted.url == server.url
    summary = push(build30, studio, "interrupted", batch_size=5)
    clips = len(read_rows(build30 / "manifest.parquet"))
    assert summary.created == clips - 5 and summary.unchanged == 5
    admin = _admin(server)
    project = next(p for p in admin.projects.list() if p.title == "interrupted")
    ids = [t.data["clip_id"] for t in admin.tasks.list(project=project.id)]
    assert len(ids) == len(set(ids)) == clips
