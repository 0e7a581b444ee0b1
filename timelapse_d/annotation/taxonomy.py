"""The curation labels and the records that carry them.

`timelapse_d/annotation_config/taxonomy.yaml` is the one source of truth for the labels: decisions
(keep, reject), reject reasons and scene categories. From it come the Label Studio labelling config
(`timelapse_d/annotation_config/label_config.xml` is the output of :func:`label_config_xml`; run
this module to print it) and the checks on every annotation and gold task read back.
"""

from __future__ import annotations

import csv
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from timelapse_d.config import read_yaml
from timelapse_d.errors import ConfigError, DataError
from timelapse_d.records import KEEP, REJECT

# The folder timelapse_d/annotation_config/ (installed with the package).
FILES_PACKAGE = "timelapse_d.annotation_config"
TAXONOMY_FILE = "taxonomy.yaml"
GUIDELINES_FILE = "guidelines.md"
# Names in the labelling config: the player (its object tag name, which results point to), the
# task data keys of the preview URL, the player's HTML and the score hints, and the three
# controls whose `from_name` an exported result carries.
VIDEO_FIELD = "video"
PLAYER_FIELD, HINTS_FIELD = "player", "hints"
DECISION, REASONS, CATEGORIES = "decision", "reasons", "categories"
_SECTIONS = ("decisions", "reject_reasons", "categories")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")

# The raw per-annotator rows kept in OUT/annotations/ (one `Annotation` per row).
ANNOTATION_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("annotator", pa.string()),
        ("decision", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("categories", pa.list_(pa.string())),
        ("timestamp", pa.string()),
    ]
)


@dataclass(frozen=True)
class Label:
    """One choice: its stored id, the text annotators see and a hover hint."""

    id: str
    label: str
    hint: str


@dataclass(frozen=True)
class Taxonomy:
    """The choices of each question, in the order annotators see them."""

    decisions: tuple[Label, ...]
    reasons: tuple[Label, ...]
    categories: tuple[Label, ...]
    source: Path

    @property
    def reason_ids(self) -> tuple[str, ...]:
        return tuple(label.id for label in self.reasons)

    @property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(label.id for label in self.categories)

    def check(self, decision: str, reasons: Iterable[str], categories: Iterable[str]) -> None:
        """Raise ConfigError naming any value that is not in the taxonomy."""
        problems = []
        if decision not in (KEEP, REJECT):
            problems.append(f"decision {decision!r} (expected {KEEP} or {REJECT})")
        problems += [f"reject reason {r!r}" for r in reasons if r not in self.reason_ids]
        problems += [f"category {c!r}" for c in categories if c not in self.category_ids]
        if problems:
            raise ConfigError(f"not in the taxonomy ({self.source}): {', '.join(problems)}")


@dataclass(frozen=True)
class Annotation:
    """One annotator's answer for one clip; a row of OUT/annotations/ (`ANNOTATION_SCHEMA`).

    `timestamp` is the submission time, ISO 8601 in UTC, so that it orders as text: when an
    annotator answers a clip again, the latest answer counts (:func:`latest_answers`).
    """

    clip_id: str
    annotator: str
    decision: str  # KEEP or REJECT
    reasons: tuple[str, ...] = ()  # reject reason ids; always empty with KEEP
    categories: tuple[str, ...] = ()  # scene category ids, for kept and rejected clips alike
    timestamp: str = ""


@dataclass(frozen=True)
class GoldTask:
    """A clip with a known answer (see timelapse_d/annotation_config/gold_format.md)."""

    clip_id: str
    decision: str
    reasons: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


def default_taxonomy_path() -> Path:
    """`timelapse_d/annotation_config/taxonomy.yaml` as installed with the package."""
    return Path(str(resources.files(FILES_PACKAGE) / TAXONOMY_FILE))


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """Read and validate a taxonomy file (default: :func:`default_taxonomy_path`)."""
    source = path or default_taxonomy_path()
    data = read_yaml(source, "taxonomy")
    if not isinstance(data, dict) or set(data) != set(_SECTIONS):
        raise ConfigError(f"taxonomy {source} must have exactly the sections {_SECTIONS}")
    sections = {name: _labels(source, name, data[name]) for name in _SECTIONS}
    if tuple(label.id for label in sections["decisions"]) != (KEEP, REJECT):
        raise ConfigError(f"taxonomy {source}: decisions must be exactly {KEEP}, {REJECT}")
    return Taxonomy(
        decisions=sections["decisions"],
        reasons=sections["reject_reasons"],
        categories=sections["categories"],
        source=source,
    )


def _labels(source: Path, section: str, entries: Any) -> tuple[Label, ...]:
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"taxonomy {source}: {section} must map ids to label and hint")
    labels = []
    for key, entry in entries.items():
        if not isinstance(key, str) or not _ID.match(key):
            raise ConfigError(
                f"taxonomy {source}: {section} id {key!r} must be lower case letters, digits "
                "and underscores"
            )
        if not isinstance(entry, dict) or set(entry) != {"label", "hint"}:
            raise ConfigError(f"taxonomy {source}: {section}.{key} needs exactly label and hint")
        if not all(isinstance(entry[f], str) and entry[f].strip() for f in ("label", "hint")):
            raise ConfigError(f"taxonomy {source}: {section}.{key} label and hint must be text")
        labels.append(Label(key, entry["label"].strip(), " ".join(entry["hint"].split())))
    return tuple(labels)


def parse_annotation(row: Mapping[str, Any], taxonomy: Taxonomy) -> Annotation:
    """An `ANNOTATION_SCHEMA` row as a checked Annotation; reasons given with a keep are dropped
    (a reason answers "why reject?" and is hidden once keep is chosen)."""
    decision = row["decision"]
    reasons = tuple(row.get("reasons") or ()) if decision == REJECT else ()
    categories = tuple(row.get("categories") or ())
    taxonomy.check(decision, reasons, categories)
    return Annotation(
        clip_id=row["clip_id"],
        annotator=row["annotator"],
        decision=decision,
        reasons=reasons,
        categories=categories,
        timestamp=row.get("timestamp") or "",
    )


def latest_answers(annotations: Iterable[Annotation]) -> list[Annotation]:
    """One answer per (clip, annotator): the latest by timestamp; sorted by clip, annotator."""
    latest: dict[tuple[str, str], Annotation] = {}
    for answer in annotations:
        key = (answer.clip_id, answer.annotator)
        if key not in latest or answer.timestamp >= latest[key].timestamp:
            latest[key] = answer
    return [latest[key] for key in sorted(latest)]


def answers_by_clip(annotations: Iterable[Annotation]) -> dict[str, list[Annotation]]:
    """The latest answers (:func:`latest_answers`) grouped by clip."""
    clips: dict[str, list[Annotation]] = {}
    for answer in latest_answers(annotations):
        clips.setdefault(answer.clip_id, []).append(answer)
    return clips


def read_gold(path: Path, taxonomy: Taxonomy) -> dict[str, GoldTask]:
    """Gold tasks by clip id from a CSV or Parquet file (format:
    timelapse_d/annotation_config/gold_format.md)."""
    if path.suffix == ".parquet":
        rows = pq.read_table(path).to_pylist()
    elif path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [
                {**row, **{key: _split(row.get(key)) for key in ("reasons", "categories")}}
                for row in csv.DictReader(handle)
            ]
    else:
        raise ConfigError(f"gold file {path} must be .csv or .parquet")
    gold: dict[str, GoldTask] = {}
    for number, row in enumerate(rows, start=1):
        missing = {"clip_id", "decision"} - {key for key, value in row.items() if value}
        if missing:
            raise DataError(f"gold file {path}, row {number}: missing {sorted(missing)}")
        task = GoldTask(
            clip_id=row["clip_id"],
            decision=row["decision"],
            reasons=tuple(row.get("reasons") or ()),
            categories=tuple(row.get("categories") or ()),
        )
        try:
            taxonomy.check(task.decision, task.reasons, task.categories)
        except ConfigError as exc:
            raise DataError(f"gold file {path}, row {number}: {exc}") from exc
        if task.clip_id in gold:
            raise DataError(f"gold file {path}: clip {task.clip_id} appears twice")
        gold[task.clip_id] = task
    return gold


def _split(cell: str | None) -> list[str]:
    """A CSV list cell: ids separated by semicolons; empty for none."""
    return [item.strip() for item in (cell or "").split(";") if item.strip()]


def label_config_xml(taxonomy: Taxonomy) -> str:
    """The Label Studio labelling config, laid out to fit a laptop window (1366x900) without
    scrolling: on the left the preview, played muted in a loop and scaled to the column's
    width (an HTML video in the task's `player` field: Label Studio's Video tag can neither
    autoplay nor loop), with the score hints under it; on the right a required keep/reject,
    reject reasons shown once reject is chosen, and scene categories. Choices display the
    label and export the id (`alias`)."""
    view = ET.Element("View", style="display:flex;gap:24px;align-items:flex-start")
    left = ET.SubElement(view, "View", style="flex:3 1 0;min-width:0")
    _header(left, "Watch the clip (it loops), then answer. Guidelines: Instructions, top right")
    ET.SubElement(left, "HyperText", name=VIDEO_FIELD, value=f"${PLAYER_FIELD}", inline="true")
    _header(left, f"${HINTS_FIELD}", size="6")
    right = ET.SubElement(view, "View", style="flex:2 1 0;min-width:0")
    _header(right, "Keep or reject?")
    decision = _choices(right, DECISION, "single-radio", taxonomy.decisions)
    decision.set("required", "true")
    decision.set("requiredMessage", "Choose keep or reject")
    why = ET.SubElement(
        right, "View", visibleWhen="choice-selected", whenTagName=DECISION, whenChoiceValue=REJECT
    )
    _header(why, "Why reject? (every reason that applies)")
    _choices(why, REASONS, "multiple", taxonomy.reasons)
    _header(right, "Scene categories (every one that applies)")
    _choices(right, CATEGORIES, "multiple", taxonomy.categories)
    ET.indent(view, space="  ")
    notice = (
        f"<!-- Generated from timelapse_d/annotation_config/{TAXONOMY_FILE} by `python -m "
        f"timelapse_d.annotation.taxonomy timelapse_d/annotation_config/{TAXONOMY_FILE}`; "
        "do not edit by hand. -->"
    )
    return f"{notice}\n{ET.tostring(view, encoding='unicode')}\n"


def _header(parent: ET.Element, text: str, size: str = "5") -> None:
    ET.SubElement(parent, "Header", value=text, size=size)


def guidelines_html(path: Path | None = None) -> str:
    """`timelapse_d/annotation_config/guidelines.md` as HTML: the Label Studio project's
    instructions."""
    from markdown_it import MarkdownIt

    source = path or Path(str(resources.files(FILES_PACKAGE) / GUIDELINES_FILE))
    return MarkdownIt("commonmark").enable("table").render(source.read_text(encoding="utf-8"))


def _choices(parent: ET.Element, name: str, kind: str, labels: tuple[Label, ...]) -> ET.Element:
    group = ET.SubElement(
        parent, "Choices", name=name, toName=VIDEO_FIELD, choice=kind, showInline="true"
    )
    for label in labels:
        ET.SubElement(group, "Choice", value=label.label, alias=label.id, hint=label.hint)
    return group


if __name__ == "__main__":
    print(label_config_xml(load_taxonomy(Path(sys.argv[1]) if len(sys.argv) > 1 else None)), end="")
