#!/usr/bin/env bash
# The package as a user gets it: build the wheel, install it WITHOUT extras into a fresh virtual
# environment (no torch may come with it), then, from outside the source tree, run
# `facial-keypoints predict` and the README's API example, and check that the light install writes
# the same faces as the full one (same model, same detector).
# Usage: bash .ci/wheel_check.sh PHOTO   (run from the repository root, after scripts/setup_venv.sh)
set -euo pipefail
photo="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
repo="$(pwd)"
full="$repo/.venv/bin/facial-keypoints"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"${PY:-.venv/bin/python}" -m pip wheel --no-deps --disable-pip-version-check -q -w "$work/dist" .
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$work"/dist/*.whl
"$work/venv/bin/python" -c "import importlib.util, sys; sys.exit('torch came with the light install' if importlib.util.find_spec('torch') else 0)"
echo "wheel check: the light install takes $(du -sm "$work/venv" | cut -f1) MB"
cd "$work"
cp "$photo" photo.jpg
"$work/venv/bin/facial-keypoints" predict photo.jpg --out light/
"$full" predict photo.jpg --out full/
"$work/venv/bin/facial-keypoints" predict photo.jpg --detector mtcnn --out mtcnn/   # the detector of every platform
if "$work/venv/bin/facial-keypoints" train --help > train.txt 2>&1; then echo "train ran without torch"; exit 1; fi
grep -q "facial_keypoints\[train\]" train.txt
"$work/venv/bin/python" - "$repo/README.md" <<'PY'
import json, re, sys
readme = open(sys.argv[1]).read()
example = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", readme, re.S).group(1)
exec(compile(example, "README.md (API example)", "exec"))
from facial_keypoints import FaceLandmarker
light, full = json.load(open("light/photo.json")), json.load(open("full/photo.json"))
faces = FaceLandmarker().detect("photo.jpg")
assert light["faces"] == [f.as_json() for f in faces], "predict's JSON and the API disagree"
assert light["faces"] == full["faces"] and light["detector"] == full["detector"], "light and full installs disagree"
assert faces and "torch" not in sys.modules, "no face found, or torch imported"
assert json.load(open("mtcnn/photo.json"))["faces"], "MTCNN on ONNX Runtime found no face"
print(f"wheel check: {len(faces)} face(s); predict and the API agree, and the light install matches the full one")
PY
