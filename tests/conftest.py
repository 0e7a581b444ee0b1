"""Shared fixtures: the shared real media folder and one synthetic build per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from timelapse_d.config import resolve_config
from timelapse_d.pipeline import build
from timelapse_d.precompute.stage import PrecomputeOptions, precompute

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = (REPO / ".." / "shared" / "media").resolve()
needs_shared_media = pytest.mark.skipif(
    not SHARED_MEDIA.is_dir(), reason="../shared/media is absent (not part of a user's clone)"
)


@pytest.fixture(scope="session")
def synthetic_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo build (synthetic source, default recipe, 2 workers), made once."""
    out = tmp_path_factory.mktemp("synthetic") / "out"
    config = resolve_config(source="synthetic", overrides={"workers": 2})
    summary = build(config, out)
    assert summary.complete, summary.text()
    return out


TRUTH_FIELDS = (("frames", "decode"), ("flow", "truth"), ("mask", "truth"))


@pytest.fixture(scope="session")
def fields_build(synthetic_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's synthetic build with frames, truth flow and truth masks."""
    out = tmp_path_factory.mktemp("fields") / "out"
    shutil.copytree(synthetic_build, out)
    for field, backend in TRUTH_FIELDS:
        report = precompute(out, PrecomputeOptions(field, backend))
        assert report.shards_done == len(list((out / "shards").glob("clips-*.tar")))
    return out


@pytest.fixture(scope="session")
def control_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint of the small FGLA trained on the control corpus (tests/control_model.py)."""
    from control_model import train_control_model

    return train_control_model(tmp_path_factory.mktemp("control"))
