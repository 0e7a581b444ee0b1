"""Shared fixtures: the shared real media folder and one synthetic build per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from timelapse_d.config import resolve_config
from timelapse_d.pipeline import build

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
