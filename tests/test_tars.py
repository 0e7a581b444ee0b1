"""Shards written with the standard library read back with WebDataset, byte-stable."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import webdataset as wds

from timelapse_d.shards.tar import write_samples

SAMPLES = [
    {"__key__": "video-0000000-0000048", "mp4": b"\x00\x01" * 700, "json": b'{"a": 1}'},
    {"__key__": "video-0000048-0000100", "mp4": b"\x02" * 10, "json": b'{"a": 2}'},
]


def test_webdataset_reads_the_samples_in_order(tmp_path: Path) -> None:
    path = tmp_path / "clips-000000.tar"
    with open(path, "wb") as fh:
        write_samples(fh, SAMPLES)
    read = list(wds.WebDataset(str(path), shardshuffle=False))
    assert [s["__key__"] for s in read] == [s["__key__"] for s in SAMPLES]
    assert [(s["mp4"], s["json"]) for s in read] == [(s["mp4"], s["json"]) for s in SAMPLES]


def test_same_samples_same_bytes_and_bad_keys_refused() -> None:
    first, second = io.BytesIO(), io.BytesIO()
    write_samples(first, SAMPLES)
    write_samples(second, SAMPLES)
    assert first.getvalue() == second.getvalue()
    for key in ("a.b", "/abs/a", "../a", "a/b"):  # member names stay plain and relative
        with pytest.raises(ValueError, match="not a plain id"):
            write_samples(io.BytesIO(), [{"__key__": key, "mp4": b""}])
    with pytest.raises(TypeError, match="bytes"):
        write_samples(io.BytesIO(), [{"__key__": "a", "json": {"x": 1}}])
