"""ADE20K-150 classes grouped into the six FGLA region groups (sky ... others), from YAML.

The mapping file lists the class ids of the five named groups; ``others`` is the remainder.
Lookups are vectorised through a 150-entry table (class id -> group id).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from timelapse_d.config import read_yaml
from timelapse_d.errors import ConfigError

NUM_CLASSES = 150  # ADE20K scene-parsing classes
GROUP_NAMES = ("sky", "tree", "grass", "water", "waterfall", "others")  # index = group id
OTHERS = GROUP_NAMES.index("others")
GROUPS_FILE = "ade20k_groups.yaml"  # in timelapse_d/model_configs/


@dataclass(frozen=True)
class GroupMapping:
    """Class ids of each group (in ``GROUP_NAMES`` order) and the class -> group lookup table."""

    classes: tuple[frozenset[int], ...]
    table: np.ndarray  # (NUM_CLASSES,) uint8 group id per class
    source: Path


def default_groups_path() -> Path:
    """``timelapse_d/model_configs/ade20k_groups.yaml`` (installed with the package)."""
    return Path(str(resources.files("timelapse_d.model_configs") / GROUPS_FILE))


def load_groups(path: Path | None = None) -> GroupMapping:
    """Read and validate a group mapping file (default: :func:`default_groups_path`)."""
    source = path or default_groups_path()
    data = read_yaml(source, "group mapping")
    named = GROUP_NAMES[:OTHERS]
    if not isinstance(data, dict) or set(data) != set(named):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ConfigError(
            f"group mapping {source} must map exactly {', '.join(named)} to class id lists "
            f"('others' is every class not listed); found {found}"
        )
    table = np.full(NUM_CLASSES, OTHERS, dtype=np.uint8)
    owner: dict[int, str] = {}
    for group_id, name in enumerate(named):
        ids = [] if data[name] is None else data[name]
        if not isinstance(ids, list):
            raise ConfigError(f"group mapping {source}: {name} must be a list of class ids")
        for class_id in ids:
            if type(class_id) is not int or not 0 <= class_id < NUM_CLASSES:
                raise ConfigError(
                    f"group mapping {source}: {name} lists {class_id!r}, "
                    f"not a class id in 0..{NUM_CLASSES - 1}"
                )
            if class_id in owner:
                raise ConfigError(
                    f"group mapping {source}: class {class_id} is listed in both "
                    f"{owner[class_id]} and {name}"
                )
            owner[class_id] = name
            table[class_id] = group_id
    table.setflags(write=False)
    classes = tuple(frozenset(np.flatnonzero(table == g).tolist()) for g in range(len(GROUP_NAMES)))
    return GroupMapping(classes=classes, table=table, source=source)


@functools.cache
def default_groups() -> GroupMapping:
    """The default mapping, read once per process."""
    return load_groups()


def class_map_to_groups(class_map: np.ndarray, mapping: GroupMapping | None = None) -> np.ndarray:
    """Group id (uint8, same shape) of every pixel of an integer ADE20K class map."""
    table = (mapping or default_groups()).table
    if not np.issubdtype(class_map.dtype, np.integer):
        raise ValueError(f"class map must hold integer class ids, got dtype {class_map.dtype}")
    if class_map.size and (class_map.min() < 0 or class_map.max() >= NUM_CLASSES):
        raise ValueError(f"class map values must lie in 0..{NUM_CLASSES - 1}")
    return table[class_map]


def group_masks(group_map: np.ndarray) -> np.ndarray:
    """One-hot boolean masks: (..., H, W) group ids -> (..., 6, H, W), e.g. (N,H,W) -> (N,6,H,W)."""
    ids = np.arange(len(GROUP_NAMES), dtype=group_map.dtype)[:, None, None]
    return group_map[..., None, :, :] == ids
