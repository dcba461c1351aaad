#!/usr/bin/env bash
# Set up .venv and run the test suite (a few minutes on 2 CPU cores).
# Integration tests read the real data from $FKD_TEST_DATA (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup_venv.sh
export MPLBACKEND=Agg
exec "$PY" -m pytest -q "$@"
