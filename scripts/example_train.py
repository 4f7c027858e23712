#!/usr/bin/env python
"""Train, calibrate and evaluate a small multi-exit network on rendered crops, from Python (mxn.api).

    python scripts/example_train.py --out out/example-train
    python scripts/example_train.py --out out/example-train --seconds 300 --epochs 20 --size 64

The same as these commands (docs/API.md lists every function and option):

    mxn world crops --out OUT/crops --seconds 60 --presets downtown --size 32
    mxn train OUT/crops --out OUT/model.mxn --input-size 32 --exits 2,4,8 --epochs 4 \\
        --optimizer adam --lr 0.003
    mxn calibrate OUT/model.mxn OUT/crops --target-precision 0.9
    mxn evaluate OUT/model.mxn OUT/crops

It cuts a class-per-folder data set of road users from the synthetic downtown
camera (train, val, calibration and test splits from separate simulations),
trains a ResNet-18-style MXN with three exits, recalibrates the exits'
thresholds for another target precision and measures every exit and the
early-exit cascade on the test crops. The defaults are tiny so it ends well
under a minute; the accuracy they reach is low. More seconds of crops and
more epochs make a model worth keeping (the bundled ones took about 40 minutes).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mxn import api


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", default="out/example-train", help="Folder for the crops and the model.")
    parser.add_argument("--seconds", type=float, default=60.0, help="Simulated seconds of training crops.")
    parser.add_argument("--size", type=int, default=32, help="Crop and input side in pixels.")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--target-precision", type=float, default=0.9)
    args = parser.parse_args(argv)

    out = Path(args.out)
    manifest = api.render_crops(
        out / "crops", size=args.size, seconds=args.seconds, presets="downtown", progress=False
    )
    counts = {split: sum(per_class.values()) for split, per_class in manifest["counts"].items()}
    print(f"cut {sum(counts.values())} crops of {len(manifest['classes'])} classes: {counts}")

    trained = api.train(
        out / "crops", out / "model.mxn", input_size=args.size, exits="2,4,8", epochs=args.epochs,
        optimizer="adam", lr=0.003, progress=False, log=print,
    )  # fmt: skip
    report = trained.report
    print(f"trained {report.train.epochs_run} epochs in {report.train.seconds:.1f} s; wrote {trained.path}")

    calibration = api.calibrate(trained.path, out / "crops", target_precision=args.target_precision)
    limits = ", ".join("-" if t is None else f"{t:.3f}" for t in calibration.thresholds)
    print(
        f"calibrated for {args.target_precision:.0%} precision: thresholds {limits}, "
        f"coverage {calibration.coverage:.1%}"
    )

    evaluation = api.evaluate(trained.path, out / "crops")
    for i, accuracy in enumerate(evaluation.exit_accuracy):
        share = evaluation.early_exit_share[i] if evaluation.early_exit_share else 0.0
        print(f"  exit {i}: test accuracy {accuracy:.1%}, share leaving here {share:.1%}")
    if evaluation.early_exit_accuracy is not None:
        print(
            f"early exit: accuracy {evaluation.early_exit_accuracy:.1%}, "
            f"undecided after the last exit {evaluation.undecided_share:.1%} ({evaluation.items} test crops)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
