"""Stage `filter`: turn stored scores into `status` and `reject_reasons`.

Pure and cheap: it reads only the scores the analysis stored, so changing a threshold re-decides
every clip without decoding anything. Reasons are documented in manifests/README.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from timelapse_d.config import FilterConfig
from timelapse_d.records import CLIP_KEPT, CLIP_REJECTED, KEYFRAME_HASH_COLUMNS

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
    if clip["stills"] >= config.min_stills and clip["mean_still_s"] >= config.min_still_s:
        reasons.append("slideshow")
    if _below(clip["sharpness"], config.min_sharpness):
        reasons.append("blurry")
    if _below(clip["highlight_luma"], config.min_highlight_luma):
        reasons.append("too_dark")
    if _below(config.max_clipped_white, clip["clipped_white"]):
        reasons.append("blown_out")
    return reasons


def _below(value: float | None, limit: float | None) -> bool:
    """`value < limit`, False when either is unknown (a score that could not be measured)."""
    return value is not None and limit is not None and value < limit


def decide(clip: dict[str, Any], config: FilterConfig) -> dict[str, Any]:
    """The clip row with `status` and `reject_reasons` set from its scores."""
    reasons = reject_reasons(clip, config)
    return {**clip, "status": CLIP_REJECTED if reasons else CLIP_KEPT, "reject_reasons": reasons}


def decide_all(clips: list[dict[str, Any]], config: FilterConfig) -> list[dict[str, Any]]:
    """Decide every clip, then reject near-duplicates among the kept ones (reason `duplicate`,
    `duplicate_of` names the clip kept in its place; the first in clip-id order is kept).

    Each kept clip is compared with every kept original before it: O(kept^2) bit operations,
    vectorised (about a second for 20,000 kept clips).
    """
    decided = [decide(clip, config) for clip in clips]
    kept = sorted(
        (i for i, c in enumerate(decided) if c["status"] == CLIP_KEPT),
        key=lambda i: decided[i]["clip_id"],
    )
    hashes = np.array(
        [[decided[i][name] for name in KEYFRAME_HASH_COLUMNS] for i in kept], dtype=np.int64
    ).view(np.uint64)
    originals: list[int] = []  # rows of `hashes` kept so far
    for row, i in enumerate(kept):
        if originals:
            distance = np.bitwise_count(hashes[originals] ^ hashes[row]).sum(axis=1)
            nearest = int(np.argmin(distance))
            if distance[nearest] <= config.max_duplicate_bits:
                decided[i] = {
                    **decided[i],
                    "status": CLIP_REJECTED,
                    "reject_reasons": ["duplicate"],
                    "duplicate_of": decided[kept[originals[nearest]]]["clip_id"],
                }
                continue
        originals.append(row)
    return decided
