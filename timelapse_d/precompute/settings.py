"""The ``precompute`` section of a recipe: how `tld precompute` computes each field.

A build saves it with the rest of its configuration (OUT/run/config.yaml); `tld precompute`
reads it from there, applies its options and ``--set precompute.<key>=<value>`` on top, and
saves what it used in OUT/run/precompute-<field>.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PrecomputeConfig:
    """Sampling, backends and run settings of the fields (frames, flow, mask)."""

    stride: int = 4  # every stride-th clip frame is sampled (FGLA's one in four)
    size: int = 256  # ... and resized to size x size
    frames_backend: str = "decode"
    flow_backend: str = "dis"  # dis, flownet2, raft or truth (synthetic clips only)
    mask_backend: str = "hrnet"  # hrnet or truth
    flow_weights: str | None = None  # a checkpoint file; default: installed by `tld weights`
    mask_weights: str | None = None  # a folder of the encoder and decoder files
    classes: bool = False  # masks: also store the 150 ADE20K class map
    device: str = "cpu"  # cpu, cuda, cuda:1, ...
    batch: int = 16  # frame pairs (flow) or frames (masks) per model call
    precision: str = "fp32"  # fp32, fp16 or bf16
