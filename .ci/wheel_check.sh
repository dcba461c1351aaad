#!/usr/bin/env bash
# The package as a user gets it: build the wheel, install it into a fresh virtual environment,
# then, from outside the source tree, run `facial-keypoints predict` and the README's API example.
# Usage: bash .ci/wheel_check.sh PHOTO   (run from the repository root, after scripts/setup_venv.sh)
set -euo pipefail
photo="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
repo="$(pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"${PY:-.venv/bin/python}" -m pip wheel --no-deps --disable-pip-version-check -q -w "$work/dist" .
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$work"/dist/*.whl
cd "$work"
cp "$photo" photo.jpg
"$work/venv/bin/facial-keypoints" predict photo.jpg --out o/
"$work/venv/bin/python" - "$repo/README.md" <<'PY'
import json, re, sys
readme = open(sys.argv[1]).read()
example = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", readme, re.S).group(1)
exec(compile(example, "README.md (API example)", "exec"))
from facial_keypoints import FaceLandmarker
record = json.load(open("o/photo.json"))
faces = FaceLandmarker().detect("photo.jpg")
assert record["faces"] == [f.as_json() for f in faces], "predict's JSON and the API disagree"
assert faces, "no face found in the check photo"
print(f"wheel check: {len(faces)} face(s); predict and the API agree")
PY
