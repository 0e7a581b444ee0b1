"""Benchmark and visual check of `tld animate`.

1. Speed: seconds per output frame of `animate_photo` (the whole command: flow generation,
   composing and warping at the output size, encoding H.264) at 256x256 and 1920x1080,
   recurrent (a generator pass per frame, the default) and single-flow (--single-flow), with
   the paper-size model (timelapse_d/model_configs/fgla.yaml, random weights: the speed does
   not depend on them), and the one-off flow generation; on the device given (--device cuda
   when one is lent).
2. Contact sheets: a small model trained on the synthetic control corpus
   (timelapse_d/model_configs/fgla_small.yaml, 600 steps on the CPU, or --checkpoint) animates
   the real stills of ../shared/media (the coast photo, 640x360, and a 1280x720 still of
   3d_cinemagraphy) at their own resolution, the sky from a reference drifting right and the
   water from one drifting left. Frames 0, 10, 20 and 31 and the amplified difference of
   frames 31 and 0 are saved as PNG sheets in benchmarks/out/ (not committed: the stills'
   licences do not allow it). The stills' masks are rough hand rules (described in
   make_masks), standing in for the segmenter. The same stills are animated by the Animating
   Landscape baseline (timelapse_d/model_configs/al_small.yaml, trained the same way, or
   --al-checkpoint) following one reference whose sky drifts right and whose water drifts
   left (AL has one global code: no per-region references): *-al-sheet.png.
Prints a table and saves benchmarks/results/animate-<device>.json.
Usage: python benchmarks/animate.py [--device cpu] [--checkpoint CKPT] [--al-checkpoint CKPT]
       [--frames 32] [--speed-only]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from itertools import product
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from timelapse_d.fgla.animation import write_video
from timelapse_d.fgla.config import config_to_dict, default_config_path, load_fgla_config
from timelapse_d.fgla.photo import AnimateOptions, animate_photo
from timelapse_d.fgla.train import CHECKPOINT, TrainOptions, train
from timelapse_d.fgla.trained import build_model
from timelapse_d.segment.groups import GROUP_NAMES
from timelapse_d.synth.control import render_clip, write_control_build

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHEETS = ROOT / "benchmarks" / "out"
STILLS = ROOT.parent / "shared" / "media" / "stills"
SKY, GRASS, WATER, OTHERS = (GROUP_NAMES.index(n) for n in ("sky", "grass", "water", "others"))


def random_checkpoint(folder: Path) -> Path:
    """The paper-size model with random weights, saved as `tld train` saves one."""
    config = load_fgla_config(default_config_path())
    torch.manual_seed(0)
    payload = {"model": build_model(config).state_dict(), "config": config_to_dict(config)}
    torch.save(payload, folder / "random.pt")
    return folder / "random.pt"


def trained_checkpoint(folder: Path, config_name: str) -> Path:
    """A small model trained on the control corpus (about two minutes on two cores)."""
    if not (folder / "build").is_dir():
        write_control_build(folder / "build", 0, 256, size=64)
    config = load_fgla_config(ROOT / "timelapse_d" / "model_configs" / config_name)
    run = folder / Path(config_name).stem
    train(config, TrainOptions(folder / "build", run, steps=600))
    return run / CHECKPOINT


def reference(folder: Path, name: str, sky: tuple[float, float], water: tuple[float, float]):
    """A 256 x 256 control clip as an MP4 and the group ids of its first frame."""
    clip = render_clip(np.random.default_rng(7), 256, 13, sky, water)
    write_video(clip.frames, folder / f"{name}.mp4")
    Image.fromarray(clip.groups[0]).save(folder / f"{name}-mask.png")
    return folder / f"{name}.mp4", folder / f"{name}-mask.png"


def make_masks(photo: np.ndarray, water: np.ndarray | None) -> np.ndarray:
    """Rough groups: water from the given fluid mask (or, without one, the pixels below the
    horizon row that are not green); grass where green dominates; sky above the water's top
    row (or the horizon) where it is bright and bluish or grey; others elsewhere."""
    height, width = photo.shape[:2]
    rgb = photo.astype(np.int32)
    green = (rgb[..., 1] > rgb[..., 0] + 8) & (rgb[..., 1] > rgb[..., 2] + 8)
    rows = np.arange(height)[:, None].repeat(width, 1)
    if water is None:
        horizon = int(0.64 * height)
        water = (rows > horizon) & ~green
    else:
        horizon = int(np.argmax(water.any(1)))
    bluish_or_grey = rgb[..., 2] >= rgb[..., 0] - 5  # not brown rock or sand
    sky = (rows < horizon) & ~green & bluish_or_grey & (rgb.sum(2) > 240) & ~water
    groups = np.full((height, width), OTHERS, np.uint8)
    groups[green] = GRASS
    groups[sky] = SKY
    groups[water] = WATER
    return groups


def contact_sheet(video: Path, out: Path) -> None:
    import av

    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    picks = [frames[i] for i in (0, 10, 20, len(frames) - 1)]
    change = np.clip(np.abs(picks[-1].astype(int) - picks[0].astype(int)) * 4, 0, 255)
    tiles = [*picks, change.astype(np.uint8)]
    scale = 320 / tiles[0].shape[1]
    size = (320, round(tiles[0].shape[0] * scale))
    row = np.concatenate([np.asarray(Image.fromarray(t).resize(size)) for t in tiles], axis=1)
    Image.fromarray(row).save(out)


def seconds_per_frame(
    checkpoint: Path, folder: Path, refs, size, frames: int, device: str, mode: str
):
    photo = folder / "photo.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)).save(photo)
    mask = folder / "photo-mask.png"
    Image.fromarray(
        np.repeat(np.arange(6, dtype=np.uint8), -(-size[1] // 6))[: size[1], None].repeat(
            size[0], 1
        )
    ).save(mask)
    options = AnimateOptions(
        image=photo,
        output=folder / "speed.mp4",
        checkpoint=checkpoint,
        references={"": refs[0]},
        reference_masks={"": refs[1]},
        mask=mask,
        frames=frames,
        device=device,
        progress=False,
        flow_backend="dis",
        mode=mode,
    )
    short = AnimateOptions(**{**vars(options), "frames": 2})
    animate_photo(short)  # warm-up
    fixed = animate_photo(short).seconds
    total = animate_photo(options).seconds
    return (total - fixed) / (frames - 2), fixed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", type=Path, help="default: train the small model")
    parser.add_argument("--al-checkpoint", type=Path, help="default: train the small AL model")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--speed-only", action="store_true", help="no contact sheets")
    args = parser.parse_args()
    results = {
        "device": torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "speed": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        refs = reference(folder, "right", (0.6, 0.0), (0.0, 0.0))
        lake = reference(folder, "left", (0.0, 0.0), (-0.6, 0.0))
        both = reference(folder, "both", (0.6, 0.0), (-0.6, 0.0))
        checkpoint = random_checkpoint(folder)
        for (width, height), mode in product(((256, 256), (1920, 1080)), ("recurrent", "single")):
            per_frame, fixed = seconds_per_frame(
                checkpoint, folder, refs, (width, height), args.frames, args.device, mode
            )
            results["speed"][f"{width}x{height} {mode}"] = {
                "seconds_per_frame": round(per_frame, 4),
                "fixed_seconds": round(fixed, 3),
            }
            print(
                f"{width}x{height} {mode}: {per_frame:.4f} s per frame, {fixed:.2f} s fixed "
                "(model load, references, flow generation, 2 frames)"
            )
        if STILLS.is_dir() and not args.speed_only:
            SHEETS.mkdir(parents=True, exist_ok=True)
            small = args.checkpoint or trained_checkpoint(folder, "fgla_small.yaml")
            baseline = args.al_checkpoint or trained_checkpoint(folder, "al_small.yaml")
            stills = {
                "coast_al_input": (STILLS / "coast_al_input.png", None),
                "cinemagraphy_1": (
                    STILLS / "3d_cinemagraphy" / "1" / "image.jpg",
                    STILLS / "3d_cinemagraphy" / "1" / "mask.png",
                ),
            }
            for name, (image, fluid) in stills.items():
                photo = np.asarray(Image.open(image).convert("RGB"))
                water = None if fluid is None else np.asarray(Image.open(fluid)) > 0
                Image.fromarray(make_masks(photo, water)).save(folder / f"{name}-mask.png")
                video = SHEETS / f"{name}.mp4"
                result = animate_photo(
                    AnimateOptions(
                        image=image,
                        output=video,
                        checkpoint=small,
                        references={"sky": refs[0], "water": lake[0]},
                        reference_masks={"sky": refs[1], "water": lake[1]},
                        mask=folder / f"{name}-mask.png",
                        frames=args.frames,
                        speed=0.5,
                        device=args.device,
                        progress=False,
                    )
                )
                Image.fromarray(np.asarray(Image.open(folder / f"{name}-mask.png")) * 40).save(
                    SHEETS / f"{name}-groups.png"
                )
                contact_sheet(video, SHEETS / f"{name}-sheet.png")
                animate_photo(
                    AnimateOptions(
                        image=image,
                        output=SHEETS / f"{name}-al.mp4",
                        checkpoint=baseline,
                        references={"": both[0]},
                        frames=args.frames,
                        speed=0.5,
                        device=args.device,
                        progress=False,
                    )
                )
                contact_sheet(SHEETS / f"{name}-al.mp4", SHEETS / f"{name}-al-sheet.png")
                results[name] = {"size": [result.width, result.height], "frames": result.frames}
                print(
                    f"{name}: {result.width}x{result.height}, {result.frames} frames -> "
                    f"{SHEETS / (name + '-sheet.png')}"
                )
    name = "cuda" if args.device.startswith("cuda") else "cpu"
    (RESULTS / f"animate-{name}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
