"""Stage `filter`: turn stored scores into `status` and `reject_reasons`.

Pure and cheap: it reads only the scores the analysis stored, so changing a threshold re-decides
every clip without decoding anything. Reasons are documented in manifests/README.md.
"""

from __future__ import annotations

from typing import Any

from timelapse_d.config import FilterConfig
from timelapse_d.records import CLIP_KEPT, CLIP_REJECTED

# (score column, FilterConfig field): a clip whose score exceeds the field's value has camera
# motion. Scores are normalised by the frame width, so they hold at any resolution.
CAMERA_LIMITS = (
    ("camera_translation", "max_camera_translation"),
    ("camera_drift", "max_camera_drift"),
    ("camera_zoom", "max_camera_zoom"),
    ("camera_rotation", "max_camera_rotation"),
    ("camera_shake", "max_camera_shake"),
)


def reject_reasons(clip: dict[str, Any], config: FilterConfig) -> list[str]:
    """Every reason this clip fails the thresholds, in a fixed order; empty when kept."""
    reasons = []
    if clip["height"] < config.min_height or clip["width"] < config.min_width:
        reasons.append("low_resolution")
    if clip["num_frames"] < config.min_frames:
        reasons.append("too_short")
    if any(clip[score] > getattr(config, limit) for score, limit in CAMERA_LIMITS):
        reasons.append("camera_motion")
    if (
        clip["scene_motion"] < config.min_scene_motion
        and clip["frame_change"] < config.min_frame_change
    ):
        reasons.append("static")
    return reasons


def decide(clip: dict[str, Any], config: FilterConfig) -> dict[str, Any]:
    """The clip row with `status` and `reject_reasons` set from its scores."""
    reasons = reject_reasons(clip, config)
    return {**clip, "status": CLIP_REJECTED if reasons else CLIP_KEPT, "reject_reasons": reasons}
