"""FGLA's flip, ablated on the control corpus: the paper's flip (the encoder reads the flow and
masks mirrored, flow values unchanged), whole-sample mirroring (images, masks and flow mirrored,
the flow's x negated, for half the samples) and no flip, each trained the same number of steps
with the same seed on the same corpus (timelapse_d/model_configs/fgla_small.yaml).

Each model is scored as benchmarks/region_direction.py scores FGLA: per-region direction
accuracy on held-out references whose sky and water move differently (and the same way), and
`tld eval`'s masked PSNR and SSIM on 24 held-out clips of 33 frames.

Prints a table and saves benchmarks/results/flip_ablation.json.
Usage: python benchmarks/flip_ablation.py [--steps 600] [--clips 256] [--cases 24]
"""

from __future__ import annotations

import json
import platform
import tempfile
from pathlib import Path

from region_direction import (
    SEED,
    SIZE,
    cases,
    control_arguments,
    from_reference,
    masked_scores,
    print_table,
    score,
    train_model,
)

from timelapse_d.fgla.trained import load_trained
from timelapse_d.synth.control import write_control_build

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "flip_ablation.json"
VARIANTS = {
    "paper flip": {"model.encoder.mirror_input": True, "data.mirror": False},
    "whole-sample mirroring": {"model.encoder.mirror_input": False, "data.mirror": True},
    "no flip": {"model.encoder.mirror_input": False, "data.mirror": False},
}


def main() -> None:
    args = control_arguments(__doc__)
    rows, seconds, checkpoints = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_control_build(folder / "build", SEED, args.clips, size=SIZE)
        for index, (name, overrides) in enumerate(VARIANTS.items()):
            out = f"variant{index}"
            checkpoints[name], seconds[name] = train_model(
                out, folder / "build", folder, args.steps, "fgla_small.yaml", overrides
            )
            trained = load_trained(checkpoints[name])
            for same in (False, True):
                rows.append(
                    {
                        "model": name,
                        "regions": "same direction" if same else "different directions",
                        **score(trained, from_reference, cases(args.cases, same)),
                    }
                )
        protocol = masked_scores(folder, checkpoints)
    print_table(rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": platform.processor() or platform.machine(),
        "steps": args.steps,
        "training_clips": args.clips,
        "cases": args.cases,
        "variants": VARIANTS,
        "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "rows": rows,
        "protocol": protocol,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
