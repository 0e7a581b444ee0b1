"""Source `synthetic`: the procedural demo corpus, generated into OUT/sources/synthetic/."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from timelapse_d.config import SyntheticConfig, fingerprint
from timelapse_d.errors import ConfigError
from timelapse_d.records import SourceVideo
from timelapse_d.runs import RunDir
from timelapse_d.sources.local import find_videos
from timelapse_d.synth import write_corpus

STAGE = "acquire"


def acquire_synthetic(config: SyntheticConfig, out: Path, run: RunDir) -> list[SourceVideo]:
    """Generate the corpus once (deterministic from the seed), then list its videos."""
    target = out / "sources" / "synthetic"
    key = fingerprint(dataclasses.asdict(config))
    if not run.is_done(STAGE, "synthetic", key):
        shutil.rmtree(target, ignore_errors=True)
        try:
            written = write_corpus(
                target,
                config.seed,
                width=config.width,
                height=config.height,
                fps=config.fps,
                num_videos=config.num_videos,
            )
        except ValueError as exc:  # sizes the generator cannot make
            raise ConfigError(f"synthetic: {exc}") from None
        run.mark_done(STAGE, "synthetic", key, outputs=written)
    return find_videos(target, source="synthetic", uri_prefix=f"synthetic://seed-{config.seed}/")
