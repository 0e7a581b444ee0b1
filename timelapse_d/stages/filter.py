"""Stage `filter`: turn stored scores, stage outcomes and human labels into `status` and
`reject_reasons` (:func:`decide`, the one decision of the build, `tld annotate pull` and
`tld split`).

Pure and cheap: it reads only the scores the analysis stored, so changing a threshold re-decides
every clip without decoding anything. Reasons are documented in manifests/README.md.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from timelapse_d.config import FilterConfig
from timelapse_d.errors import ConfigError
from timelapse_d.manifest import REJECT_REASONS
from timelapse_d.records import CLIP_KEPT, CLIP_REJECTED, KEYFRAME_HASH_COLUMNS, REJECT, Clip, Label

HUMAN_REJECT = "human_reject"
# Reasons set by stages after the scores (duplicates, encoding): carried by the clip as they are.
STAGE_REASONS = ("duplicate", "unreadable", "encode_failed")
# Measured facts a human keep never overrides: the clip cannot be used whatever it shows.
NEVER_OVERRIDDEN = frozenset({"low_resolution", "too_short", *STAGE_REASONS})
# Judgements a human keep overrides by default: the annotator sees the clip the score guessed
# about (fast clouds read as camera motion, a starry sky as too dark, ...).
SOFT_REASONS = frozenset(
    {"camera_motion", "static", "slideshow", "blurry", "too_dark", "blown_out"}
)
OVERRIDABLE = frozenset(REJECT_REASONS) - NEVER_OVERRIDDEN

# (score column, FilterConfig field): a clip whose score exceeds the field's value has camera
# motion. Scores are normalised by the frame width, so they hold at any resolution.
CAMERA_LIMITS = (
    ("camera_translation", "max_camera_translation"),
    ("camera_drift", "max_camera_drift"),
    ("camera_zoom", "max_camera_zoom"),
    ("camera_rotation", "max_camera_rotation"),
    ("camera_shake", "max_camera_shake"),
)


def reject_reasons(clip: Mapping[str, Any], config: FilterConfig) -> list[str]:
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


def decide(
    clip: Clip,
    thresholds: FilterConfig,
    human: Label | None = None,
    soft_reasons: Collection[str] = SOFT_REASONS,
) -> Clip:
    """The clip with `status`, `reject_reasons` and the human columns set: the one decision.

    Reasons come from the stored scores (`thresholds`) plus the stage reasons the clip already
    carries (`STAGE_REASONS`). A human reject rejects, adding `human_reject` (the annotators'
    reasons are in `human_reasons`); a human keep drops the reasons in `soft_reasons` and
    keeps the clip when none is left. Deciding a decided clip again gives the same clip.
    """
    if soft_reasons is not SOFT_REASONS and not set(soft_reasons) <= OVERRIDABLE:
        raise ConfigError(
            f"a human keep cannot override {sorted(set(soft_reasons) - OVERRIDABLE)}; "
            f"choose among {sorted(OVERRIDABLE)}"
        )
    stored = clip.reject_reasons or []
    reasons = reject_reasons(clip.row(), thresholds) + [r for r in STAGE_REASONS if r in stored]
    if human is not None and human.human_decision == REJECT:
        reasons.append(HUMAN_REJECT)
    elif human is not None and human.human_decision is not None:
        reasons = [r for r in reasons if r not in soft_reasons]
    answered = human if human is not None and human.n_annotations > 0 else None
    return replace(
        clip,
        status=CLIP_REJECTED if reasons else CLIP_KEPT,
        reject_reasons=reasons,
        human_decision=human.human_decision if human else None,
        human_reasons=list(answered.human_reasons) if answered else None,
        categories=list(answered.categories) if answered else None,
        agreement=human.agreement if human else None,
        n_annotations=human.n_annotations if human else None,
    )


def find_duplicates(clips: list[Clip], thresholds: FilterConfig) -> list[Clip]:
    """The clips with near-duplicates among the automatically kept ones marked (stage reason
    `duplicate`, `duplicate_of` names the clip kept in its place; the first in clip-id order
    is kept). Human labels play no part.

    Each kept clip is compared with every kept original before it: O(kept^2) bit operations,
    vectorised (about a second for 20,000 kept clips).
    """
    marked = list(clips)
    kept = sorted(
        (i for i, c in enumerate(clips) if decide(c, thresholds).status == CLIP_KEPT),
        key=lambda i: clips[i].clip_id,
    )
    hashes = np.array(
        [[getattr(clips[i], name) for name in KEYFRAME_HASH_COLUMNS] for i in kept],
        dtype=np.int64,
    ).view(np.uint64)
    originals: list[int] = []  # rows of `hashes` kept so far
    for row, i in enumerate(kept):
        if originals:
            distance = np.bitwise_count(hashes[originals] ^ hashes[row]).sum(axis=1)
            nearest = int(np.argmin(distance))
            if distance[nearest] <= thresholds.max_duplicate_bits:
                marked[i] = replace(
                    clips[i],
                    reject_reasons=["duplicate"],
                    duplicate_of=clips[kept[originals[nearest]]].clip_id,
                )
                continue
        originals.append(row)
    return marked
