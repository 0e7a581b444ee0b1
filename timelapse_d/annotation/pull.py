"""`tld annotate pull` and `tld annotate status`: annotations back from Label Studio.

A pull exports every submitted annotation of the pushed project into a new file
``OUT/annotations/annotations-<UTC time>.parquet`` (`ANNOTATION_SCHEMA`; earlier files are
never overwritten), resolves each clip from the latest answer of each annotator across all
those files, stores the labels in ``OUT/labels.parquet`` (the only writer of the human columns)
and re-assembles the manifest from the build's stored scores and those labels
(`timelapse_d.assemble`: nothing is decoded). `tld build` applies the same labels when it
rebuilds the folder, so a clip a human keeps gets encoded and sharded.

The vote: reliability-weighted by gold accuracy when gold tasks were pushed, plain majority
otherwise (or as asked with ``--vote``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from timelapse_d.annotation.agreement import AgreementReport, agreement_report
from timelapse_d.annotation.previews import ANNOTATIONS
from timelapse_d.annotation.push import pushed_project, stored_gold
from timelapse_d.annotation.resolve import annotator_weights, resolve
from timelapse_d.annotation.studio import Studio
from timelapse_d.annotation.taxonomy import (
    ANNOTATION_SCHEMA,
    CATEGORIES,
    DECISION,
    REASONS,
    Annotation,
    Taxonomy,
    load_taxonomy,
    parse_annotation,
)
from timelapse_d.assemble import MANIFEST, assemble, write_labels
from timelapse_d.config import saved_build_config
from timelapse_d.errors import ConfigError, DataError
from timelapse_d.manifest import read_rows
from timelapse_d.records import Label
from timelapse_d.runs import atomic_path

VOTES = ("auto", "majority", "weighted")
EXPORT_PREFIX = "annotations-"


@dataclass(frozen=True)
class PullSummary:
    export: Path
    new_answers: int  # answers in this export
    resolved: int  # clips with a human label
    vote: str
    report: AgreementReport
    changed: int  # clips whose status the pull changed
    rebuild: str  # the command that brings the shards in line with the manifest

    def text(self) -> str:
        text = (
            f"{self.new_answers} answers exported to {self.export}; {self.resolved} clips "
            f"resolved by {self.vote} vote\n{self.report.text()}"
        )
        if self.changed:
            text += (
                f"status changed for {self.changed} clips, so the shards are out of date: "
                f"`{self.rebuild}` rewrites them (keeping the labels)\n"
            )
        return text


def annotation_rows(tasks: Iterable[dict[str, Any]], users: dict[int, str]) -> list[dict]:
    """`ANNOTATION_SCHEMA` rows of every submitted (not skipped) annotation of `tasks`."""
    rows = []
    for task in tasks:
        clip_id = task["data"].get("clip_id")
        for annotation in task["annotations"]:
            if annotation.get("was_cancelled") or clip_id is None:
                continue
            chosen = {
                r["from_name"]: list(r["value"].get("choices", []))
                for r in annotation.get("result") or []
                if r.get("type") == "choices"
            }
            if not chosen.get(DECISION):
                continue
            user = annotation.get("completed_by")
            rows.append(
                {
                    "clip_id": clip_id,
                    "annotator": users.get(user, f"user-{user}"),
                    "decision": chosen[DECISION][0],
                    "reasons": chosen.get(REASONS, []),
                    "categories": chosen.get(CATEGORIES, []),
                    "timestamp": _utc(annotation.get("updated_at") or annotation["created_at"]),
                }
            )
    return rows


def _utc(stamp: str) -> str:
    """An ISO time as UTC with microseconds, so that answers order as text."""
    moment = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def read_annotations(out: Path, taxonomy: Taxonomy) -> list[Annotation]:
    """Every answer of every export in OUT/annotations/, checked against the taxonomy."""
    answers = []
    for path in sorted((out / ANNOTATIONS).glob(f"{EXPORT_PREFIX}*.parquet")):
        for number, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            try:
                answers.append(parse_annotation(row, taxonomy))
            except ConfigError as exc:
                raise DataError(f"{path}, row {number}: {exc}") from None
    return answers


def human_labels(
    out: Path, vote: str = "auto", taxonomy: Taxonomy | None = None
) -> tuple[dict[str, Label], str]:
    """Resolved labels of every annotated clip of OUT and the vote used."""
    if vote not in VOTES:
        raise ConfigError(f"--vote must be one of {', '.join(VOTES)}, not {vote!r}")
    taxonomy = taxonomy or load_taxonomy()
    answers = read_annotations(out, taxonomy)
    gold = stored_gold(out, taxonomy)
    if vote == "auto":
        vote = "weighted" if gold else "majority"
    weights = annotator_weights(answers, gold) if vote == "weighted" else None
    return resolve(answers, weights), vote


def pull(out: Path, studio: Studio, vote: str = "auto") -> PullSummary:
    """Export, resolve, store the labels and re-assemble the manifest with the thresholds of
    OUT's build (see the module docstring)."""
    taxonomy = load_taxonomy()
    project = pushed_project(out)
    rows = annotation_rows(studio.tasks(project["project_id"]), studio.annotators())
    export = _new_export_path(out)
    with atomic_path(export) as part:
        pq.write_table(pa.Table.from_pylist(rows, schema=ANNOTATION_SCHEMA), part)
    labels, used = human_labels(out, vote, taxonomy)
    config = saved_build_config(out)
    before = {r["clip_id"]: r["status"] for r in read_rows(out / MANIFEST)}
    write_labels(out, labels.values())
    after = assemble(out, config.filter)
    report = agreement_report(
        read_annotations(out, taxonomy), taxonomy.category_ids, stored_gold(out, taxonomy)
    )
    changed = sum(before.get(clip.clip_id) != clip.status for clip in after)
    rebuild = (
        f"tld build --source {config.source} --recipe {out / 'run' / 'config.yaml'} --out {out}"
    )
    return PullSummary(export, len(rows), len(labels), used, report, changed, rebuild)


def _new_export_path(out: Path) -> Path:
    folder = out / ANNOTATIONS
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{EXPORT_PREFIX}{stamp}.parquet"
    suffix = 1
    while path.exists():
        path = folder / f"{EXPORT_PREFIX}{stamp}-{suffix}.parquet"
        suffix += 1
    return path


@dataclass(frozen=True)
class ProjectStatus:
    tasks: int
    done: int  # tasks with `overlap` submitted answers
    skipped: int  # answers that skipped the task (not counted as done)
    overlap: int
    per_annotator: dict[str, int]
    per_category: dict[str, int]  # answers naming each category

    def text(self) -> str:
        lines = [
            f"tasks done: {self.done} of {self.tasks} ({self.overlap} answers each); "
            f"{self.skipped} skipped"
        ]
        lines += ["annotators: answers"] + [f"  {k}  {v}" for k, v in self.per_annotator.items()]
        lines += ["categories: answers"] + [f"  {k}  {v}" for k, v in self.per_category.items()]
        return "\n".join(lines) + "\n"


def project_status(out: Path, studio: Studio) -> ProjectStatus:
    """Progress of the pushed project, read from the server (nothing is written)."""
    project = pushed_project(out)
    tasks = studio.tasks(project["project_id"])
    rows = annotation_rows(tasks, studio.annotators())
    answered = Counter(r["clip_id"] for r in rows)
    categories = Counter(c for r in rows for c in r["categories"])
    return ProjectStatus(
        tasks=len(tasks),
        done=sum(answered[t["data"].get("clip_id")] >= project["overlap"] for t in tasks),
        skipped=sum(bool(a.get("was_cancelled")) for t in tasks for a in t["annotations"]),
        overlap=project["overlap"],
        per_annotator=dict(sorted(Counter(r["annotator"] for r in rows).items())),
        per_category={c: categories[c] for c in load_taxonomy().category_ids},
    )
