"""Which score each filter threshold applies to, and on which side it rejects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from timelapse_d.stages.filter import CAMERA_LIMITS


@dataclass(frozen=True)
class Threshold:
    """`score` is rejected for `reason` when it is `side` ('below'/'above') `filter.<key>`."""

    score: str
    key: str
    side: str
    reason: str


THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("height", "min_height", "below", "low_resolution"),
    Threshold("num_frames", "min_frames", "below", "too_short"),
    *(Threshold(score, key, "above", "camera_motion") for score, key in CAMERA_LIMITS),
    Threshold("scene_motion", "min_scene_motion", "below", "static"),
    Threshold("frame_change", "min_frame_change", "below", "static"),
    Threshold("stills", "min_stills", "above", "slideshow"),
    Threshold("mean_still_s", "min_still_s", "above", "slideshow"),
    Threshold("sharpness", "min_sharpness", "below", "blurry"),
    Threshold("highlight_luma", "min_highlight_luma", "below", "too_dark"),
    Threshold("clipped_white", "max_clipped_white", "above", "blown_out"),
)


def saved_config(out: Path) -> dict[str, Any]:
    """The resolved config the latest build saved (empty when there is none)."""
    path = out / "run" / "config.yaml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def thresholds_in(config: dict[str, Any]) -> list[tuple[Threshold, float]]:
    """The thresholds with their values in a saved config (those it sets)."""
    section = config.get("filter") or {}
    return [(t, float(section[t.key])) for t in THRESHOLDS if section.get(t.key) is not None]
