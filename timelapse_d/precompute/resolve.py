"""The options of a `tld precompute` run: the ``precompute`` section saved with the build,
then dotted overrides (``precompute.stride``, the command's options), then saved with the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from timelapse_d.config import saved_build_config
from timelapse_d.config_loader import from_mapping, to_dict, with_overrides
from timelapse_d.errors import ConfigError
from timelapse_d.precompute.sampling import Sampling
from timelapse_d.precompute.settings import PrecomputeConfig
from timelapse_d.precompute.stage import PrecomputeOptions
from timelapse_d.runs import write_atomic

SECTION = "precompute"


def precompute_section(out: Path, overrides: dict[str, Any]) -> PrecomputeConfig:
    """OUT's saved ``precompute`` section (the defaults when OUT has no saved build config)
    with dotted ``precompute.<key>`` overrides on top; ConfigError for any other key."""
    others = sorted(key for key in overrides if not key.startswith(f"{SECTION}."))
    if others:
        raise ConfigError(f"tld precompute takes {SECTION}.<key> settings only, got {others[0]!r}")
    saved = out / "run" / "config.yaml"
    base = saved_build_config(out).precompute if saved.is_file() else PrecomputeConfig()
    nested = {key.removeprefix(f"{SECTION}."): value for key, value in overrides.items()}
    return from_mapping(
        PrecomputeConfig, with_overrides(to_dict(base), nested), prefix=f"{SECTION}."
    )


def precompute_options(field: str, section: PrecomputeConfig) -> PrecomputeOptions:
    """The options of one field from a ``precompute`` section (ConfigError when invalid)."""
    try:
        sampling = Sampling(stride=section.stride, size=section.size)
    except ValueError as exc:
        raise ConfigError(f"{SECTION}: {exc}") from None
    return PrecomputeOptions(
        field=field,
        backend=getattr(section, f"{field}_backend", None),
        sampling=sampling,
        device=section.device,
        batch=section.batch,
        precision=section.precision,
        weights=getattr(section, f"{field}_weights", None),
        classes=section.classes,
    ).resolved()


def save_section(out: Path, field: str, section: PrecomputeConfig) -> Path:
    """Write the section a run of `field` used to OUT/run/precompute-<field>.yaml (in recipe
    form: it can be pasted into a recipe)."""
    path = out / "run" / f"{SECTION}-{field}.yaml"
    text = yaml.safe_dump({SECTION: to_dict(section)}, sort_keys=True).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda fh: fh.write(text))
    return path
