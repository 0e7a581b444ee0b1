"""Ground truth of a synthetic video: segments, cuts, expected decisions, flow and regions."""

from __future__ import annotations

import bisect
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timelapse_d.synth.landscape import REGION_NAMES
from timelapse_d.synth.motion import Motion, backward_flow, motion_from_dict, warp_labels

FORMAT = "timelapse-d-synth-truth"
VERSION = 1
FLOW_CONVENTION = (
    "backward: frame[t+1](p) ~= frame[t](p + flow[t](p)); pixels; channels (dx, dy); "
    "defined when t and t+1 are in the same segment"
)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps keep the .npz byte-identical


@dataclass
class SegmentTruth:
    """One segment: frames [start, end), what it shows and how a curator must judge it."""

    start: int
    end: int
    kind: str
    category: str | None
    camera: str
    expected_decision: str
    expected_reasons: list[str]
    motions: dict[str, dict[str, Any]] = field(default_factory=dict)
    flash_frames: list[int] = field(default_factory=list)
    gains: list[float] = field(default_factory=list)
    hold: int = 1  # each rendered picture is shown this many frames (a photo slideshow)


@dataclass
class Truth:
    """Truth of one synthetic video (see the :mod:`timelapse_d.synth` docstring)."""

    num_frames: int
    fps: float
    width: int
    height: int
    cuts: list[int]
    segments: list[SegmentTruth]
    world_labels: list[np.ndarray] = field(repr=False, default_factory=list)
    cameras: list[np.ndarray] = field(repr=False, default_factory=list)

    def segment_index(self, t: int) -> int:
        """Index of the segment holding frame `t`."""
        if not 0 <= t < self.num_frames:
            raise IndexError(f"frame {t} outside [0, {self.num_frames})")
        return bisect.bisect_right([s.start for s in self.segments], t) - 1

    def has_flow(self, t: int) -> bool:
        """True when frames `t` and `t + 1` exist and are in the same segment of continuous
        footage (a slideshow's held pictures have no per-frame flow)."""
        if not 0 <= t < self.num_frames - 1:
            return False
        segment = self.segments[self.segment_index(t)]
        return t + 1 < segment.end and segment.hold == 1

    def flow(self, t: int, step: int = 1) -> np.ndarray:
        """Backward flow from frame `t` to `t + step`: (H, W, 2) float32 (dx, dy) in pixels,
        ``frame[t + step](p) ~= frame[t](p + flow(p))``.

        Raises ValueError unless every frame from `t` to `t + step` has flow (:meth:`has_flow`).
        """
        if step < 1 or not (self.has_flow(t) and self.has_flow(t + step - 1)):
            raise ValueError(f"no flow for frames {t} -> {t + step}: not in one segment")
        i = self.segment_index(t)
        if self.segment_index(t + step - 1) != i:
            raise ValueError(f"no flow for frames {t} -> {t + step}: not in one segment")
        segment = self.segments[i]
        motions = _motions(segment.motions)
        k = t - segment.start
        return backward_flow(self.world_labels[i], self.cameras[i], motions, k, self._shape, step)

    def regions(self, t: int) -> np.ndarray:
        """Region labels of frame `t`: (H, W) uint8, 0 ground, 1 sky, 2 water, 3 tree."""
        i = self.segment_index(t)
        camera = self.cameras[i][t - self.segments[i].start]
        return warp_labels(self.world_labels[i], camera, self._shape)

    @property
    def _shape(self) -> tuple[int, int]:
        return self.height, self.width


def _motions(data: dict[str, dict[str, Any]]) -> dict[int, Motion]:
    labels = {name: label for label, name in REGION_NAMES.items()}
    return {labels[name]: motion_from_dict(params) for name, params in data.items()}


def truth_paths(video_path: Path) -> tuple[Path, Path]:
    """The JSON and NPZ truth files written beside `video_path`."""
    stem = video_path.stem
    return video_path.with_name(f"{stem}.truth.json"), video_path.with_name(f"{stem}.truth.npz")


def save_truth(truth: Truth, video_path: Path, seed: int) -> None:
    """Write ``<stem>.truth.json`` and ``<stem>.truth.npz`` beside `video_path`."""
    json_path, npz_path = truth_paths(video_path)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "video": video_path.name,
        "seed": seed,
        "num_frames": truth.num_frames,
        "fps": truth.fps,
        "width": truth.width,
        "height": truth.height,
        "cuts": truth.cuts,
        "flow_convention": FLOW_CONVENTION,
        "region_labels": {str(k): v for k, v in REGION_NAMES.items()},
        "segments": [asdict(s) for s in truth.segments],
    }
    json_path.write_text(json.dumps(document, indent=1) + "\n")
    arrays = {}
    for i, (labels, cameras) in enumerate(zip(truth.world_labels, truth.cameras, strict=True)):
        arrays[f"labels_{i:03d}"] = labels
        arrays[f"cameras_{i:03d}"] = cameras
    _write_npz(npz_path, arrays)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but with fixed timestamps, for reproducible bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def load_truth(video_path: Path) -> Truth:
    """Read the truth files written beside a synthetic video."""
    json_path, npz_path = truth_paths(Path(video_path))
    document = json.loads(json_path.read_text())
    if document.get("format") != FORMAT:
        raise ValueError(f"{json_path} is not a synthetic-corpus truth file")
    segments = [SegmentTruth(**s) for s in document["segments"]]
    with np.load(npz_path, allow_pickle=False) as arrays:
        labels = [arrays[f"labels_{i:03d}"] for i in range(len(segments))]
        cameras = [arrays[f"cameras_{i:03d}"] for i in range(len(segments))]
    return Truth(
        num_frames=document["num_frames"],
        fps=document["fps"],
        width=document["width"],
        height=document["height"],
        cuts=document["cuts"],
        segments=segments,
        world_labels=labels,
        cameras=cameras,
    )
