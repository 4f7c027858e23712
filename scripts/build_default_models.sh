#!/usr/bin/env bash
# Rebuild the default models in mxn/default_models/ from scratch, offline.
#
#   bash scripts/build_default_models.sh            # about 40 minutes on 2 cores
#
# 1. render the traffic world's crops data set (train/val/calibration/test);
# 2. train the three default models, one `mxn train` command each;
# 3. check the world is hard enough: the cheap first exit must be clearly
#    wrong sometimes (60-90% top-1) while the ground-truth CNN reaches >= 98%.
# Each model file records in its card how it was trained (mxn info FILE --json).
set -euo pipefail
cd "$(dirname "$0")/.."
MXN=${MXN:-.venv/bin/mxn}
DATA=${DATA:-data/world-crops}
OUT=${OUT:-mxn/default_models}
mkdir -p "$OUT"

"$MXN" world crops --out "$DATA" --seconds 600 --size 64 --seed 0

"$MXN" train "$DATA" --out "$OUT/ingest.mxn" --width 0.25 --input-size 64 \
    --loss ce --optimizer adam --lr 0.003 --epochs 15 --seed 0

"$MXN" train "$DATA" --out "$OUT/query.mxn" --width 0.25 --input-size 64 \
    --loss focal --gamma 2 --optimizer adam --lr 0.003 --epochs 15 --seed 0

"$MXN" train "$DATA" --out "$OUT/gt.mxn" --width 0.5 --input-size 64 --exits 8 --no-aggregation \
    --loss ce --optimizer adam --lr 0.003 --epochs 20 --seed 0

"$MXN" models check "$DATA"
