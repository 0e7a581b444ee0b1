"""`tld animate`: a photo animated at its own resolution, frame by frame from one sampling of
the photo, looped by cross-fade, with the motion of per-group reference videos."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from control_model import HELD_OUT, SEED, SIZE, SMALL_CONFIG
from PIL import Image

from timelapse_d.cli import cli
from timelapse_d.fgla.al import AnimatingLandscape
from timelapse_d.fgla.animation import (
    crossfade_loop,
    iter_frames,
    iter_recurrent_frames,
    write_video,
)
from timelapse_d.fgla.config import load_fgla_config
from timelapse_d.fgla.inference import (
    Reference,
    chosen_motion,
    generate_flow,
    motion_frames,
    region_latents,
)
from timelapse_d.fgla.train import CHECKPOINT, TrainOptions, train
from timelapse_d.fgla.trained import load_trained
from timelapse_d.fgla.warp import pixel_to_grid, warp
from timelapse_d.flow.dis import DISBackend
from timelapse_d.segment.groups import GROUP_NAMES, group_masks
from timelapse_d.synth.control import ControlClip, Vector, render_clip, write_control_build

SKY, WATER = GROUP_NAMES.index("sky"), GROUP_NAMES.index("water")


def read_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["animate", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return 2, str(result.exception)  # ConfigError: `tld` prints it and exits 2
    return result.exit_code, result.output


def test_every_frame_samples_the_photo_once() -> None:
    """Half a pixel per frame: frame 2 is the photo moved by exactly one pixel. Warping the
    previous frame again instead would blur it (two bilinear half-pixel samplings)."""
    image = torch.rand(1, 3, 24, 40) * 2 - 1
    half_pixel = pixel_to_grid(torch.tensor([0.5, 0.0]).view(1, 2, 1, 1).expand(1, 2, 24, 40))
    frames = list(iter_frames(image, half_pixel.contiguous(), 3))
    assert torch.equal(frames[0], image)
    torch.testing.assert_close(frames[2][..., 2:-2], image[..., 3:-1], atol=1e-5, rtol=0)
    rewarped = warp(frames[1], half_pixel)
    assert (rewarped[..., 2:-2] - image[..., 3:-1]).abs().mean() > 0.05


def test_recurrent_frames_predict_each_step_from_the_frame_generated_last() -> None:
    """The frame handed to the model at step t is frame t (here the model's size is the
    photo's), and a motion that reads its input gives a different video than one flow."""
    image = torch.rand(1, 3, 24, 24) * 2 - 1
    seen = []

    def flow_of(step: int, frame: torch.Tensor) -> torch.Tensor:
        seen.append(frame)
        drift = pixel_to_grid(torch.tensor([0.5, 0.25]).view(1, 2, 1, 1).expand(1, 2, 24, 24))
        return drift * (1 + frame.mean())  # depends on the frame it is given

    frames = list(iter_recurrent_frames(image, image, flow_of, 4))
    assert len(seen) == 3 and all(torch.equal(s, f) for s, f in zip(seen, frames[:3], strict=True))
    assert not torch.equal(seen[1], seen[0])
    single = list(iter_frames(image, flow_of(0, image), 4))
    assert (single[3] - frames[3]).abs().max() > 1e-4


def test_single_flow_mode_is_the_one_flow_animation_and_recurrent_differs(
    quick_checkpoint: Path,
) -> None:
    trained = load_trained(quick_checkpoint)
    clip = drift_clip(7, 32, 3, (0.6, 0.0), (0.0, -0.6))
    image = torch.from_numpy(clip.frames[:1]).permute(0, 3, 1, 2).float() / 127.5 - 1
    masks = torch.from_numpy(group_masks(clip.groups[:1])).float()
    reference = Reference(
        pixel_to_grid(torch.from_numpy(clip.flow)), torch.from_numpy(group_masks(clip.groups[:-1]))
    )
    choice = dict.fromkeys(GROUP_NAMES, reference)  # every group of the photo is in it

    def video(mode: str) -> list[torch.Tensor]:
        config = replace(trained.config, inference=replace(trained.config.inference, mode=mode))
        motion = chosen_motion(trained.model, choice, per_pair=False)
        return list(motion_frames(trained.model, config, image, image, lambda _: masks, motion, 6))

    one_flow = generate_flow(trained.model, image, masks, region_latents(trained.model, choice))
    before = list(iter_frames(image, one_flow, 6))  # the animation before recurrent inference
    single, recurrent = video("single"), video("recurrent")
    assert all(torch.equal(a, b) for a, b in zip(single, before, strict=True))
    torch.testing.assert_close(recurrent[1], single[1])  # step 0 reads the photo in both
    assert (recurrent[5] - single[5]).abs().max() > 1e-3


def test_crossfade_loop_blends_the_tail_into_the_head() -> None:
    frames = [np.full((2, 2, 3), 10 * i, np.uint8) for i in range(16)]
    looped = [int(f[0, 0, 0]) for f in crossfade_loop(iter(frames), 12, 4)]
    # F_4 .. F_11, then (1 - i/4) F_12+i + (i/4) F_i for i = 0..3
    assert looped == [40, 50, 60, 70, 80, 90, 100, 110, 120, 100, 80, 60]  # then F_4 again
    assert len(looped) == 12


def test_write_video_streams_frames_at_a_fractional_rate(tmp_path: Path) -> None:
    frames = (np.random.default_rng(0).random((5, 31, 47, 3)) * 255).astype(np.uint8)
    assert write_video(iter(frames), tmp_path / "a.mp4", fps=29.97) == 5
    with av.open(str(tmp_path / "a.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (46, 30)
        assert abs(float(stream.average_rate) - 29.97) < 0.01


@pytest.fixture(scope="module")
def quick_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained for two steps: enough to exercise the command, not to animate."""
    root = tmp_path_factory.mktemp("quick")
    write_control_build(root / "build", seed=1, clips=4, size=32)
    overrides = {"model.image_size": 32, "model.flow_size": 16, "train.batch_size": 2}
    train(load_fgla_config(SMALL_CONFIG, overrides), TrainOptions(root / "build", root / "run", 2))
    return root / "run" / CHECKPOINT


def write_clip(clip: ControlClip, folder: Path, name: str) -> tuple[Path, Path]:
    """The clip as an MP4 and the group ids of its first frame as a PNG."""
    video, mask = folder / f"{name}.mp4", folder / f"{name}-mask.png"
    write_video(clip.frames, video)
    Image.fromarray(clip.groups[0]).save(mask)
    return video, mask


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 333 x 251 photo (odd sides) with its mask, and a reference video with its mask."""
    folder = tmp_path_factory.mktemp("scene")
    rng = np.random.default_rng(5)
    photo = render_clip(rng, 333, 2, (0.0, 0.0), (0.0, 0.0))
    Image.fromarray(photo.frames[0][:251]).save(folder / "photo.png")
    Image.fromarray(photo.groups[0][:251]).save(folder / "photo-mask.png")
    video, mask = write_clip(render_clip(rng, 64, 9, (1.0, 0.0), (-1.0, 0.0)), folder, "ref")
    return {
        "photo": folder / "photo.png",
        "mask": folder / "photo-mask.png",
        "ref": video,
        "ref_mask": mask,
    }


@pytest.mark.parametrize(
    ("name", "size", "loop", "expected"),
    [
        ("out.mp4", "original", False, (332, 250)),  # 4:2:0 needs even sides
        ("out.gif", "original", False, (333, 251)),
        ("out.webm", "160x90", True, (160, 90)),
    ],
)
def test_animate_writes_the_photo_at_its_resolution(
    quick_checkpoint: Path,
    scene: dict[str, Path],
    tmp_path: Path,
    name: str,
    size: str,
    loop: bool,
    expected: tuple[int, int],
) -> None:
    out = tmp_path / name
    args = ["--reference", scene["ref"], "--reference-mask", scene["ref_mask"]]
    args += ["--mask", scene["mask"], "--frames", "10", "--size", size, "--fps", "8"]
    code, output = invoke(
        scene["photo"],
        "-o",
        out,
        "--checkpoint",
        quick_checkpoint,
        *args,
        *(["--loop"] if loop else []),
    )
    assert code == 0, output
    assert "frame/s" not in output and "s/frame" not in output  # no bar off a terminal
    frames = read_frames(out)
    assert frames.shape[0] == 10 and frames.shape[1:3] == expected[::-1]
    if not loop:  # frame 0 is the photo itself
        photo = np.asarray(Image.open(scene["photo"]).convert("RGB"))
        assert psnr(frames[0], photo[: expected[1], : expected[0]]) > 30


def test_boxes_on_the_command_line_need_no_weights_and_an_unreferenced_group_holds_still(
    quick_checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "boxes.mp4"
    boxes = ["--mask", "sky:0,0,1,0.5;water:0,0.5,1,1", "--reference-mask", "sky=sky:0,0,1,0.5"]
    code, output = invoke(
        scene["photo"], "-o", out, "--checkpoint", quick_checkpoint, "--frames", "8",
        "--reference", f"sky={scene['ref']}", *boxes, "--weights-dir", tmp_path / "none",
    )  # fmt: skip
    assert code == 0, output
    frames = read_frames(out).astype(int)
    water = frames[:, 150:]  # well below the boundary, where the upsampled flow is exactly 0
    assert np.abs(water[-1] - water[0]).mean() < 0.5
    code, output = invoke(
        scene["photo"], "-o", out, "--checkpoint", quick_checkpoint, "--reference",
        scene["ref"], "--mask", "sky:0,0,1.5,1",
    )  # fmt: skip
    assert code == 2 and "0 <= X0 < X1 <= 1" in output


def test_animate_refuses_bad_inputs_with_their_names(
    quick_checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    base = [scene["photo"], "-o", tmp_path / "out.mp4", "--reference", scene["ref"]]
    masks = ["--reference-mask", scene["ref_mask"], "--mask", scene["mask"]]
    cases = [
        ([*base, "--checkpoint", tmp_path / "none.pt", *masks], "checkpoint not found"),
        ([*base, "--checkpoint", scene["ref"], *masks], "not a readable training checkpoint"),
        ([*base, "--checkpoint", quick_checkpoint], "encoder_epoch_30.pth"),
        (
            [
                *base,
                "--checkpoint",
                quick_checkpoint,
                "--mask",
                scene["photo"],
                "--reference-mask",
                scene["ref_mask"],
            ],
            "single-channel or palette",
        ),
        (
            [
                *base,
                "--checkpoint",
                quick_checkpoint,
                *masks,
                "--reference-mask",
                f"water={scene['ref_mask']}",
            ],
            "--reference-mask water=... has no matching",
        ),
        (
            [
                scene["photo"],
                "-o",
                tmp_path / "out.avi",
                "--checkpoint",
                quick_checkpoint,
                "--reference",
                scene["ref"],
                *masks,
            ],
            "must end in .mp4, .webm, .gif",
        ),
        (
            [
                scene["photo"],
                "-o",
                tmp_path / "out.mp4",
                "--checkpoint",
                quick_checkpoint,
                "--reference",
                quick_checkpoint,
                *masks,
            ],
            "not a readable video",
        ),
    ]
    for args, message in cases:
        code, output = invoke(*args)
        assert code == 2 and message in output, (message, output)
    assert not list(tmp_path.iterdir())  # nothing half-written


def drift_clip(index: int, size: int, frames: int, sky: Vector, water: Vector) -> ControlClip:
    rng = np.random.default_rng([SEED, HELD_OUT + index])
    return render_clip(rng, size, frames, sky, water)


def content_motion(frames: np.ndarray, groups: np.ndarray, group: int) -> np.ndarray:
    """Mean motion (pixels) of the group's content from the first to the last frame."""
    flow = DISBackend().backward_flow(frames[:1], frames[-1:])[0]
    return -flow[:, groups == group].mean(1)


def cosine(a: np.ndarray, b: Vector) -> float:
    return float(a @ np.asarray(b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


@pytest.mark.slow
@pytest.mark.parametrize(("sky", "water"), [((1.0, 0.0), (-1.0, 0.0)), ((0.0, -1.0), (1.0, 0.0))])
def test_each_group_moves_like_its_own_reference_video(
    control_checkpoint: Path, tmp_path: Path, sky: Vector, water: Vector
) -> None:
    """Sky from one video, water from another (fine-grained control), both encoded from MP4s
    with DIS flow: the animated 256 x 256 photo moves each region along its reference."""
    scale = 4 * SIZE / 256  # a drift of 0.6 px per sampled pair at the model's 64 px
    step = 0.6 / scale / 4
    clouds = drift_clip(10, 256, 13, (step * sky[0], step * sky[1]), (0.0, 0.0))
    lake = drift_clip(11, 256, 13, (0.0, 0.0), (step * water[0], step * water[1]))
    sky_video, sky_mask = write_clip(clouds, tmp_path, "clouds")
    water_video, water_mask = write_clip(lake, tmp_path, "lake")
    photo = drift_clip(12, 256, 2, (0.0, 0.0), (0.0, 0.0))
    Image.fromarray(photo.frames[0]).save(tmp_path / "photo.png")
    Image.fromarray(photo.groups[0]).save(tmp_path / "photo-mask.png")
    out = tmp_path / "out.mp4"
    code, output = invoke(
        tmp_path / "photo.png",
        "-o",
        out,
        "--checkpoint",
        control_checkpoint,
        "--mask",
        tmp_path / "photo-mask.png",
        "--frames",
        "16",
        "--reference",
        f"sky={sky_video}",
        "--reference-mask",
        f"sky={sky_mask}",
        "--reference",
        f"water={water_video}",
        "--reference-mask",
        f"water={water_mask}",
    )
    assert code == 0, output
    frames = read_frames(out)
    assert frames.shape == (16, 256, 256, 3)
    moved_sky = content_motion(frames, photo.groups[0], SKY)
    moved_water = content_motion(frames, photo.groups[0], WATER)
    assert cosine(moved_sky, sky) > 0.8 and cosine(moved_water, water) > 0.8, (
        moved_sky,
        moved_water,
    )
    assert np.linalg.norm(moved_sky) > 2 and np.linalg.norm(moved_water) > 2


AL_SMALL = SMALL_CONFIG.with_name("al_small.yaml")


@pytest.fixture(scope="module")
def al_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Animating Landscape model trained for two steps on 5 clips: its codebook holds
    the codes of the clips it trained on (fewer than its size, so no k-means)."""
    root = tmp_path_factory.mktemp("al")
    write_control_build(root / "build", seed=2, clips=5, size=32)
    overrides = {"model.image_size": 32, "model.flow_size": 16, "train.batch_size": 2}
    config = load_fgla_config(AL_SMALL, overrides)
    train(config, TrainOptions(root / "build", root / "run", 2))
    return root / "run" / CHECKPOINT


def test_al_training_stores_a_codebook_of_its_clips(al_checkpoint: Path) -> None:
    trained = load_trained(al_checkpoint)
    assert isinstance(trained.model, AnimatingLandscape) and trained.step == 2
    fields = torch.load(al_checkpoint, weights_only=True)["motion_fields"]
    assert 2 <= len(fields) <= 4  # two batches of two, near-still pairs skipped
    assert trained.codebook is not None and tuple(trained.codebook.shape) == (len(fields), 8)
    assert len(torch.unique(trained.codebook, dim=0)) == len(fields)  # one code per clip


def test_al_animates_a_codebook_entry_without_segmenter_or_references(
    al_checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    """No --mask and no weights directory: a global-code model needs no segmenter."""
    last = []
    for entry in ("0", "1"):
        out = tmp_path / f"code{entry}.mp4"
        code, output = invoke(
            scene["photo"], "-o", out, "--checkpoint", al_checkpoint, "--code", entry
        )
        assert code == 0, output
        frames = read_frames(out)
        assert frames.shape == (32, 250, 332, 3)
        last.append(frames[-1].astype(int))
    assert np.abs(last[0] - last[1]).mean() > 0.5  # two codes, two motions


def test_codes_and_regions_are_refused_where_the_model_lacks_them(
    al_checkpoint: Path, quick_checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    cases = [
        ([quick_checkpoint, "--code", "0"], "has no codebook"),
        ([al_checkpoint, "--code", "5"], "out of range for a codebook of"),
        ([al_checkpoint, "--reference", f"sky={scene['ref']}"], "one global motion code"),
        ([al_checkpoint, "--code", "0", "--reference", scene["ref"]], "--code replaces"),
    ]
    for args, message in cases:
        code, output = invoke(scene["photo"], "-o", out, "--checkpoint", *args)
        assert code == 2 and message in output, (args, output)
    assert not out.exists()
