"""Ground-truth flow and masks for clips of the synthetic source (backend ``truth``).

The generator knows the exact backward flow and region map of every frame, so a synthetic build
gets perfect fields without any network weights: FGLA trains and is tested on CPU with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from timelapse_d.errors import ConfigError
from timelapse_d.segment.groups import GROUP_NAMES
from timelapse_d.synth.landscape import REGION_NAMES
from timelapse_d.synth.truth import Truth, load_truth

SYNTHETIC_PREFIX = "synthetic://"
# Generator regions -> FGLA groups; the synthetic ground is bare land ("others").
REGION_GROUPS = {"ground": "others", "sky": "sky", "water": "water", "tree": "tree"}


def region_group_table() -> np.ndarray:
    """Lookup table (256, uint8): generator region label -> FGLA group id ("others" for labels
    the generator does not use)."""
    table = np.full(256, GROUP_NAMES.index("others"), np.uint8)
    for label, name in REGION_NAMES.items():
        table[label] = GROUP_NAMES.index(REGION_GROUPS[name])
    return table


class SyntheticTruth:
    """Fields from the generator's truth for the clips of one build directory."""

    def __init__(self, out: Path) -> None:
        self.root = out / "sources" / "synthetic"
        self._groups = region_group_table()
        self._loaded: dict[str, Truth] = {}

    def _truth(self, source_uri: str) -> Truth:
        if source_uri not in self._loaded:
            if not source_uri.startswith(SYNTHETIC_PREFIX):
                raise ConfigError(f"backend 'truth' needs synthetic-source clips: {source_uri}")
            relative = source_uri[len(SYNTHETIC_PREFIX) :].partition("/")[2]
            self._loaded = {source_uri: load_truth(self.root / relative)}  # clips come in order
        return self._loaded[source_uri]

    def flow(self, clip: dict[str, Any], indices: list[int], size: int) -> np.ndarray:
        """(P, 2, size, size) backward flow between consecutive sampled frames, in pixels of
        the size x size frames."""
        truth = self._truth(clip["source_uri"])
        start = clip["start_frame"]
        flows = []
        for a, b in zip(indices[:-1], indices[1:], strict=True):
            flow = _crop(truth.flow(start + a, b - a), clip)
            h, w = flow.shape[:2]
            resized = cv2.resize(flow, (size, size), interpolation=cv2.INTER_LINEAR)
            resized = resized * np.array([size / w, size / h], np.float32)
            flows.append(resized.transpose(2, 0, 1))
        return np.stack(flows) if flows else np.zeros((0, 2, size, size), np.float32)

    def masks(self, clip: dict[str, Any], indices: list[int], size: int) -> np.ndarray:
        """(T, size, size) uint8 FGLA group map of every sampled frame."""
        truth = self._truth(clip["source_uri"])
        maps = []
        for index in indices:
            regions = _crop(truth.regions(clip["start_frame"] + index), clip)
            maps.append(cv2.resize(regions, (size, size), interpolation=cv2.INTER_NEAREST))
        return self._groups[np.stack(maps)]


def _crop(image: np.ndarray, clip: dict[str, Any]) -> np.ndarray:
    """The part of a source-sized array inside the clip's crop rectangle (if it has one)."""
    if clip.get("crop_width") is None:
        return image
    x, y = clip["crop_x"], clip["crop_y"]
    return image[y : y + clip["crop_height"], x : x + clip["crop_width"]]
