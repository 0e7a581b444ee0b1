"""Curators' labels for `tld calibrate`: a CSV ``clip_id,decision,reasons`` or the human
columns that `tld annotate pull` writes into a manifest.

Decisions are ``keep`` or ``reject`` (``kept``/``rejected`` are read alike); reasons are filter
reasons (manifests/README.md) or the annotation taxonomy's, separated by ``;`` in a CSV. The
taxonomy's ``zoom`` is the filter's ``camera_motion``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from timelapse_d.errors import ConfigError, DataError
from timelapse_d.manifest import read_rows

KEEP, REJECT = "keep", "reject"
_DECISIONS = {"keep": KEEP, "kept": KEEP, "reject": REJECT, "rejected": REJECT}
_ALIASES = {"zoom": "camera_motion"}


@dataclass(frozen=True)
class Label:
    """One clip's curated decision and the filter reasons it names."""

    decision: str  # KEEP or REJECT
    reasons: frozenset[str]


def _label(clip_id: str, decision: str | None, reasons: list[str], where: str) -> Label:
    key = (decision or "").strip().lower()
    if key not in _DECISIONS:
        raise DataError(f"{where}: clip {clip_id!r} has decision {decision!r}; use keep or reject")
    names = {_ALIASES.get(r.strip(), r.strip()) for r in reasons if r and r.strip()}
    return Label(_DECISIONS[key], frozenset(names))


def read_labels(path: Path) -> dict[str, Label]:
    """Labels by clip id, from a CSV or from a manifest's human columns (Parquet)."""
    if not path.is_file():
        raise ConfigError(f"labels file not found: {path}")
    if path.suffix.lower() == ".parquet":
        return manifest_labels(path)
    labels = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"clip_id", "decision"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: needs the columns clip_id,decision,reasons")
        for row in reader:
            clip_id = (row["clip_id"] or "").strip()
            reasons = (row.get("reasons") or "").split(";")
            labels[clip_id] = _label(clip_id, row["decision"], reasons, str(path))
    return labels


def manifest_labels(path: Path) -> dict[str, Label]:
    """Labels of the clips a manifest has a `human_decision` for (`tld annotate pull`)."""
    labels = {}
    for row in read_rows(path):
        if row.get("human_decision"):
            reasons = row.get("human_reasons") or []
            labels[row["clip_id"]] = _label(
                row["clip_id"], row["human_decision"], reasons, str(path)
            )
    return labels
