#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install requirements.txt into it.
# Usage: source scripts/setup_venv.sh   (sets $PY to the venv's python)
set -euo pipefail
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt
PY="$VENV/bin/python"
export PY
