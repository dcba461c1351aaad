#!/usr/bin/env bash
# Train the stage-3 candidates for the shipped default model side by side, from a
# crop pack, on whatever machine runs this (a GPU when there is one).  How the
# shipped model was made (see stage3/README.md):
#
#   python stage3/gen_train_test.py --data-root ../shared/data
#   python stage3/detector.py --phase pack --crops .device/stage3_train.npz
#   OUT=results bash scripts/train_candidates.sh .device/stage3_train.npz 200
#
# Each candidate writes its checkpoints and log under $OUT/NAME/; then one tar per
# candidate keeps best.pt, loss_history.csv and the logs (each run stops after $LIMIT s).
set -uo pipefail
PACK="$1"; EPOCHS="${2:-240}"; OUT="${OUT:-results}"; LIMIT="${LIMIT:-520}"; WORKERS="${WORKERS:-3}"
PY="${PY:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
train() {  # NAME, then extra detector flags
    local name="$1"; shift
    timeout "$LIMIT" "$PY" stage3/detector.py --phase train --crops "$PACK" --epochs "$EPOCHS" \
        --workers "$WORKERS" --no-progress --log-interval 0 --save-directory "$OUT/$name" "$@" \
        > "$OUT/$name.out" 2>&1
    echo "$name exit $?"
}
mkdir -p "$OUT"
train compact --backbone compact_heatmap &
train fast --backbone fast_heatmap &
train tiny --backbone tiny_heatmap &
train fast_cw2 --backbone fast_heatmap --class-weights 1 2 &
wait
for name in compact fast tiny fast_cw2; do
    tail -n 3 "$OUT/$name/train.log" 2>/dev/null
    tar -cf "$OUT/$name.tar" -C "$OUT" "$name/best.pt" "$name/loss_history.csv" "$name/train.log" "$name.out" 2>/dev/null
    rm -rf "${OUT:?}/$name" "$OUT/$name.out"
done
ls -la "$OUT"
