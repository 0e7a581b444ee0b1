"""Procedural synthetic time-lapse corpus: demo and test videos with known truth.

``write_corpus(out_dir, seed)`` writes, per video ``synth-NNN``:

- ``synth-NNN.mp4``: H.264 yuv420p (ffmpeg CLI, single-threaded: the same seed and size give
  byte-identical files), several landscape scenes joined by hard cuts;
- ``synth-NNN.truth.json``: ``format``, ``version``, ``video``, ``seed``, ``num_frames``,
  ``fps``, ``width``, ``height``, ``cuts`` (first frame of every segment but the first),
  ``flow_convention``, ``region_labels`` (``{"0": "ground", "1": "sky", "2": "water",
  "3": "tree"}``) and ``segments``, each with ``start``, ``end`` (exclusive), ``kind``,
  ``category`` (a Time-lapse-D category, null for negatives), ``camera`` (static, pan, zoom,
  shake), ``expected_decision`` (kept, rejected), ``expected_reasons`` (camera_motion, static;
  empty when kept), ``motions`` (region name -> motion parameters, see below),
  ``flash_frames`` (absolute frames of single white flashes, not cuts) and ``gains`` (global
  brightness factor per frame of the segment: sunset ramps and fades);
- ``synth-NNN.truth.npz``: per segment ``i``, ``labels_iii`` (uint8 region label map in world
  coordinates) and ``cameras_iii`` ((n, 2, 3) float64 affine matrices mapping frame pixels to
  world coordinates; the identity for a static camera).

Frame ``start + k`` of a segment shows, at pixel p, region r's texture at
``M_r(k, C_k(p))`` where ``C_k`` is the camera and ``M_r`` the region's motion: ``drift``
(``vx``, ``vy`` px/frame), ``rotate`` (``cx``, ``cy``, ``omega`` rad/frame) or ``wave`` (drift
``vx`` plus a row-dependent horizontal oscillation); regions without a motion are still in the
world. See :mod:`timelapse_d.synth.motion`. :func:`load_truth` gives a :class:`Truth` whose
``flow(t)`` is FGLA's backward flow, ``frame[t+1](p) ~= frame[t](p + flow[t](p))``, (H, W, 2)
float32 (dx, dy) in pixels, exact up to interpolation and region borders; it raises ValueError
when t and t+1 are not in the same segment of continuous footage (``has_flow(t)`` tells).
``regions(t)`` is the (H, W) uint8 label map of frame t (it moves with the camera). Brightness
changes (ramps, fades, flashes) do not change the flow.

Kinds: positives (kept, static camera) ``clouds``, ``water``, ``trees``, ``stars``,
``sky_and_water`` (sky and water drift in opposite directions) and ``flash`` (clouds with one
white frame mid-segment); negatives ``pan``, ``zoom``, ``shake`` (camera_motion), ``still``,
``slideshow`` (each held photo is a segment), ``black`` and ``fade`` (the black frames between a
fade-out and a fade-in; no fade frame is darker than 15 % of normal, so the segment is exactly
the black frames) (static, too_dark); ``photo_steps`` (a cloud time-lapse shown as photos
held 10-14 frames each, too alike to cut: slideshow; it has no per-frame flow). Speeds are given
for 384-pixel-wide frames and scale with the width.
"""

from timelapse_d.synth.corpus import write_corpus
from timelapse_d.synth.truth import SegmentTruth, Truth, load_truth

__all__ = ["SegmentTruth", "Truth", "load_truth", "write_corpus"]
