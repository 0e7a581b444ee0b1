"""`tld calibrate OUT`: fit the filter to labels, print how well it holds, write a recipe.

The recipe holds OUT's whole `filter` section with the fitted limits; ``tld build --recipe
RECIPE --out OUT`` (same source and input) re-decides every clip from its stored scores, as
any threshold change does, without decoding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from timelapse_d.calibration.fit import RULES, Counts, Dataset, counts, cross_validate, fit
from timelapse_d.calibration.labels import KEEP, REJECT, Label, manifest_labels, read_labels
from timelapse_d.config import FilterConfig, saved_build_config
from timelapse_d.errors import ConfigError
from timelapse_d.manifest import read_rows
from timelapse_d.runs import write_atomic
from timelapse_d.stages.filter import reject_reasons

SHOWN_DISAGREEMENTS = 30


@dataclass(frozen=True)
class Calibration:
    """What `tld calibrate` found and wrote."""

    recipe: Path
    labelled: int
    unknown: int  # labels of clips the manifest does not have
    videos: int
    build: dict[str, Counts]
    validated: dict[str, Counts]
    fitted: FilterConfig
    build_disagreements: list[str]  # clips whose label the build's limits do not follow
    disagreements: list[str]  # clips whose label the fitted limits do not follow

    def text(self) -> str:
        lines = [
            f"{self.labelled} labelled clips from {self.videos} videos"
            + (f" ({self.unknown} labels name clips not in the manifest)" if self.unknown else ""),
            f"{'reason':<14}{'pos/neg':>9}  {'build precision':<22}{'build recall':<22}"
            f"{'cross-val precision':<22}{'cross-val recall':<22}",
        ]
        for rule in RULES:
            built, held = self.build[rule.reason], self.validated.get(rule.reason)
            cells = [built.precision(), built.recall()]
            cells += [held.precision(), held.recall()] if held else []
            size = f"{built.tp + built.fn}/{built.fp + built.tn}"
            lines.append(
                f"{rule.reason:<14}{size:>9}  " + "".join(f"{_cell(c):<22}" for c in cells)
            )
        if not self.validated:
            lines.append("(no cross-validation: labels come from fewer than two videos)")
        for what, clips in (("build's", self.build_disagreements), ("fitted", self.disagreements)):
            lines.append(f"labels vs the {what} thresholds: {len(clips)} clips disagree")
            lines += [f"  {d}" for d in clips[:SHOWN_DISAGREEMENTS]]
            if len(clips) > SHOWN_DISAGREEMENTS:
                lines.append(f"  ... and {len(clips) - SHOWN_DISAGREEMENTS} more")
        lines.append(
            f"recipe: {self.recipe}  (apply: tld build --recipe {self.recipe} ... --out OUT)"
        )
        return "\n".join(lines)


def _cell(share: tuple[float, float, float]) -> str:
    p, low, high = share
    return "-" if np.isnan(p) else f"{p:.2f} [{low:.2f}-{high:.2f}]"


def _disagreements(pairs: list[tuple[dict[str, Any], Label]], config: FilterConfig) -> list[str]:
    """One line per labelled clip that `config` decides otherwise than its label."""
    lines = []
    for row, label in pairs:
        reasons = reject_reasons(row, config)
        if (label.decision == REJECT) != bool(reasons):
            decided = f"reject {reasons}" if reasons else KEEP
            lines.append(
                f"{row['clip_id']}: label {label.decision} {sorted(label.reasons)}; {decided}"
            )
    return lines


def calibrate(out: Path, labels_path: Path | None, recipe: Path) -> Calibration:
    """Fit OUT's filter to the labels (a file, else OUT's manifest human columns), write the
    recipe, and return the figures."""
    manifest = out / "manifest.parquet"
    if not manifest.is_file():
        raise ConfigError(f"{out} has no manifest.parquet: run `tld build` first")
    labels = read_labels(labels_path) if labels_path else manifest_labels(manifest)
    if not labels:
        where = labels_path or f"{manifest} (no human_decision: run `tld annotate pull`)"
        raise ConfigError(f"no labels in {where}")
    data = Dataset(read_rows(manifest), labels)
    if not data.rows:
        raise ConfigError(f"none of the {len(labels)} labelled clip ids is in {manifest}")
    config = saved_build_config(out).filter
    everything = np.ones(len(data.rows), dtype=bool)
    fitted = fit(data, everything, config)
    pairs = list(zip(data.rows, data.labels, strict=True))
    _write_recipe(recipe, fitted, len(data.rows))
    return Calibration(
        recipe=recipe,
        labelled=len(data.rows),
        unknown=len(labels) - len(data.rows),
        videos=len(set(data.groups.tolist())),
        build=counts(data, everything, config),
        validated=cross_validate(data, config),
        fitted=fitted,
        build_disagreements=_disagreements(pairs, config),
        disagreements=_disagreements(pairs, fitted),
    )


def _write_recipe(path: Path, config: FilterConfig, labelled: int) -> None:
    header = (
        f"# Filter thresholds fitted by `tld calibrate` to {labelled} labelled clips.\n"
        "# Apply with `tld build --recipe THIS_FILE` (same --source, --input and --out):\n"
        "# clips are re-decided from their stored scores, nothing is decoded.\n"
    )
    body = yaml.safe_dump({"filter": dataclasses.asdict(config)}, sort_keys=False)
    write_atomic(path, lambda fh: fh.write((header + body).encode()))
