"""A build loads with the Hugging Face `datasets` library: the webdataset loader on the clip
shards, and the folder itself through the configurations of its dataset card."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from timelapse_d.manifest import read_rows
from timelapse_d.shards.fields import decode_frames
from timelapse_d.shards.tar import iter_samples, write_samples

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
datasets = pytest.importorskip("datasets")

pytestmark = pytest.mark.slow
MEMBERS = {
    "clips": {"json", "mp4"},
    "frames": {"frames.npz", "json", "sha256"},
    "flow": {"flow.npz", "json", "sha256"},
    "masks": {"mask.npz", "json", "sha256"},
}


@pytest.fixture(scope="module")
def published(fields_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("published") / "out"
    shutil.copytree(fields_build, out)
    return out


def _kept_ids(out: Path) -> list[str]:
    return sorted(
        r["clip_id"] for r in read_rows(out / "manifest.parquet") if r["status"] == "kept"
    )


def test_card_lists_every_shard_family_as_a_configuration(published: Path) -> None:
    text = (published / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(text.split("---")[1])
    configs = {c["config_name"]: c["data_files"][0]["path"] for c in header["configs"]}
    assert configs == {
        "clips": "shards/clips-*.tar",
        "frames": "shards/frames-*.tar",
        "flow": "shards/flow-*.tar",
        "masks": "shards/mask-*.tar",
    }
    kept = len(_kept_ids(published))
    assert f"| kept clips | {kept} (" in text
    assert "filter.min_sharpness" in text and "## Licences and attribution" in text


def test_webdataset_loader_gives_one_row_per_kept_clip(published: Path, tmp_path: Path) -> None:
    files = sorted(str(p) for p in (published / "shards").glob("clips-*.tar"))
    rows = datasets.load_dataset(
        "webdataset", data_files={"train": files}, split="train", cache_dir=str(tmp_path)
    )
    assert sorted(rows["__key__"]) == _kept_ids(published)
    assert set(rows.column_names) - {"__key__", "__url__"} == MEMBERS["clips"]
    rows = rows.cast_column("mp4", datasets.Video(decode=False))  # decoding needs torchcodec
    first = rows[0]
    assert first["json"]["clip_id"] == first["__key__"] and first["json"]["status"] == "kept"
    stored = dict(iter_samples(Path(first["__url__"])))[first["__key__"]]
    assert first["mp4"]["bytes"] == stored["mp4"]


@pytest.mark.parametrize("config", sorted(MEMBERS))
def test_folder_loads_through_the_card(published: Path, tmp_path: Path, config: str) -> None:
    rows = datasets.load_dataset(str(published), config, split="train", cache_dir=str(tmp_path))
    assert sorted(rows["__key__"]) == _kept_ids(published)
    assert set(rows.column_names) - {"__key__", "__url__"} == MEMBERS[config]
    if config == "frames":
        sample = rows[0]
        meta = sample["json"]
        arrays = sample["frames.npz"]  # the JPEGs end to end and where each starts
        assert len(arrays["offsets"]) == len(meta["indices"]) + 1
        assert arrays["offsets"][-1] == len(arrays["jpeg"])
        stored = dict(iter_samples(Path(sample["__url__"])))[sample["__key__"]]
        frames = decode_frames(stored)
        assert frames.shape == (len(meta["indices"]), meta["size"], meta["size"], 3)
        assert (decode_frames(stored, [2, 1]) == frames[[2, 1]]).all()


def test_default_configuration_is_the_clips(published: Path, tmp_path: Path) -> None:
    rows = datasets.load_dataset(str(published), split="train", cache_dir=str(tmp_path))
    assert set(rows.column_names) - {"__key__", "__url__"} == MEMBERS["clips"]
    first = rows.select_columns(["json", "__key__"])[0]
    assert first["json"]["clip_id"] == first["__key__"]


def test_build_writes_a_card_listing_only_the_shards_it_has(synthetic_build: Path) -> None:
    text = (synthetic_build / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(text.split("---")[1])
    assert [c["config_name"] for c in header["configs"]] == ["clips"]
    assert header["configs"][0]["default"] is True
    assert "source: synthetic" in text  # the saved config is quoted


def test_a_column_null_in_the_first_rows_loads_through_the_cards_features(
    published: Path, tmp_path: Path
) -> None:
    """Loaders infer types from the first few rows; the card types every manifest column, so
    a crop set only on a later clip still loads, through the card and through `webdataset`."""
    out = tmp_path / "out"
    shutil.copytree(published, out, ignore=shutil.ignore_patterns("*-000001.*", "*-000002.*"))
    shard = out / "shards" / "clips-000000.tar"
    samples = [
        {"__key__": key, **members}
        for clip_shard in sorted(published.glob("shards/clips-*.tar"))
        for key, members in iter_samples(clip_shard)
    ]
    last = json.loads(samples[-1]["json"])
    samples[-1]["json"] = json.dumps({**last, "crop_x": 8, "crop_width": 200}).encode()
    assert all(json.loads(s["json"])["crop_x"] is None for s in samples[:-1])
    with open(shard, "wb") as fh:
        write_samples(fh, samples)
    rows = datasets.load_dataset(str(out), "clips", split="train", cache_dir=str(tmp_path / "a"))
    crops = rows.select_columns(["json"])["json"]
    assert len(crops) == len(samples) and crops[-1]["crop_x"] == 8
    features = datasets.load_dataset_builder(str(out), "clips").info.features
    rows = datasets.load_dataset(
        "webdataset", data_files={"train": [str(shard)]}, features=features, split="train",
        cache_dir=str(tmp_path / "b"),
    )  # fmt: skip
    assert rows.select_columns(["json"])[len(samples) - 1]["json"]["crop_width"] == 200
