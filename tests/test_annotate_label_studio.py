"""`tld annotate` against a real Label Studio server on 127.0.0.1 (its own virtual environment,
started and stopped by this module): push with overlap 3 and gold tasks, three simulated
annotators (one unreliable) answer through the API, pull resolves them into the manifest;
re-pushing duplicates nothing, keeps the overlap and sends the automatic decision, never the
annotators'; gold is invisible in task data; clips no answer can rescue are not sent; a
server stopped mid-push leaves a state a re-run completes; the token appears in no output.

The server's environment: $TLD_LABEL_STUDIO_VENV, else `tld annotate server install`'s default.
Without it the module is skipped, except under CI, where `.ci/run` installs it.
"""

from __future__ import annotations

import csv
import logging
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from timelapse_d.annotation.agreement import alpha_nominal
from timelapse_d.annotation.pull import human_labels
from timelapse_d.annotation.push import automatic, push
from timelapse_d.annotation.server import (
    OFFLINE,
    AnnotationServerError,
    ServerInfo,
    default_home,
    read_token,
    running,
    start,
    stop,
)
from timelapse_d.annotation.studio import Connection, Studio
from timelapse_d.cli import cli
from timelapse_d.config import BuildConfig, resolve_config, saved_build_config
from timelapse_d.manifest import read_rows
from timelapse_d.pipeline import build
from timelapse_d.stages.filter import NEVER_OVERRIDDEN, SOFT_REASONS
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
    everything = read_rows(build30 / "manifest.parquet")
    unrescuable = {r["clip_id"] for r in everything if NEVER_OVERRIDDEN & set(r["reject_reasons"])}
    assert unrescuable  # too short or too small: no human answer can keep them
    rows = [r for r in everything if r["clip_id"] not in unrescuable]
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
    assert f"{len(clip_ids)} clips selected; {len(clip_ids)} tasks created" in pushed.output

    admin = _admin(server)
    project = next(p for p in admin.projects.list() if p.title == "round trip")
    assert project.maximum_annotations == 3
    tasks = list(admin.tasks.list(project=project.id, fields="all"))
    assert sorted(t.data["clip_id"] for t in tasks) == clip_ids  # no unrescuable clip sent
    by_clip = {t.data["clip_id"]: t for t in tasks}
    # Gold tasks look like any other: same fields, nothing naming gold or an expected answer.
    assert {frozenset(t.data) for t in tasks} == {frozenset(by_clip[gold[0]].data)}
    assert not any(
        "gold" in key or "gold" in str(value) for t in tasks for key, value in t.data.items()
    )
    assert "Annotator guidelines" in project.expert_instruction and project.show_instruction
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

    skipper = admin.users.create(username="skipper", email="skipper@example.org")
    admin.annotations.create(
        id=by_clip[clip_ids[0]].id, result=[], was_cancelled=True, completed_by=skipper.id
    )
    status = subprocess.run(  # as a user runs it: no HTTP client log lines without -v
        [sys.executable, "-c", "from timelapse_d.cli import main; main()", "annotate", "status",
         str(build30), *connection],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"tasks done: {len(clip_ids)} of {len(clip_ids)} (3 answers each); 1 skipped" in (
        status.stdout
    )
    assert "HTTP" not in status.stderr and "INFO" not in status.stderr
    pulled = runner.invoke(cli, ["annotate", "pull", str(build30), *connection])
    assert pulled.exit_code == 0, pulled.output
    assert "by weighted vote" in pulled.output
    recipe = build30 / "run" / "config.yaml"
    assert (  # the clip the annotators kept changed status: the shards lack it
        f"status changed for 1 clips, so the shards are out of date: `tld build --source local "
        f"--recipe {recipe} --out {build30}` rewrites them" in pulled.output
    )

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
    again = runner.invoke(cli, [*push_args[:-2], *connection])  # no --overlap: it stays 3
    assert "0 tasks created" in again.output
    assert admin.projects.get(id=project.id).maximum_annotations == 3
    tasks = list(admin.tasks.list(project=project.id, fields="all"))
    answers_kept = sum(len(t.annotations) for t in tasks)
    assert len(tasks) == len(clip_ids) and answers_kept == 3 * len(clip_ids) + 1  # + the skip
    runner.invoke(cli, ["annotate", "pull", str(build30), *connection])
    assert len(list((build30 / "annotations").glob("annotations-*.parquet"))) == 2

    # Rebuilding keeps the human labels and encodes the clip the annotators kept.
    assert build(_config(build30.parent), build30).complete
    rebuilt = {r["clip_id"]: r for r in read_rows(build30 / "manifest.parquet")}
    assert rebuilt[overruled]["status"] == "kept" and rebuilt[overruled]["shard"]
    assert {c: rebuilt[c]["human_decision"] for c in clip_ids} == truth

    # A push after pull and rebuild sends what the scores decided, not what annotators said,
    # and puts right a pre-annotation that says otherwise (as earlier versions sent).
    wrong = by_clip[overruled]
    admin.predictions.delete(id=wrong.predictions[0].id)
    admin.predictions.create(
        task=wrong.id, result=[_choices("decision", ["keep"])], model_version="timelapse-d-filter"
    )
    repushed = runner.invoke(cli, [*push_args[:-2], *connection])
    assert repushed.exit_code == 0 and "0 tasks created, 1 updated" in repushed.output
    config = saved_build_config(build30).filter
    tasks = {t.data["clip_id"]: t for t in admin.tasks.list(project=project.id, fields="all")}
    for clip_id in clip_ids:
        auto = automatic(rebuilt[clip_id], config)
        data = tasks[clip_id].data
        assert (data["auto_status"], data["auto_reasons"]) == (
            auto["status"], ", ".join(auto["reject_reasons"])
        )  # fmt: skip
        assert "human" not in str(data)
        prediction = tasks[clip_id].predictions[0].result[0]["value"]["choices"]
        assert prediction == ["keep" if auto["status"] == "kept" else "reject"]
    assert tasks[overruled].data["auto_status"] == "rejected"  # though the manifest keeps it
    assert len(tasks[overruled].predictions) == 1
    assert admin.projects.get(id=project.id).maximum_annotations == 3

    server_log = (Path(server.data_dir) / "server.log").read_text(errors="replace")
    outputs = [pushed.output, status.stdout + status.stderr, pulled.output, again.output]
    outputs += [caplog.text, server_log]
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
    clips = summary.selected
    assert summary.created == clips - 5 and summary.unchanged == 5
    admin = _admin(server)
    project = next(p for p in admin.projects.list() if p.title == "interrupted")
    ids = [t.data["clip_id"] for t in admin.tasks.list(project=project.id)]
    assert len(ids) == len(set(ids)) == clips


def test_server_keeps_its_data_private_and_calls_nobody(server: ServerInfo) -> None:
    data = Path(server.data_dir)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700  # the database holds the API token
    current = running(data)  # restarted by the test above, under a new pid
    assert current is not None
    environment = Path(f"/proc/{current.pid}/environ").read_bytes().split(b"\0")
    for name, value in OFFLINE.items():
        assert f"{name}={value}".encode() in environment
    started = CliRunner().invoke(cli, ["annotate", "server", "start", "--data", str(data)])
    assert started.exit_code == 0, started.output
    assert f"log in as admin@timelapse-d.local, password in {data / 'admin-password'}" in (
        started.output
    )
