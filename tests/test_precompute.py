"""`tld precompute`: field shards aligned with the clip shards, exact on synthetic truth,
damage detected, resumable per shard."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from timelapse_d.errors import ConfigError, HostError
from timelapse_d.precompute.batching import AdaptiveBatch
from timelapse_d.precompute.sampling import Sampling
from timelapse_d.precompute.stage import PrecomputeOptions, precompute
from timelapse_d.runs import RunDir
from timelapse_d.segment.groups import GROUP_NAMES
from timelapse_d.shards.fields import decode_flow, decode_frames, decode_masks, write_field_shard
from timelapse_d.shards.naming import FIELDS, field_shard
from timelapse_d.shards.reader import iter_joined
from timelapse_d.shards.tar import FieldMismatch, iter_samples, write_samples
from timelapse_d.stages.base import StageFailed


def clip_shards(out: Path) -> list[Path]:
    return sorted((out / "shards").glob("clips-*.tar"))


def test_every_field_shard_lines_up_with_its_clip_shard(fields_build: Path) -> None:
    checked = 0
    for clip_shard in clip_shards(fields_build):
        clip_keys = [key for key, _ in iter_samples(clip_shard)]
        for field in FIELDS:  # read directly, not through the join under test
            keys = [key for key, _ in iter_samples(field_shard(clip_shard, field))]
            assert keys == clip_keys, (clip_shard.name, field)
        joined = list(iter_joined(clip_shard))
        assert [s["__key__"] for s in joined] == clip_keys
        for sample in joined:
            row = json.loads(sample["clips"]["json"])
            meta = json.loads(sample["frames"]["json"])
            expected = -(-row["num_frames"] // 4)
            assert meta["indices"] == list(range(0, row["num_frames"], 4))
            assert set(sample["frames"]) == {"json", "frames.npz"}
            assert decode_frames(sample["frames"]).shape == (expected, 256, 256, 3)
            assert decode_flow(sample["flow"]).shape == (expected - 1, 2, 256, 256)
            groups = decode_masks(sample["mask"])["groups"]
            assert groups.shape == (expected, 256, 256) and groups.max() < len(GROUP_NAMES)
            checked += 1
    assert checked >= 10


def test_stored_backward_flow_warps_each_sampled_frame_onto_the_next(fields_build: Path) -> None:
    """Through storage, resizing and the fixed-point format, the flow keeps FGLA's direction:
    frame[j+1](p) ~= frame[j](p + flow[j](p)) on the moving regions."""
    grid = np.mgrid[0:256, 0:256][::-1].astype(np.float32).transpose(1, 2, 0)
    forward, reversed_ = [], []
    for sample in iter_joined(clip_shards(fields_build)[0]):
        flows = decode_flow(sample["flow"])
        groups = decode_masks(sample["mask"])["groups"]
        frames = decode_frames(sample["frames"]).astype(np.float32)
        for j in range(0, len(flows), 3):
            a, b = frames[j], frames[j + 1]
            flow = flows[j].transpose(1, 2, 0)
            moving = np.linalg.norm(flow, axis=-1) > 1.0
            moving &= cv2.erode((groups[j] == groups[j + 1]).astype(np.uint8), None).astype(bool)
            if moving.sum() < 500:
                continue
            unwarped = np.abs(a - b)[moving].mean()
            for sign, errors in ((1, forward), (-1, reversed_)):
                warped = cv2.remap(a, grid + sign * flow, None, cv2.INTER_LINEAR)
                errors.append(np.abs(warped - b)[moving].mean() / unwarped)
    assert len(forward) >= 5
    # Measured: 0.38-0.92 (trees up to 1.16) with the flow, 1.2-1.9 with its opposite.
    assert np.median(forward) < 0.9 < 1.1 < np.median(reversed_), (forward, reversed_)


def test_sky_is_a_region_of_the_truth_masks(fields_build: Path) -> None:
    sample = next(iter_joined(clip_shards(fields_build)[0]))
    groups = decode_masks(sample["mask"])["groups"]
    assert (groups == GROUP_NAMES.index("sky")).mean() > 0.2


def _rewrite_member(path: Path, change) -> None:
    """Rewrite a tar with one member's bytes changed by `change(name, data)`."""
    with tarfile.open(path) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar if info.isfile()]
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            data = change(info.name, data)
            if data is None:
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_damaged_field_shards_are_detected(fields_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(fields_build, out)
    first = clip_shards(out)[0]
    flow = first.with_name(first.name.replace("clips", "flow"))
    _rewrite_member(
        flow, lambda name, data: data[:-40] + bytes(40) if name.endswith(".npz") else data
    )
    with pytest.raises(FieldMismatch, match="damaged"):
        list(iter_joined(first))
    frames = first.with_name(first.name.replace("clips", "frames"))
    victim = next(iter_samples(frames))[0]
    _rewrite_member(frames, lambda name, data: None if name.startswith(victim) else data)
    with pytest.raises(FieldMismatch, match="keys differ"):
        list(iter_joined(first, ("frames",)))
    frames.write_bytes(frames.read_bytes()[:3000])
    with pytest.raises(FieldMismatch):
        list(iter_joined(first, ("frames",)))


def _tiny_shards(folder: Path, clip_keys: list[str], flow_keys: list[str]) -> Path:
    """A clip shard of ``clip_keys`` and a flow shard of ``flow_keys`` (placeholder bytes)."""
    clips = folder / "clips-000000.tar"
    with open(clips, "wb") as fh:
        write_samples(fh, [{"__key__": key, "json": b"{}"} for key in clip_keys])
    samples = [{"__key__": key, "flow.npz": key.encode()} for key in flow_keys]
    write_field_shard(field_shard(clips, "flow"), samples, flow_keys)
    return clips


def test_missing_extra_and_reordered_field_samples_are_detected(tmp_path: Path) -> None:
    clips = _tiny_shards(tmp_path, ["a", "b", "c"], ["a", "b", "c"])
    assert [s["flow"]["flow.npz"] for s in iter_joined(clips, ("flow",))] == [b"a", b"b", b"c"]
    missing = r"mask-000000\.tar is missing: run `tld precompute masks`"
    with pytest.raises(FieldMismatch, match=missing):
        list(iter_joined(clips, ("flow", "mask")))
    _tiny_shards(tmp_path, ["a", "b"], ["a", "b", "c"])
    with pytest.raises(FieldMismatch, match=r"flow hold\(s\) extra samples"):
        list(iter_joined(clips, ("flow",)))
    _tiny_shards(tmp_path, ["a", "b", "c"], ["a", "c", "b"])
    with pytest.raises(FieldMismatch, match="keys differ between fields.*clips=b, flow=c"):
        list(iter_joined(clips, ("flow",)))


def test_a_shard_failing_its_check_never_replaces_the_file(tmp_path: Path) -> None:
    """Written to a temporary file, read back and checked, and only then renamed."""
    clips = _tiny_shards(tmp_path, ["a", "b"], ["a", "b"])
    flow = field_shard(clips, "flow")
    before = flow.read_bytes()
    samples = [{"__key__": key, "flow.npz": b"new"} for key in ("a", "b")]
    with pytest.raises(FieldMismatch, match="keys read back differ"):
        write_field_shard(flow, samples, ["b", "a"])
    assert flow.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [clips.name, flow.name]


def _copy_of(build: Path, tmp_path: Path) -> tuple[Path, list[Path]]:
    """A copy of `build` in tmp_path/out, and its clip shards."""
    out = tmp_path / "out"
    shutil.copytree(build, out)
    return out, clip_shards(out)


def test_rerun_skips_done_shards_and_redoes_a_removed_one(
    fields_build: Path, tmp_path: Path
) -> None:
    out, shards = _copy_of(fields_build, tmp_path)
    removed = shards[1].with_name(shards[1].name.replace("clips", "mask"))
    removed.unlink()
    leftover = removed.with_name(f".{removed.name}.x.tld-part")
    leftover.write_bytes(b"half")
    report = precompute(out, PrecomputeOptions("mask", "truth"))
    assert (report.shards_done, report.shards_skipped) == (1, len(shards) - 1)
    assert removed.is_file() and not leftover.exists()
    list(iter_joined(shards[1], ("mask",)))
    # The batch size does not change the output; another stride does.
    report = precompute(out, PrecomputeOptions("mask", "truth", batch=2))
    assert report.shards_done == 0
    report = precompute(out, PrecomputeOptions("frames", "decode", sampling=Sampling(stride=2)))
    assert report.shards_done == len(shards)


def test_a_shard_that_fails_is_recorded_the_others_finish_and_a_rerun_completes(
    fields_build: Path, tmp_path: Path
) -> None:
    out, shards = _copy_of(fields_build, tmp_path)
    for path in out.glob("shards/frames-*.tar"):
        path.unlink()
    kept = tmp_path / shards[0].name
    shutil.copy2(shards[0], kept)
    _rewrite_member(shards[0], lambda name, data: b"not a video" if name.endswith(".mp4") else data)
    with pytest.raises(StageFailed, match=f"precompute_frames: 1 task.*{shards[0].stem}"):
        precompute(out, PrecomputeOptions("frames"))
    assert RunDir(out).failures() == {"precompute_frames": [shards[0].stem]}
    assert not field_shard(shards[0], "frames").exists()
    assert all(field_shard(path, "frames").is_file() for path in shards[1:])
    shutil.copy2(kept, shards[0])
    report = precompute(out, PrecomputeOptions("frames"))
    assert (report.shards_done, report.shards_skipped) == (1, len(shards) - 1)
    assert RunDir(out).failures() == {}
    list(iter_joined(shards[0], ("frames",)))


def test_bad_options_and_missing_shards_fail_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="choose from"):
        PrecomputeOptions("flow", "farneback").resolved()
    with pytest.raises(ConfigError, match="unknown field"):
        PrecomputeOptions("depth").resolved()
    with pytest.raises(ConfigError, match="tld build"):
        precompute(tmp_path, PrecomputeOptions("frames"))


def test_truth_backend_refuses_clips_of_other_sources(fields_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(fields_build, out)
    for clip_shard in clip_shards(out):
        _rewrite_member(
            clip_shard,
            lambda name, data: (
                data.replace(b"synthetic://", b"file:///x/") if name.endswith(".json") else data
            ),
        )
    with pytest.raises(ConfigError, match="synthetic"):
        precompute(out, PrecomputeOptions("flow", "truth"))


def test_out_of_memory_halves_the_batch_and_finishes() -> None:
    calls: list[int] = []

    def model(part: slice) -> np.ndarray:
        size = part.stop - part.start
        calls.append(size)
        if size > 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return np.arange(part.start, part.stop)

    batch = AdaptiveBatch(16)
    result = batch.map(model, 10)
    np.testing.assert_array_equal(result, np.arange(10))
    assert batch.size == 2 and calls[:3] == [10, 8, 4]
    with pytest.raises(ValueError, match="boom"):
        AdaptiveBatch(4).map(lambda part: (_ for _ in ()).throw(ValueError("boom")), 3)


def test_dis_flow_field_follows_the_truth(fields_build: Path, tmp_path: Path) -> None:
    """DIS through `tld precompute flow` stores flow in the same direction and units as the
    generator's truth: its error is a fraction of the motion on the moving sky."""
    out = tmp_path / "out"
    shutil.copytree(fields_build, out)
    first = clip_shards(out)[0]
    truth = {s["__key__"]: (decode_flow(s["flow"]), s["mask"]) for s in iter_joined(first)}
    precompute(out, PrecomputeOptions("flow", "dis"))
    errors, motions = [], []
    for sample in iter_joined(first, ("flow",)):
        expected, mask = truth[sample["__key__"]]
        sky = decode_masks(mask)["groups"][:-1] == GROUP_NAMES.index("sky")
        sky = sky[:, None].repeat(2, axis=1)
        estimated = decode_flow(sample["flow"])
        errors.append(np.abs(estimated - expected)[sky].mean())
        motions.append(np.abs(expected)[sky].mean())
    assert np.mean(errors) < 0.4 * np.mean(motions), (errors, motions)


def test_cli_precompute_and_weights_errors(fields_build: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from timelapse_d.cli import cli

    runner = CliRunner()
    env = {"TLD_WEIGHTS_DIR": str(tmp_path / "weights")}
    listing = runner.invoke(cli, ["weights", "list"], env=env)
    assert listing.exit_code == 0 and "flownet2" in listing.output and "missing" in listing.output
    out = tmp_path / "out"
    shutil.copytree(fields_build, out)
    missing = runner.invoke(cli, ["precompute", "masks", str(out)], env=env)
    assert isinstance(missing.exception, ConfigError)
    assert "encoder_epoch_30.pth" in str(missing.exception)
    assert "tld weights import hrnetv2_encoder" in str(missing.exception)


@pytest.mark.slow
def test_hrnet_masks_store_groups_of_the_class_maps(
    fields_build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default masks backend end to end with a random-weight segmenter (no weight files):
    the six-group map is the grouping of the stored 150-class map, frame for frame."""
    import torch

    from timelapse_d.segment import hrnet
    from timelapse_d.segment.groups import class_map_to_groups

    torch.manual_seed(0)
    segmenter = hrnet.Segmenter().eval()
    monkeypatch.setattr("timelapse_d.weights.require", lambda name, path=None: Path(name))
    monkeypatch.setattr(hrnet, "load_segmenter", lambda encoder, decoder, device: segmenter)
    out = tmp_path / "out"
    shutil.copytree(fields_build, out)
    sampling = Sampling(stride=40, size=32)
    options = PrecomputeOptions("mask", "hrnet", sampling=sampling, batch=2, classes=True)
    report = precompute(out, options)
    assert report.shards_done == len(clip_shards(out))
    for sample in iter_joined(clip_shards(out)[0], ("mask",)):
        frames = -(-json.loads(sample["clips"]["json"])["num_frames"] // 40)
        stored = decode_masks(sample["mask"])
        assert stored["classes"].shape == stored["groups"].shape == (frames, 32, 32)
        assert stored["classes"].max() < 150
        np.testing.assert_array_equal(stored["groups"], class_map_to_groups(stored["classes"]))
        assert json.loads(sample["mask"]["json"])["backend"] == "hrnet"


def test_cli_settings_come_from_the_saved_recipe_section_then_set_then_options(
    fields_build: Path, tmp_path: Path
) -> None:
    """`tld precompute` reads the `precompute` section the build saved, applies --set and its
    options with the build's type rules, and saves what it used with the run."""
    from click.testing import CliRunner

    from timelapse_d.cli import cli

    out, shards = _copy_of(fields_build, tmp_path)
    saved = out / "run" / "config.yaml"
    config = yaml.safe_load(saved.read_text())
    config["precompute"]["stride"] = 40
    saved.write_text(yaml.safe_dump(config))
    runner = CliRunner()
    first = runner.invoke(cli, ["precompute", "frames", str(out), "--set", "precompute.size=32.0"])
    assert first.exit_code == 0, first.output
    sample = next(iter_joined(shards[0], ("frames",)))
    meta = json.loads(sample["frames"]["json"])
    assert (meta["stride"], meta["size"]) == (40, 32)
    used = yaml.safe_load((out / "run" / "precompute-frames.yaml").read_text())["precompute"]
    assert (used["stride"], used["size"], used["frames_backend"]) == (40, 32, "decode")
    again = runner.invoke(cli, ["precompute", "frames", str(out), "--size", "32"])
    assert again.exit_code == 0 and " 0 shards written" in again.output, again.output
    for item, message in (
        ("precompute.stride=2.5", "precompute.stride expects an int"),
        ("filter.min_height=1", "takes precompute.<key> settings only"),
        ("precompute.flow_backend=bogus", "backend 'bogus' cannot compute flow"),
    ):
        refused = runner.invoke(cli, ["precompute", "flow", str(out), "--set", item])
        assert isinstance(refused.exception, ConfigError) and message in str(refused.exception)


def test_precompute_does_not_start_below_the_builds_free_space_margin(
    synthetic_build: Path, tmp_path: Path
) -> None:
    out, shards = _copy_of(synthetic_build, tmp_path)
    saved = out / "run" / "config.yaml"
    saved.write_text(saved.read_text().replace("min_free_mb: 500", f"min_free_mb: {10**12}"))
    with pytest.raises(HostError, match="MB free on the disk of .* before precompute frames"):
        precompute(out, PrecomputeOptions("frames", "decode"))
    assert not any(field_shard(shard, "frames").exists() for shard in shards)
