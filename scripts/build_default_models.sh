#!/usr/bin/env bash
# Rebuild the default models in mxn/default_models/ from scratch, offline.
#
#   bash scripts/build_default_models.sh            # about 170 minutes on 2 cores
#
# 1. render the traffic world's truth crops (train/val/calibration/test, 64 px)
#    and train a first ground-truth CNN and the two cheap MXNs on them;
# 2. render background-subtraction blobs at 128 px (what ingest really finds)
#    and fine-tune the ground-truth CNN on them at 128 px: the bundled GT-CNN
#    (about 15x the MACs of the cheap MXN's first exit, as Focus's GT-CNN is far
#    above its cheap CNN);
# 3. render more blobs (another seed) and fine-tune a first ingest MXN on them
#    with the GT-CNN's labels (--teacher): Focus's specialisation, so that the
#    index agrees with the reference answers;
# 4. index clips of every preset with it (world seeds 4-5; the benchmarks use
#    0-1, the tests 3), cut their crops under the GT-CNN's labels (mxn crops),
#    and fine-tune the query MXN and the final ingest MXN on them and the
#    blobs: the candidates queries really ask about;
# 5. distil the query MXN once more on the same crops, with the GT-CNN's
#    probabilities as targets (--soft-teacher): it learns where the GT-CNN is
#    unsure, so its thresholds decide more of the easy candidates;
# 6. distil it further on the candidates of the final ingest MXN, from twice
#    as many clips (world seeds 4-11): three rounds, the last on all of them;
# 7. check the world is hard enough (mxn models check).
# Each model file records in its card how it was trained (mxn info FILE --json).
set -euo pipefail
cd "$(dirname "$0")/.."
MXN=${MXN:-.venv/bin/mxn}
DATA=${DATA:-data}
OUT=${OUT:-mxn/default_models}
FIRST=${FIRST:-$DATA/truth-models}
mkdir -p "$OUT" "$FIRST"

# 1. truth crops and the first models
"$MXN" world crops --out "$DATA/world-crops" --seconds 600 --size 64 --seed 0
"$MXN" train "$DATA/world-crops" --out "$FIRST/ingest.mxn" --width 0.25 --input-size 64 \
    --loss ce --optimizer adam --lr 0.003 --epochs 15 --seed 0
"$MXN" train "$DATA/world-crops" --out "$FIRST/query.mxn" --width 0.25 --input-size 64 \
    --loss focal --gamma 2 --optimizer adam --lr 0.003 --epochs 15 --seed 0
"$MXN" train "$DATA/world-crops" --out "$FIRST/gt.mxn" --width 0.5 --input-size 64 --exits 8 --no-aggregation \
    --loss ce --optimizer adam --lr 0.003 --epochs 20 --seed 0

# 2. the ground-truth CNN: fine-tuned at 128 px on the blobs ingest finds, then on blobs and
#    truth crops together (blobs alone made it forget clean objects: 91% on truth crops)
"$MXN" world crops --out "$DATA/blob-crops-128" --source blobs --size 128 --seconds 400 --seed 0
"$MXN" world crops --out "$DATA/world-crops-128" --size 128 --seconds 250 --seed 0
"$MXN" train "$DATA/blob-crops-128" --out "$FIRST/gt-blobs.mxn" --width 0.5 --input-size 128 --exits 8 \
    --no-aggregation --loss ce --optimizer adam --lr 0.001 --epochs 10 --seed 0 --init "$FIRST/gt.mxn"
"$MXN" train "$DATA/world-crops-128" "$DATA/blob-crops-128" --out "$OUT/gt.mxn" --width 0.5 --input-size 128 \
    --exits 8 --no-aggregation --loss ce --optimizer adam --lr 0.0005 --epochs 6 --seed 0 \
    --init "$FIRST/gt-blobs.mxn"

# 3. a first ingest MXN: fine-tuned on more blobs, labelled by the ground-truth CNN
"$MXN" world crops --out "$DATA/blob-crops-128-s1" --source blobs --size 128 --seconds 400 --seed 1 \
    --every 10 --max-per-track 10
STUDENT_DATA=${STUDENT_DATA:-$DATA/blob-crops-128-s1}
"$MXN" train "$STUDENT_DATA" --out "$FIRST/ingest-blobs.mxn" --width 0.25 --input-size 64 \
    --loss ce --optimizer adam --lr 0.001 --epochs 12 --seed 0 --init "$FIRST/ingest.mxn" --teacher "$OUT/gt.mxn"
# 4. the query and ingest MXNs: fine-tuned on an index's own candidates and the blobs, labelled by the
#    GT-CNN
# candidate_crops NAME INGEST_MODEL SEED...: 60 s clips of every preset at those world seeds, indexed by
# INGEST_MODEL into $DATA/NAME-clips/index.db; its representative crops under the GT-CNN's top-1 go to
# $DATA/NAME
candidate_crops() {
    local name=$1 model=$2 clips=$DATA/$1-clips
    shift 2
    mkdir -p "$clips"
    for preset in quiet_road highway downtown night; do
        for seed in "$@"; do
            "$MXN" world video --preset "$preset" --seconds 60 --seed "$seed" -o "$clips/$preset-$seed.mp4"
        done
    done
    "$MXN" ingest "$clips"/*.mp4 --db "sqlite:///$clips/index.db" --model "$model" \
        --exits 0,1 --topk 3 --cluster-threshold 0.003 --quiet
    rm -rf "${DATA:?}/$name"  # mxn crops writes only into a new folder
    "$MXN" crops --db "sqlite:///$clips/index.db" --gt "$OUT/gt.mxn" --out "$DATA/$name" --quiet
}
candidate_crops candidate-crops "$FIRST/ingest-blobs.mxn" 4 5
"$MXN" train "$DATA/candidate-crops" "$STUDENT_DATA" --out "$FIRST/query-candidates.mxn" --width 0.25 \
    --input-size 64 --loss focal --gamma 2 --optimizer adam --lr 0.001 --epochs 16 --seed 0 \
    --init "$FIRST/query.mxn" --teacher "$OUT/gt.mxn"
"$MXN" train "$DATA/candidate-crops" "$STUDENT_DATA" --out "$OUT/ingest.mxn" --width 0.25 --input-size 64 \
    --loss ce --optimizer adam --lr 0.001 --epochs 16 --seed 0 --init "$FIRST/ingest.mxn" --teacher "$OUT/gt.mxn"
# 5. the query MXN distilled on the GT-CNN's probabilities
"$MXN" train "$DATA/candidate-crops" "$STUDENT_DATA" --out "$FIRST/query-soft.mxn" --width 0.25 \
    --input-size 64 --loss focal --gamma 2 --optimizer adam --lr 0.0007 --epochs 10 --seed 0 \
    --init "$FIRST/query-candidates.mxn" --teacher "$OUT/gt.mxn" --soft-teacher
# 6. more candidates, of the final ingest MXN: seeds 4-7 (rounds 1 and 2) and 8-11 (round 3, with 4-7)
candidate_crops candidate-crops-a "$OUT/ingest.mxn" 4 5 6 7
candidate_crops candidate-crops-b "$OUT/ingest.mxn" 8 9 10 11
SOFT=(--width 0.25 --input-size 64 --loss focal --gamma 2 --optimizer adam --teacher "$OUT/gt.mxn" --soft-teacher)
"$MXN" train "$DATA/candidate-crops-a" --out "$FIRST/query-more-1.mxn" "${SOFT[@]}" --lr 0.0005 --epochs 12 \
    --seed 0 --init "$FIRST/query-soft.mxn"
"$MXN" train "$DATA/candidate-crops-a" --out "$FIRST/query-more-2.mxn" "${SOFT[@]}" --lr 0.0004 --epochs 12 \
    --seed 1 --init "$FIRST/query-more-1.mxn"
"$MXN" train "$DATA/candidate-crops-a" "$DATA/candidate-crops-b" --out "$OUT/query.mxn" "${SOFT[@]}" \
    --lr 0.0003 --epochs 10 --seed 2 --init "$FIRST/query-more-2.mxn"
# 7. is the world hard enough?
"$MXN" models check "$DATA/world-crops-128"
