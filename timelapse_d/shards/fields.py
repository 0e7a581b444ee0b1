"""Field shards beside the clip shards: their sample formats, and writing them checked.

For every ``shards/clips-NNNNNN.tar`` a field shard ``shards/<field>-NNNNNN.tar`` holds one
sample per clip, with the same keys in the same order. Members of a sample (key = clip id):

- frames: ``<key>.json`` (clip frame indices, stride, size) and ``<key>.frames.npz``: ``jpeg``,
  the T sampled frames as JPEGs (quality 95, RGB) laid end to end (uint8), and ``offsets``
  (T + 1, int64), where frame j's bytes start and end. One member per field keeps every
  sample's members the same, as WebDataset loaders (the Hugging Face ``datasets`` one among
  them) require, while a reader still decodes only the frames it needs: about 25 KB per
  256x256 frame against 192 KB raw.
- flow: ``<key>.json`` (backend, direction, scale) and ``<key>.flow.npz`` with ``flow``
  (P, 2, S, S) int16 for the P = T - 1 consecutive sampled pairs: FGLA's backward flow
  (``frame[j+1](p) ~= frame[j](p + flow[j](p))``, (dx, dy) in pixels of the S x S frame) in
  fixed point at ``scale`` = 1/32 px (error at most 1/64 px, a hundredth of what flow
  networks get wrong), zlib-compressed inside the npz: 9-30 KB per pair against 256 KB as
  raw float16 (measured on DIS flow of the synthetic corpus; see benchmarks/precompute.py).
- mask: ``<key>.json`` (backend, group names) and ``<key>.mask.npz`` with ``groups``
  (T, S, S) uint8, the six FGLA region groups per sampled frame, and optionally ``classes``
  (T, S, S) uint8, the 150 ADE20K classes.

Every field sample also carries ``<key>.sha256``: the digests of its other members, checked
when the sample is read, so a damaged byte is an error, never a silently wrong frame or flow.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from timelapse_d.runs import atomic_path
from timelapse_d.shards.tar import FieldMismatch, iter_samples, write_samples

FLOW_SCALE = 1.0 / 32.0  # pixels per int16 step
JPEG_QUALITY = 95
FRAMES_MEMBER = "frames.npz"  # the member holding a clip's sampled frames
DIGESTS = "sha256"  # member holding the digests of a field sample's other members


def encode_frames(indices: list[int], frames: np.ndarray, meta: dict[str, Any]) -> dict[str, bytes]:
    """Members of a frames sample (without ``__key__``) from (T, S, S, 3) uint8 RGB frames."""
    encoded = []
    for frame in frames:
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        if not ok:
            raise ValueError("JPEG encoding failed")
        encoded.append(data.ravel())
    offsets = np.cumsum([0] + [len(data) for data in encoded], dtype=np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, jpeg=np.concatenate(encoded), offsets=offsets)  # JPEGs do not deflate
    return {"json": _json({**meta, "indices": indices}), FRAMES_MEMBER: buffer.getvalue()}


def decode_frames(sample: dict[str, Any], which: Sequence[int] | None = None) -> np.ndarray:
    """Sampled frames of a frames sample as (N, S, S, 3) uint8 RGB: frames ``which`` (by
    position), or all of them; only those are decoded."""
    if FRAMES_MEMBER not in sample:
        raise FieldMismatch("frames stored in a former layout: run `tld precompute frames` again")
    arrays = _load_npz(sample[FRAMES_MEMBER])
    jpeg, offsets = arrays["jpeg"], arrays["offsets"]
    decoded = []
    for j in range(len(offsets) - 1) if which is None else which:
        image = cv2.imdecode(jpeg[offsets[j] : offsets[j + 1]], cv2.IMREAD_COLOR)
        if image is None:
            raise FieldMismatch("a stored frame is not a readable JPEG")
        decoded.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return np.stack(decoded)


def encode_flow(flow: np.ndarray, meta: dict[str, Any]) -> dict[str, bytes]:
    """Members of a flow sample from (P, 2, S, S) float flow in pixels."""
    limit = np.iinfo(np.int16).max
    fixed = np.clip(np.rint(flow / FLOW_SCALE), -limit, limit).astype(np.int16)
    return {"json": _json({**meta, "scale": FLOW_SCALE}), "flow.npz": _npz(flow=fixed)}


def decode_flow(sample: dict[str, Any]) -> np.ndarray:
    """(P, 2, S, S) float32 flow in pixels of a flow sample."""
    scale = float(json.loads(sample["json"])["scale"])
    return _load_npz(sample["flow.npz"])["flow"].astype(np.float32) * scale


def encode_masks(
    groups: np.ndarray, meta: dict[str, Any], classes: np.ndarray | None = None
) -> dict[str, bytes]:
    """Members of a mask sample from (T, S, S) group maps (and optional class maps)."""
    arrays = {"groups": groups.astype(np.uint8)}
    if classes is not None:
        arrays["classes"] = classes.astype(np.uint8)
    return {"json": _json(meta), "mask.npz": _npz(**arrays)}


def decode_masks(sample: dict[str, Any]) -> dict[str, np.ndarray]:
    """{'groups': (T, S, S) uint8, and 'classes' when stored} of a mask sample."""
    return dict(_load_npz(sample["mask.npz"]))


def write_field_shard(path: Path, samples: list[dict[str, Any]], keys: list[str]) -> None:
    """Write a field shard to a temporary file, read it back (keys must equal ``keys`` in
    order, every member must match its digest), then rename it to ``path``; a shard that
    fails the check is removed and never replaces ``path``."""
    with atomic_path(path) as temp:
        with open(temp, "wb") as fh:
            write_samples(fh, (_with_digests(sample) for sample in samples))
            fh.flush()
            os.fsync(fh.fileno())
        written = [key for key, members in iter_samples(temp) if check_digests(path, key, members)]
        if written != keys:
            raise FieldMismatch(f"{path.name}: keys read back differ from the clip shard's")


def _with_digests(sample: dict[str, Any]) -> dict[str, Any]:
    members = {k: v for k, v in sample.items() if k != "__key__"}
    return {**sample, DIGESTS: _json(_digests(members))}


def _digests(members: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in sorted(members.items())}


def verified_members(path: Path, key: str, members: dict[str, bytes]) -> dict[str, bytes]:
    """A field sample's members, checked against and without its stored digests."""
    members = dict(members)
    check_digests(path, key, members)
    return members


def check_digests(path: Path, key: str, members: dict[str, bytes]) -> bool:
    """Check a field sample's members against its stored digests; pop the digests."""
    stored = members.pop(DIGESTS, None)
    if stored is None or json.loads(stored) != _digests(members):
        raise FieldMismatch(f"{path.name}: sample {key} is damaged (digest mismatch)")
    return True


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True).encode()


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # stubs take kwargs as allow_pickle
    return buffer.getvalue()


def _load_npz(data: bytes) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (ValueError, OSError, EOFError) as exc:
        raise FieldMismatch(f"a stored array cannot be read: {exc}") from exc
