#!/usr/bin/env bash
# Set up .venv and run stage 1 end to end on the data root:
# lists -> train -> test -> predict, then the library's evaluation of the test list.  About 3 minutes on 2 CPU cores.
# Data root: $FKD_DATA_ROOT, else data/ (see data/README.md).
# Outputs: stage1/trained_models/ (checkpoints, loss_curve.png, test_ced.png, predictions/sheet.png).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup_venv.sh
export FKD_DATA_ROOT="${FKD_DATA_ROOT:-data}"
export MPLBACKEND=Agg
"$PY" stage1/gen_train_test.py --verify 16
"$PY" stage1/detector.py --phase train --log-interval 0
"$PY" stage1/detector.py --phase test
"$PY" stage1/detector.py --phase predict
# The last line: the test list's metrics (SPEC section 5) as JSON, from the library's evaluator.
"$PY" -m facial_keypoints evaluate --checkpoint stage1/trained_models/best.pt --list stage1/test.txt \
    --out stage1/trained_models/evaluate_test --no-progress
