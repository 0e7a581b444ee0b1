"""`manifest.parquet`, joined from tables that each have one writer, through one decision.

- `run/clips.parquet` (`tld build`): every candidate clip with its scores and what the build's
  stages found: `duplicate_of`, the encode outcome (`clip_bytes`, `stream_copied`,
  `encode_error`), `shard`, and in `reject_reasons` the stage reasons only (`duplicate`,
  `unreadable`, `encode_failed`); `status`, the human columns and `split` are null there.
- `labels.parquet` (`tld annotate pull`): the human label of every annotated clip.
- `splits.parquet` (`tld split`): the side each kept clip was given by the latest split.

:func:`assemble` decides every clip once (:func:`timelapse_d.stages.filter.decide`, from its
scores, the thresholds and its label), gives each kept clip its side and writes the manifest;
the build, the pull and the split all end with it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from timelapse_d.config import FilterConfig, saved_build_config
from timelapse_d.errors import ConfigError
from timelapse_d.manifest import CLIP_SCHEMA, read_rows, write_table
from timelapse_d.records import BOOL, CLIP_KEPT, FLOAT, INT, STRING, STRINGS, Clip, Label
from timelapse_d.runs import write_atomic
from timelapse_d.stages.filter import decide

LOG = logging.getLogger("timelapse_d")

MANIFEST = "manifest.parquet"
CLIPS_TABLE = "run/clips.parquet"
LABELS_TABLE = "labels.parquet"
SPLITS_TABLE = "splits.parquet"
LABEL_SCHEMA = pa.schema(
    [
        ("clip_id", STRING),
        ("human_decision", STRING),
        ("human_reasons", STRINGS),
        ("categories", STRINGS),
        ("agreement", FLOAT),
        ("n_annotations", INT),
        ("tie", BOOL),
    ]
)
SPLIT_SCHEMA = pa.schema([("clip_id", STRING), ("split", STRING)])


def write_clips(out: Path, clips: Iterable[Clip]) -> None:
    """The build's table of clips (`CLIPS_TABLE`)."""
    write_table(out / CLIPS_TABLE, [clip.row() for clip in clips], CLIP_SCHEMA)


def read_clips(out: Path) -> list[Clip]:
    """The clips of OUT's latest build; ConfigError when it has none."""
    if not (out / CLIPS_TABLE).is_file():
        raise ConfigError(f"{out / CLIPS_TABLE} is missing: run `tld build` first")
    return [Clip.from_row(row) for row in read_rows(out / CLIPS_TABLE)]


def write_labels(out: Path, labels: Iterable[Label]) -> None:
    """The resolved human labels (`LABELS_TABLE`, by clip id); only `tld annotate pull`."""
    rows = [asdict(label) for label in sorted(labels, key=lambda label: label.clip_id)]
    table = pa.Table.from_pylist(rows, schema=LABEL_SCHEMA)
    write_atomic(out / LABELS_TABLE, lambda fh: pq.write_table(table, fh))


def read_labels(out: Path) -> dict[str, Label] | None:
    """{clip_id: label} of OUT's annotated clips; None when OUT was never pulled."""
    if not (out / LABELS_TABLE).is_file():
        return None
    labels = {}
    for row in read_rows(out / LABELS_TABLE):
        row.update(human_reasons=tuple(row["human_reasons"]), categories=tuple(row["categories"]))
        labels[row["clip_id"]] = Label(**row)
    return labels


def human_label(labels: Mapping[str, Label] | None, clip_id: str) -> Label | None:
    """The label of a clip: None when OUT was never pulled, `Label.unanswered` when nobody
    answered this clip."""
    if labels is None:
        return None
    return labels.get(clip_id) or Label.unanswered(clip_id)


def decide_all(
    clips: Iterable[Clip], thresholds: FilterConfig, labels: Mapping[str, Label] | None
) -> list[Clip]:
    """Every clip decided with its human label."""
    return [decide(clip, thresholds, human_label(labels, clip.clip_id)) for clip in clips]


def write_splits(out: Path, sides: Mapping[str, str]) -> None:
    """The side of every split clip (`SPLITS_TABLE`, by clip id); only `tld split`."""
    rows = [{"clip_id": clip_id, "split": sides[clip_id]} for clip_id in sorted(sides)]
    table = pa.Table.from_pylist(rows, schema=SPLIT_SCHEMA)
    write_atomic(out / SPLITS_TABLE, lambda fh: pq.write_table(table, fh))


def read_splits(out: Path) -> dict[str, str]:
    """{clip_id: side} of the latest `tld split` of OUT; empty when it was never split."""
    if not (out / SPLITS_TABLE).is_file():
        return {}
    return {row["clip_id"]: row["split"] for row in read_rows(out / SPLITS_TABLE)}


def with_splits(clips: list[Clip], sides: Mapping[str, str]) -> list[Clip]:
    """Decided clips with their side: kept clips the latest split placed keep it, so a rebuild
    never moves a clip between train and test; other clips get none. Kept clips new since the
    split get none either, and a warning says to run `tld split` again."""
    placed = [
        replace(c, split=sides.get(c.clip_id) if c.status == CLIP_KEPT else None) for c in clips
    ]
    unsplit = sum(c.status == CLIP_KEPT and c.split is None for c in placed)
    if sides and unsplit:
        LOG.warning(
            "%d kept clips are new since `tld split`: they have no split until you run it again",
            unsplit,
        )
    return placed


def assemble(out: Path, thresholds: FilterConfig | None = None) -> list[Clip]:
    """Join the build's clips, the labels and the splits of OUT into `manifest.parquet`
    (thresholds: those of OUT's saved build config unless given); return its rows."""
    thresholds = thresholds or saved_build_config(out).filter
    clips = decide_all(read_clips(out), thresholds, read_labels(out))
    clips = with_splits(clips, read_splits(out))
    write_table(out / MANIFEST, [clip.row() for clip in clips], CLIP_SCHEMA)
    return clips
