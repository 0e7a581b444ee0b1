"""Typed build configuration: defaults in code, recipes (YAML) override, `--set key=value` last.

Every key is a dotted path into :class:`BuildConfig` (``filter.min_height``). Recipes and
overrides are read by :mod:`timelapse_d.config_loader` (the loader `tld train` uses too):
unknown keys and values that do not fit fail at start with the key named, never later in a
worker. The ``precompute`` section holds the settings of `tld precompute`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from timelapse_d.acquire.settings import DownloadConfig, FlickrConfig, YoutubeConfig
from timelapse_d.config_loader import flatten, from_mapping, read_yaml, with_overrides
from timelapse_d.config_loader import valid_keys as keys_of
from timelapse_d.errors import ConfigError
from timelapse_d.precompute.settings import PrecomputeConfig


@dataclass
class AnalyzeConfig:
    """The single decode pass and what it measures."""

    width: int = 256  # analysis width in pixels; PySceneDetect's own default working width
    adaptive_threshold: float = 3.0  # PySceneDetect AdaptiveDetector defaults
    min_content_val: float = 15.0
    min_scene_len: int = 15
    black_luma: float = 16.0  # mean luma (0-255) below which a frame counts as black
    flash_window: int = 3  # a cut whose far side returns to the old scene within this many frames
    flash_similarity: float = 0.35  # ...and whose before/after thumbnails are this close is a flash
    # Camera/scene motion is measured on pairs (i, i+1) for every 3rd i: decisions on the
    # synthetic and real clips are the same as with every 2nd, at two thirds of the cost.
    motion_pair_stride: int = 3
    # Sources at least this tall are decoded without deblocking (4K H.264: 20-28 % less decoder
    # CPU per frame; at 256 px wide the difference is invisible). Shorter sources (and all with
    # 0) are deblocked on reference frames only: 6-9 % less decoder CPU, the same decisions.
    skip_loop_filter_height: int = 1440


@dataclass
class FilterConfig:
    """Thresholds that turn stored scores into `status` and `reject_reasons`.

    Camera and scene motion values are in frame widths (radians, relative scale) per frame, so
    they hold at any resolution. Calibrated on the real clips in ../shared/media (an archive
    pan, a tripod meadow, a fixed-camera tree, a sunset sky, 48 Sky Time-lapse tiles) and on
    synthetic pans, zooms, rotations, shake, stills and drifting clouds.
    """

    min_height: int = 360  # pixels; Time-lapse-D is mostly 720p and 1080p
    min_width: int = 0
    min_frames: int = 48  # FGLA samples every 4th frame: 48 frames give 12 training frames
    # Camera limits hold on the real-footage corpus (benchmarks/camera_corpus.py, figures in
    # benchmarks/results/camera_corpus.json): on its calibration half, fixed cameras (clouds
    # filling the frame, water, swaying trees, sub-pixel vibration, exposure ramps) stay below
    # 0.37e-3 translation, 0.10e-3 drift, 0.16e-3 zoom, 0.37e-3 rotation, 0.39e-3 shake (the
    # held-out half: 0.76e-3 translation, a vibrating sky tile).
    # Static cameras stay below 0.45e-3 (sky tiles; sunset 0.16e-3); a slow 0.5 px/frame pan
    # at 256 px is 1.95e-3, the archive pan 2.7e-3 or more. 1e-3: a tenth of the view per 100
    # frames.
    max_camera_translation: float = 1.0e-3
    # Net displacement per frame (median of each axis over the pairs, so a few pairs that took
    # clouds for the ground do not add up): a steady pan adds up. Static cameras stay below
    # 0.42e-3; the slow pan gives 1.95e-3.
    max_camera_drift: float = 0.8e-3
    # Static cameras stay below 0.7e-3 (approaching clouds look like a slight zoom); a zoom of
    # 2e-3 per frame (x1.35 in 150 frames) must be caught.
    max_camera_zoom: float = 1.2e-3
    # Static cameras stay below 0.41e-3; a 3e-3 rad/frame roll must be caught.
    max_camera_rotation: float = 1.5e-3
    # RMS of the detrended translation (median-based, so one bad pair does not read as shake)
    # along the pairs that found a camera model (motion.TRAJECTORY_SHARE): fixed cameras stay
    # below 0.39e-3 (real corpus, both halves: fast clouds filling a sky tile, whose few
    # pairs that took clouds for ground now count; vibration of 0.1 px at 256 px included);
    # hand-held footage moving 0.25-1 px per frame at 256 px reads 0.73-5.3e-3 through H.264
    # at CRF 18-34 (22 of 27 corpus segments; the misses read 0-0.28e-3), 1 px of clean random
    # jitter 6e-3, the archive pan 1.4e-3.
    max_camera_shake: float = 0.6e-3
    # Scene motion beyond tracking noise: a still image with grey noise up to sigma 3 gives 0,
    # the slowest real sky tiles 0.036e-3 or more.
    min_scene_motion: float = 0.02e-3
    # Change of the most-changing 1 % of area-averaged frames (0-1): stills, slideshows and
    # black frames give at most 1 grey level (3.9e-3), the weakest synthetic swaying trees 3
    # levels, real clips 5-14 levels. `static` needs both scores low, so a still scene whose
    # light changes is not static.
    min_frame_change: float = 2.4 / 255
    # Near-duplicates: a kept clip whose three keyframe hashes (64-bit difference hashes) differ
    # from an earlier kept clip's (in clip-id order) by at most this many bits in all is a
    # duplicate. A copy rescaled to 83% and re-encoded at crf 30 differs by 0-11 bits in all;
    # unrelated frames by about 32 bits per hash (96 in all).
    max_duplicate_bits: int = 18
    # Held photos: real time-lapses (sunset, sky tiles, meadow, tree, the nature reel) show no
    # isolated jumps at all; frames duplicated by a frame-rate change (8 fps at 24) hold each
    # picture 0.125 s. Three or more stills held 0.3 s or longer are a slideshow (one or two
    # jumps may be exposure steps of a camera over a still scene).
    min_stills: int = 3
    min_still_s: float = 0.3
    # Sharpness (0-1): real footage measures 0.48 (upscaled 128 px sky tiles) to 0.82. Sources
    # defocused by a Gaussian of 3 px (as seen at 256 px wide) give 0.28-0.33, of 4 px
    # 0.23-0.29, of 2 px 0.36-0.42 (meadow, sunset, nature reel).
    min_sharpness: float = 0.35
    # Highlight luma (0-1): night skies with stars measure 0.25-0.30, the darkest real sky tile
    # 0.58; fades and black frames below 0.09. 0.08: nothing brighter than 20 grey levels.
    min_highlight_luma: float = 0.08
    # Clipped white share: real clips reach 0.13 (a bright sky behind a tree).
    max_clipped_white: float = 0.5


@dataclass
class EncodeConfig:
    """How kept clips are written into the shards (H.264, short GOP for cheap random access)."""

    codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = 18
    gop: int = 12  # frames between keyframes: a random FGLA pair costs at most 12 decoded frames
    max_height: int = 1080  # larger sources are scaled down, aspect kept
    # Copy the source's coded frames instead of re-encoding when nothing would change them:
    # an H.264 4:2:0 upright source without B-frames, a clip that starts on a keyframe and
    # has one at least every `gop` frames, no crop and no scaling.
    stream_copy: bool = True
    # x264 threads per encode (each task asks as many CPUs of a cluster). x264's bytes depend
    # on its thread count; 0 lets ffmpeg choose from the machine's cores (1.5 per core), so
    # clips encoded on machines with other core counts differ: set it on a cluster.
    threads: int = 0


@dataclass
class ShardConfig:
    """How shards are rolled."""

    # A tar is closed before it would pass this size. Loaders hand whole shards to each of
    # ranks x workers streams (8 GPUs x 8 workers = 64): 256 MB gives a 16 GB build 64 shards.
    max_bytes: int = 256 * 1024 * 1024


@dataclass
class SyntheticConfig:
    """The built-in procedural demo source."""

    seed: int = 0
    num_videos: int = 4
    width: int = 384
    height: int = 216
    fps: float = 25.0


@dataclass
class BuildConfig:
    """Everything `tld build` reads. Saved resolved in OUT/run/config.yaml."""

    source: str = "local"
    input: str | None = None
    workers: int = 1
    # How tasks run (`local`: this process, or a pool of `workers` processes; `ray`: on the
    # Ray cluster at `ray_address`, `auto` being the one this machine belongs to); never what
    # they produce.
    executor: Literal["local", "ray"] = "local"
    ray_address: str = "auto"
    # Each stage starts only with this much free space on OUT's disk (a full disk mid-stage
    # stops the build too, recording nothing about the clips; the re-run goes on).
    min_free_mb: int = 500
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    flickr: FlickrConfig = field(default_factory=FlickrConfig)
    youtube: YoutubeConfig = field(default_factory=YoutubeConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    precompute: PrecomputeConfig = field(default_factory=PrecomputeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def valid_keys() -> list[str]:
    """All dotted keys of the build configuration, for error messages and docs."""
    return keys_of(BuildConfig)


def builtin_recipe(name: str) -> Path | None:
    """Path of a recipe shipped in the package (`timelapse_d/recipes/` in a checkout), if any."""
    candidate = resources.files("timelapse_d.recipes") / f"{name}.yaml"
    return Path(str(candidate)) if candidate.is_file() else None


def load_recipe(path: Path) -> dict[str, Any]:
    """A recipe file as nested sections (empty when the file is)."""
    data = read_yaml(path, "recipe") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must be a mapping of config keys")
    return data


def saved_build_config(out: Path) -> BuildConfig:
    """The resolved config the latest `tld build` of `out` saved (OUT/run/config.yaml)."""
    path = out / "run" / "config.yaml"
    if not path.exists():
        raise ConfigError(f"{out} has no saved build config ({path}): run `tld build` first")
    return from_mapping(BuildConfig, load_recipe(path))


def resolve_config(
    *,
    source: str,
    recipe: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> BuildConfig:
    """Defaults, then the source's built-in recipe, then a user recipe, then dotted overrides."""
    data: dict[str, Any] = {"source": source}
    shipped = builtin_recipe(source)
    for path in (shipped, recipe):
        if path is not None:
            data = with_overrides(data, flatten(load_recipe(path)))
    config = from_mapping(BuildConfig, with_overrides(data, overrides or {}))
    if config.workers < 1:
        raise ConfigError("workers must be at least 1")
    if config.encode.threads < 0:
        raise ConfigError("encode.threads must be 0 (ffmpeg chooses) or more")
    return config


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (config sections, input identities)."""
    payload = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:20]
