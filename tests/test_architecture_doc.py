"""docs/architecture.md names only modules, folders and functions that exist."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
PACKAGE = REPO / "timelapse_d"


def _named(pattern: str, text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(pattern, text)}


def test_every_module_and_folder_it_names_exists() -> None:
    code_part = DOC.read_text().split("## Data contract")[0]  # the rest names files of OUT
    paths = _named(r"`([\w/]+(?:\.py|/))`", code_part)
    assert len(paths) > 30
    missing = [p for p in paths if not (REPO / p).exists() and not (PACKAGE / p).exists()]
    assert missing == []


def test_every_function_and_class_it_names_exists() -> None:
    not_files = r"(?!(?:py|md|yaml|json|log|html|parquet)`)"
    names = _named(rf"`(\w+\.{not_files}\w+)(?:\(|`)", DOC.read_text())
    checked = 0
    for name in sorted(names):
        module, attribute = name.split(".")
        if (PACKAGE / f"{module}.py").exists():
            assert hasattr(importlib.import_module(f"timelapse_d.{module}"), attribute), name
            checked += 1
    assert checked >= 4
