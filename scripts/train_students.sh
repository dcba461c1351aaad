#!/usr/bin/env bash
# Draws of the thin_deep48_heatmap student recipe (C4's, stage3/README.md) side by side, from crop packs,
# on whatever machine runs this (a GPU machine: 4.7 min for two draws on one H100, session 16).
#
#   bash scripts/train_students.sh DPRIME.pt TRAIN_PACK EXTRA_LIST EXTRA_PACK SEED [SEED ...]
#
# DPRIME.pt: the pruned, distilled start (D' in stage3/README.md).  The teacher is weights/referee.pt, the
# default of sessions 7-17 the students were pruned from (default.pt is one of them since session 18).
# The packs can be JPEG packs
# (--phase pack --pack-quality 95) and EXTRA_LIST its training-split lines only, so that they fit a
# 64 MiB transfer.  Each draw keeps the validation photos of every earlier candidate (--split-seed 1)
# and writes $OUT/cSEED_best.pt, $OUT/cSEED_history.csv and $OUT/cSEED.out; each run stops after
# $LIMIT s (best.pt so far is kept).  Extra detector flags for every draw: $FLAGS.
set -u
DPRIME="$1"; PACK="$2"; EXTRA_LIST="$3"; EXTRA_PACK="$4"; shift 4
PY="${PY:-python3}"; OUT="${OUT:-results/students}"; LIMIT="${LIMIT:-420}"; EPOCHS="${EPOCHS:-30}"
WORK="${WORK:-$OUT/runs}"; WORKERS="${WORKERS:-6}"; FLAGS="${FLAGS:-}"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT" "$WORK"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
KD="--light-gamma 2 --blur 1.5 --noise 8 --underexpose 0.2 --teacher facial_keypoints/weights/referee.pt \
--teacher-heatmap-weight 20 --teacher-embedding-weight 200 --teacher-feature-weight 10 --teacher-weight 3"
for seed in "$@"; do
    # shellcheck disable=SC2086  # KD and FLAGS are lists of flags
    timeout "$LIMIT" "$PY" stage3/detector.py --phase finetune --checkpoint "$DPRIME" --crops "$PACK" \
        --extra-list "$EXTRA_LIST" --extra-crops "$EXTRA_PACK" --lr 1e-4 --epochs "$EPOCHS" --ema 0.999 $KD \
        --freeze body.trunk.stem classifier --seed "$seed" --split-seed 1 --workers "$WORKERS" --no-progress \
        --log-interval 0 $FLAGS --save-directory "$WORK/c$seed" > "$OUT/c$seed.out" 2>&1 &
done
wait
for seed in "$@"; do
    cp "$WORK/c$seed/best.pt" "$OUT/c${seed}_best.pt" && cp "$WORK/c$seed/loss_history.csv" "$OUT/c${seed}_history.csv"
    tail -n 2 "$OUT/c$seed.out"
done
