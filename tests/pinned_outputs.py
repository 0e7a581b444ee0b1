"""Hashes of build outputs, pinned per environment, so a refactor can show it changed no byte.

`python tests/pinned_outputs.py` rebuilds the pinned builds and rewrites
`tests/pinned_outputs.json` for this environment: run it only when a change is meant to change
the outputs (say why in the commit), or on a new environment (other ffmpeg, PyAV, OpenCV,
NumPy or pyarrow), whose encoder and decoders may produce other bytes.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

PINS = Path(__file__).with_suffix(".json")
# (name, synthetic seed, workers): the demo build, and seeds outside the calibration seeds 0-5.
BUILDS = (("demo", 0, 2), ("seed-6", 6, 1), ("seed-9", 9, 1))
PACKAGES = ("av", "opencv-python-headless", "numpy", "scipy", "pyarrow", "scenedetect-headless")


def environment() -> str:
    """What the output bytes depend on besides the code: ffmpeg and the decoding packages."""
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    versions = [f"{name}={version(name)}" for name in PACKAGES]
    python = ".".join(platform.python_version_tuple()[:2])
    return " ".join([ffmpeg.stdout.split(" Copyright")[0], f"python={python}", *versions])


def output_hashes(out: Path) -> dict[str, str]:
    """SHA-256 of the manifests and of every shard file of a build, by relative path."""
    files = [out / "manifest.parquet", out / "videos.parquet", *sorted((out / "shards").iterdir())]
    return {
        path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in files
    }


def pinned(name: str) -> dict[str, str] | None:
    """The pinned hashes of build `name`, or None when they were pinned in another environment."""
    pins = json.loads(PINS.read_text())
    return pins["builds"][name] if pins["environment"] == environment() else None


def build_seed(seed: int, workers: int, out: Path) -> Path:
    """Build the synthetic corpus of `seed` into `out` with the default recipe."""
    from timelapse_d.config import resolve_config
    from timelapse_d.pipeline import build

    overrides = {"synthetic.seed": seed, "workers": workers}
    config = resolve_config(source="synthetic", overrides=overrides)
    assert build(config, out).complete
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        builds = {
            name: output_hashes(build_seed(seed, workers, Path(work) / name))
            for name, seed, workers in BUILDS
        }
    PINS.write_text(json.dumps({"environment": environment(), "builds": builds}, indent=1) + "\n")
    print(f"pinned {len(builds)} builds for: {environment()}", file=sys.stderr)


if __name__ == "__main__":
    main()
