"""`tld eval`: the FGLA paper's evaluation protocol on the test clips of a build.

For every test clip the input is its first sampled frame; each model makes ``samples`` videos
of ``frames`` frames at its ``image_size``, one per motion: FGLA takes the latents of
``samples`` other test clips (their stored flow and masks), chosen with a fixed seed so every
model sees the same references; a model with a codebook (Animating Landscape) takes
``samples`` codes drawn at random from its codebook (seeded per clip). Videos are generated
as the model's ``inference.mode`` says (recurrent by default: the flow of each step is predicted
from the frame generated last; ``mode`` overrides it for every model). Scores, averaged over
clips and samples:

masked PSNR and SSIM between the input and each generated frame, over the pixels the
ground-truth clip leaves still (:func:`timelapse_d.metrics.pixels.score_video`); LPIPS between
the input and each generated frame (how well the appearance is kept); FID between the Inception
features of the inputs (one per clip) and of every generated frame; FVD between the I3D features
of the ground-truth clips (``frames`` + 1 frames from the input on) and of the generated videos.
The last two are Fréchet distances of Gaussian fits accumulated video by video, so no more than
one generated video is held at a time. LPIPS, FID and FVD need user-supplied network weights
(:mod:`timelapse_d.metrics.features`; its FVD is not the TF-Hub one, see there).
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from timelapse_d.errors import ConfigError
from timelapse_d.fgla.animation import uint8_frames
from timelapse_d.fgla.config import FGLAConfig
from timelapse_d.fgla.data import clip_shards
from timelapse_d.fgla.inference import Motion, Reference, chosen_motion, motion_frames
from timelapse_d.fgla.trained import TrainedModel, load_trained, sample_codes
from timelapse_d.fgla.warp import pixel_to_grid, resize_flow
from timelapse_d.metrics.features import (
    FeatureNets,
    frame_features,
    load_feature_nets,
    lpips_to_input,
    unit_frames,
    video_features,
)
from timelapse_d.metrics.frechet import RunningGaussian, frechet_distance
from timelapse_d.metrics.i3d import FEATURES as I3D_FEATURES
from timelapse_d.metrics.inception import FEATURES as INCEPTION_FEATURES
from timelapse_d.metrics.pixels import score_video
from timelapse_d.runs import write_atomic
from timelapse_d.segment.groups import GROUP_NAMES, group_masks
from timelapse_d.shards.fields import decode_flow, decode_frames, decode_masks
from timelapse_d.shards.reader import iter_joined

METRICS = ("psnr", "ssim", "lpips", "fid", "fvd")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "fid": False, "fvd": False}
DECIMALS = {"psnr": 2, "ssim": 4, "lpips": 4, "fid": 2, "fvd": 2}
RESULTS_JSON = "eval.json"
RESULTS_MD = "eval.md"
FVD_NOTE = (
    "FVD: Fréchet distance of the 1024-d pooled features of I3D with PyTorch-ported weights, "
    "not of the TF-Hub I3D logits; not directly comparable with published FVD."
)


@dataclass(frozen=True)
class EvalOptions:
    """One `tld eval` run."""

    data: Path
    checkpoints: Mapping[str, Path]  # column name -> checkpoint
    out: Path
    split: str = "test"
    samples: int = 5
    frames: int = 32
    metrics: Sequence[str] = METRICS
    device: str = "cpu"
    seed: int = 0
    max_clips: int | None = None
    weights_dir: Path | None = None  # of LPIPS, FID and FVD; None: `tld weights`'s default
    mode: str | None = None  # inference mode (recurrent | single); None: each model's own

    def __post_init__(self) -> None:
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise ConfigError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
        if self.samples < 1 or self.frames < 1:
            raise ConfigError("--samples and --frames must be at least 1")
        if not self.checkpoints:
            raise ConfigError("give at least one --checkpoint")


@dataclass(frozen=True)
class TestClip:
    """The stored fields of one test clip."""

    key: str
    frames: np.ndarray  # (T, S, S, 3) uint8
    groups: np.ndarray  # (T, S, S) uint8 group ids
    flow: np.ndarray  # (T - 1, 2, S, S) float32 backward flow in pixels
    flow_backend: str  # the backend that estimated ``flow`` (from the field's metadata)


@dataclass
class _Scores:
    """One model's scores so far: per-video values and the Gaussian fits of FID and FVD."""

    metrics: Sequence[str]
    nets: FeatureNets  # those of ``metrics``
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    all_dynamic: int = 0  # videos left out of PSNR and SSIM: no still pixel in their clip
    lpips: list[float] = field(default_factory=list)
    inputs: RunningGaussian = field(default_factory=lambda: RunningGaussian(INCEPTION_FEATURES))
    frames: RunningGaussian = field(default_factory=lambda: RunningGaussian(INCEPTION_FEATURES))
    truths: RunningGaussian = field(default_factory=lambda: RunningGaussian(I3D_FEATURES))
    videos: RunningGaussian = field(default_factory=lambda: RunningGaussian(I3D_FEATURES))

    def add_clip(self, first: np.ndarray, truth: np.ndarray) -> None:
        """The real side of FID (the input) and of FVD (the ground-truth clip)."""
        if self.nets.inception is not None:
            self.inputs.add(frame_features(self.nets.inception, first[None]))
        if self.nets.i3d is not None:
            self.truths.add(video_features(self.nets.i3d, truth[None]))

    def add_video(self, first: np.ndarray, video: np.ndarray, truth: np.ndarray) -> None:
        """One generated video (frame 0 being the input) of the clip ``truth``."""
        if self._pixels:
            try:
                pixel = score_video(first, video[1:], truth)
            except ValueError:  # every pixel of the clip moves: nothing for the masked scores
                self.all_dynamic += 1
            else:
                self.psnr.append(pixel.psnr)
                self.ssim.append(pixel.ssim)
        if self.nets.lpips is not None:
            self.lpips.append(float(lpips_to_input(self.nets.lpips, first, video[1:]).mean()))
        if self.nets.inception is not None:
            self.frames.add(frame_features(self.nets.inception, video[1:]))
        if self.nets.i3d is not None:  # as long as its ground truth (a clip may be shorter)
            self.videos.add(video_features(self.nets.i3d, video[None, : len(truth)]))

    @property
    def _pixels(self) -> bool:
        """Whether masked PSNR or SSIM is asked for."""
        return bool({"psnr", "ssim"} & set(self.metrics))

    def summary(self) -> dict[str, float]:
        """The metrics averaged over videos (FID, FVD: over the whole sets)."""
        if self._pixels and not self.psnr:
            raise ConfigError(
                "every test clip moves everywhere: masked PSNR and SSIM are undefined"
            )
        values = {
            "psnr": lambda: float(np.mean(self.psnr)),
            "ssim": lambda: float(np.mean(self.ssim)),
            "lpips": lambda: float(np.mean(self.lpips)),
            "fid": lambda: frechet_distance(*self.inputs.stats(), *self.frames.stats()),
            "fvd": lambda: frechet_distance(*self.truths.stats(), *self.videos.stats()),
        }
        return {**{m: values[m]() for m in self.metrics}, "all_dynamic_videos": self.all_dynamic}


def test_clips(data: Path, split: str, limit: int | None = None) -> list[TestClip]:
    """The clips of ``split`` (manifest column ``split``; ``all``: every clip with fields), the
    first ``limit`` of them when given."""
    wanted = None if split == "all" else _split_ids(data, split)
    clips = list(islice(_iter_clips(data, wanted), limit))
    if len(clips) < 2:
        raise ConfigError(
            f"{data}: only {len(clips)} clip(s) of the {split!r} split with fields (within "
            "max_clips); the protocol needs at least 2 (references come from other clips)"
        )
    return clips


def _iter_clips(data: Path, wanted: set[str] | None) -> Iterator[TestClip]:
    """The stored fields of every clip of the build in ``wanted`` (None: every clip)."""
    for shard in clip_shards(data / "shards"):
        for joined in iter_joined(shard):
            if wanted is not None and joined["__key__"] not in wanted:
                continue
            yield TestClip(
                key=joined["__key__"],
                frames=decode_frames(joined["frames"]),
                groups=decode_masks(joined["mask"])["groups"],
                flow=decode_flow(joined["flow"]),
                flow_backend=str(json.loads(joined["flow"]["json"]).get("backend", "unknown")),
            )


def evaluate(options: EvalOptions) -> dict[str, Any]:
    """Score every checkpoint on the same clips and references; write eval.json and eval.md
    under ``options.out`` and return the results."""
    nets = load_feature_nets(options.metrics, options.device, options.weights_dir)
    models = {
        name: load_trained(path, options.device) for name, path in options.checkpoints.items()
    }
    clips = test_clips(options.data, options.split, options.max_clips)
    results: dict[str, Any] = {
        "data": str(options.data),
        "split": options.split,
        "clips": len(clips),
        "reference_flow": sorted({clip.flow_backend for clip in clips}),
        "samples": options.samples,
        "frames": options.frames,
        "metrics": list(options.metrics),
        "models": {},
    }
    for name, trained in models.items():
        scores = _Scores(options.metrics, nets)
        for index, clip in enumerate(clips):
            first, truth = _input_and_truth(clip, trained, options.frames)
            scores.add_clip(first, truth)
            for video in _videos(trained, clips, index, options):
                scores.add_video(first, video, truth)
        config = _config(trained, options)
        results["models"][name] = {
            "checkpoint": str(options.checkpoints[name]),
            "step": trained.step,
            "inference": config.inference.mode,
            "flow_backend": config.data.flow_backend,
            **scores.summary(),
        }
    options.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, sort_keys=True)
    write_atomic(options.out / RESULTS_JSON, lambda fh: fh.write(text.encode()))
    table = markdown_table(results, options.metrics)
    write_atomic(options.out / RESULTS_MD, lambda fh: fh.write(table.encode()))
    return results


def markdown_table(results: Mapping[str, Any], metrics: Sequence[str]) -> str:
    """Models as rows, metrics as columns (arrows: which way is better)."""
    arrows = {m: "↑" if HIGHER_IS_BETTER[m] else "↓" for m in metrics}
    header = "| model | step | " + " | ".join(f"{m.upper()} {arrows[m]}" for m in metrics) + " |"
    lines = [
        f"{results['clips']} {results['split']} clips, {results['samples']} samples of "
        f"{results['frames']} frames each.",
        "",
        header,
        "|" + "---|" * (len(metrics) + 2),
    ]
    for name, row in results["models"].items():
        cells = " | ".join(f"{row[m]:.{DECIMALS[m]}f}" for m in metrics)
        lines.append(f"| {name} | {row['step']} | {cells} |")
    for name, row in results["models"].items():
        if row["all_dynamic_videos"] and {"psnr", "ssim"} & set(metrics):
            lines.append(
                f"\n{name}: {row['all_dynamic_videos']} videos of clips without a "
                "still pixel are left out of PSNR and SSIM."
            )
    if "fvd" in metrics:
        lines.append(f"\n{FVD_NOTE}")
    return "\n".join(lines) + "\n"


def _split_ids(data: Path, split: str) -> set[str]:
    manifest = data / "manifest.parquet"
    if not manifest.is_file():
        raise ConfigError(f"{manifest} is missing: {data} is not a finished build")
    table = pq.read_table(manifest)
    if "split" not in table.column_names:
        raise ConfigError(f"{manifest} has no split: run `tld split {data}` (or --split all)")
    rows = table.select(["clip_id", "split"]).to_pylist()
    return {row["clip_id"] for row in rows if row["split"] == split}


def _input_and_truth(
    clip: TestClip, trained: TrainedModel, frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first frame and the ground-truth frames (up to ``frames`` + 1), at model size."""
    size = trained.config.model.image_size
    truth = _resize_frames(clip.frames[: frames + 1], size)
    return truth[0], truth


def _videos(
    trained: TrainedModel, clips: list[TestClip], index: int, options: EvalOptions
) -> Iterator[np.ndarray]:
    """``samples`` generated videos of clip ``index``: (frames + 1, S, S, 3) uint8 each,
    frame 0 being the input. Every frame keeps the input's masks (the stored fields have no
    segmenter at hand; the camera of a test clip is still)."""
    model, config = trained.model, _config(trained, options)
    device = next(model.parameters()).device
    size = config.model.image_size
    clip = clips[index]
    image = unit_frames(_resize_frames(clip.frames[:1], size)).to(device)
    masks = _one_hot(clip.groups[:1], size).to(device)
    for motion in _motions(trained, clips, index, options):
        frames = motion_frames(
            model, config, image, image, lambda _: masks, motion, options.frames + 1
        )
        yield np.stack(list(uint8_frames(frames)))


def _config(trained: TrainedModel, options: EvalOptions) -> FGLAConfig:
    """The model's config with ``options.mode`` as its inference mode when given."""
    if options.mode is None:
        return trained.config
    inference = dataclasses.replace(trained.config.inference, mode=options.mode)
    return dataclasses.replace(trained.config, inference=inference)


def _motions(
    trained: TrainedModel, clips: list[TestClip], index: int, options: EvalOptions
) -> list[Motion]:
    """The motion of each sample: codebook entries drawn at random, else references from
    other clips driving every group."""
    codes = sample_codes(trained, options.samples, f"{options.seed}-{index}")
    if codes is not None:
        return codes
    rng = random.Random(f"{options.seed}-{index}")
    others = [i for i in range(len(clips)) if i != index]
    chosen = [rng.choice(others) for _ in range(options.samples)]
    per_pair = trained.config.model.regional and trained.config.inference.latents == "per_pair"
    return [
        chosen_motion(
            trained.model, dict.fromkeys(GROUP_NAMES, _reference(clips[i], trained)), per_pair
        )
        for i in chosen
    ]


def _reference(clip: TestClip, trained: TrainedModel) -> Reference:
    size = trained.config.model.image_size
    flow = pixel_to_grid(torch.from_numpy(clip.flow), trained.config.model.align_corners)
    return Reference(resize_flow(flow, size, "area"), _one_hot(clip.groups[:-1], size))


def _resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1:3] == (size, size):
        return frames
    tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    resized = F.interpolate(tensor, size=(size, size), mode="area")
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _one_hot(groups: np.ndarray, size: int) -> torch.Tensor:
    masks = torch.from_numpy(group_masks(groups)).float()
    return F.interpolate(masks, size=(size, size), mode="nearest")
