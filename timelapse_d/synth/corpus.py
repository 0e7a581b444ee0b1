"""Plan, render and encode the synthetic demo corpus."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from timelapse_d.synth.landscape import DAY_PALETTES, NIGHT, REGION_NAMES
from timelapse_d.synth.motion import motion_to_dict
from timelapse_d.synth.render import Scene, render
from timelapse_d.synth.scenes import KINDS, SceneSpec, build_scene
from timelapse_d.synth.truth import SegmentTruth, Truth, save_truth

LOG = logging.getLogger("timelapse_d")

# The corpus in order; "+ramp" adds a sunset-like dimming. It is split into videos only between
# two entries that are neither "black" nor "fade" (those need a scene on both sides).
PLAYLIST = (
    "clouds", "water", "still", "trees", "black", "stars",
    "sky_and_water", "pan", "clouds+ramp", "shake",
    "flash", "slideshow", "water", "fade", "trees",
    "stars", "zoom", "sky_and_water", "photo_steps", "clouds",
)  # fmt: skip
NEEDS_NEIGHBOURS = frozenset({"black", "fade"})
LENGTHS = {  # frames (low, high inclusive) per kind; positives use the default
    "pan": (60, 72),
    "zoom": (60, 72),
    "shake": (60, 72),
    "still": (60, 72),
    "photo_steps": (84, 96),
    "slideshow": (20, 25),
    "black": (15, 25),
    "fade": (5, 7),
}
POSITIVE_LENGTH = (70, 100)
SLIDESHOW_PHOTOS = (4, 5)
FADE_FRAMES = 10
CRF = 16


def _expand(token: str, rng: np.random.Generator) -> list[tuple[str, bool]]:
    """(kind, ramp) of the segments a playlist token stands for."""
    kind, _, option = token.partition("+")
    count = int(rng.integers(SLIDESHOW_PHOTOS[0], SLIDESHOW_PHOTOS[1] + 1))
    return [(kind, option == "ramp")] * (count if kind == "slideshow" else 1)


def _specs(seed: int) -> list[list[SceneSpec]]:
    """Scene specs per playlist token; consecutive scenes differ in palette and layout."""
    rng = np.random.default_rng([seed, 0])
    groups: list[list[SceneSpec]] = []
    last, count = -1, 0
    for token in PLAYLIST:
        group = []
        for kind, ramp in _expand(token, rng):
            low, high = LENGTHS.get(kind, POSITIVE_LENGTH)
            choice = int(rng.integers(len(DAY_PALETTES) - 1))
            last = choice + (choice >= last)
            palette = NIGHT if kind == "stars" else DAY_PALETTES[last]
            horizon = 0.68 if kind == "stars" else (0.62, 0.4)[count % 2]
            horizon += float(rng.uniform(-0.04, 0.04))
            length = int(rng.integers(low, high + 1))
            group.append(SceneSpec(kind, length, palette, horizon, ramp))
            count += 1
        groups.append(group)
    return _add_fades(groups)


def _add_fades(groups: list[list[SceneSpec]]) -> list[list[SceneSpec]]:
    """Make the scenes on both sides of a "fade" fade out and in."""
    for i, group in enumerate(groups):
        if group[0].kind == "fade":
            groups[i - 1][-1] = dataclasses.replace(groups[i - 1][-1], fade_out=FADE_FRAMES)
            groups[i + 1][0] = dataclasses.replace(groups[i + 1][0], fade_in=FADE_FRAMES)
    return groups


def _split(groups: list[list[SceneSpec]], num_videos: int) -> list[list[SceneSpec]]:
    """Cut the playlist into `num_videos` videos of similar length at allowed boundaries."""
    kinds = [group[0].kind for group in groups]
    allowed = [i for i in range(1, len(groups)) if not {kinds[i - 1], kinds[i]} & NEEDS_NEIGHBOURS]
    if not 1 <= num_videos <= len(allowed) + 1:
        raise ValueError(f"num_videos must be between 1 and {len(allowed) + 1}")
    ends = np.cumsum([sum(spec.length for spec in group) for group in groups])
    bounds = [0]
    for v in range(1, num_videos):
        target = ends[-1] * v / num_videos
        usable = allowed[: len(allowed) - (num_videos - 1 - v)]  # leave bounds for later videos
        options = [i for i in usable if i > bounds[-1]]
        bounds.append(min(options, key=lambda i: abs(ends[i - 1] - target)))
    bounds.append(len(groups))
    return [sum(groups[a:b], []) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _segment(spec: SceneSpec, scene: Scene, start: int) -> SegmentTruth:
    info = KINDS[spec.kind]
    return SegmentTruth(
        start=start,
        end=start + spec.length,
        kind=spec.kind,
        category=info.category,
        camera=info.camera,
        expected_decision="rejected" if info.reasons else "kept",
        expected_reasons=list(info.reasons),
        motions={REGION_NAMES[k]: motion_to_dict(m) for k, m in sorted(scene.motions.items())},
        flash_frames=[start + k for k in scene.flashes],
        gains=[round(float(g), 4) for g in scene.gains],
        hold=scene.hold,
    )


def encode_frames(
    frames: Iterable[np.ndarray], path: Path, shape: tuple[int, int], fps: float, crf: int = CRF
) -> None:
    """RGB frames as H.264 (yuv420p) through the ffmpeg CLI, single-threaded so the bytes are
    reproducible."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("the ffmpeg command is needed: install it (Debian: apt install ffmpeg)")
    h, w = shape
    command = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-",
        "-an", "-c:v", "libx264", "-preset", "fast", "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        "-map_metadata", "-1", str(path),
    ]  # fmt: skip
    with subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        stdin, stderr = proc.stdin, proc.stderr
        assert stdin is not None and stderr is not None  # both are pipes
        try:
            for frame in frames:
                stdin.write(frame.tobytes())
        finally:
            stdin.close()
            error = stderr.read().decode(errors="replace")
    if proc.returncode:
        raise RuntimeError(f"ffmpeg failed writing {path}: {error.strip()}")


def _write_video(
    path: Path, specs: list[SceneSpec], seed: int, first: int, shape: tuple[int, int], fps: float
) -> None:
    """Render and encode one video; scene `i` of the corpus draws from ``(seed, 1, i)``."""
    segments, labels, cameras, streams = [], [], [], []
    start = 0
    for i, spec in enumerate(specs, start=first):
        rng = np.random.default_rng([seed, 1, i])
        scene = build_scene(spec, shape, rng)
        segments.append(_segment(spec, scene, start))
        labels.append(scene.labels)
        cameras.append(scene.cameras)
        streams.append(render(scene, shape, rng))
        start += spec.length
    encode_frames(_chain(streams), path, shape, fps)
    cuts = [s.start for s in segments[1:]]
    truth = Truth(start, fps, shape[1], shape[0], cuts, segments, labels, cameras)
    save_truth(truth, path, seed)


def _chain(streams: list[Iterator[np.ndarray]]) -> Iterator[np.ndarray]:
    for stream in streams:
        yield from stream


def write_corpus(
    out_dir: Path,
    seed: int = 0,
    *,
    width: int = 384,
    height: int = 216,
    fps: float = 25.0,
    num_videos: int = 4,
) -> list[Path]:
    """Write the demo corpus: videos + truth files; return the video paths (sorted)."""
    if width < 64 or height < 36 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and at least 64x36, got {width}x{height}")
    if seed < 0 or fps <= 0:
        raise ValueError("seed must be >= 0 and fps > 0")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    videos = _split(_specs(seed), num_videos)
    paths, index = [], 0
    LOG.info("synthetic corpus: rendering %d videos into %s", len(videos), out_dir)
    for v, specs in enumerate(videos):
        path = out_dir / f"synth-{v:03d}.mp4"
        _write_video(path, specs, seed, index, (height, width), fps)
        paths.append(path)
        index += len(specs)
        LOG.info("synthetic corpus: %d/%d videos rendered (%s)", v + 1, len(videos), path.name)
    return sorted(paths)
