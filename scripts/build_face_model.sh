#!/usr/bin/env bash
# Build mxn/default_models/face.mxn, offline, with the same commands a user runs on their own movie:
#   1. a training movie (seed 200) and a calibration movie (seed 300) of the cast of real faces
#      that ship in packages (mxn/datasets/movies/, docs/DATA.md); the tests and benchmarks use other seeds;
#   2. `mxn train faces`: every face of the training movie (every 2nd frame), distilled from
#      dlib's embeddings (centred, unit length) into the 4-exit MobileNetV1 face MXN;
#   3. `mxn tune faces --into-model`: per-exit distance thresholds for 99% accuracy on the
#      calibration movie, written into the model's card (what `mxn faces` uses without --thresholds).
# About 8 minutes on 2 CPU cores. docs/MODELS.md records what it reaches.
set -euo pipefail
cd "$(dirname "$0")/.."
MXN="${MXN:-.venv/bin/mxn}"
OUT="${OUT:-mxn/default_models/face.mxn}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export TF_CPP_MIN_LOG_LEVEL=3
"$MXN" movie --preset feature --seed 200 -o "$WORK/train.mp4" --gallery "$WORK/cast"
"$MXN" movie --preset short --seed 300 --seconds 60 -o "$WORK/calib.mp4"
"$MXN" train faces "$WORK/train.mp4" --stride 2 --epochs 40 --out "$WORK/face.mxn" --json "$WORK/train.json" \
    --source "every 2nd frame of: mxn movie --preset feature --seed 200 (scripts/build_face_model.sh)"
"$MXN" tune faces "$WORK/calib.mp4" --gallery "$WORK/cast" --model "$WORK/face.mxn" \
    --into-model "$OUT" --out "$WORK/face-thresholds.json" --json "$WORK/tune.json"
REPORTS="${REPORTS:-out/build_face_model}"
mkdir -p "$REPORTS" && cp "$WORK/train.json" "$WORK/tune.json" "$REPORTS/"
echo "training and tuning reports: $REPORTS/train.json, $REPORTS/tune.json"
