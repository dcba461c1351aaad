"""The library's layout: its import graph has no circles, and the inference side needs no torch.

The graph is read from the source (every ``import``, at the top of a module or inside a function),
so a circle or a heavy import cannot hide behind a lazy import.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "facial_keypoints"
# What runs photos and video from an ONNX model: none of it may import torch or the training code.
INFERENCE = ["facial_keypoints", "facial_keypoints.api", "facial_keypoints.runtime.loading",
             "facial_keypoints.runtime.photos", "facial_keypoints.runtime.keypoint_runner",
             "facial_keypoints.runtime.face_detectors", "facial_keypoints.video.frames",
             "facial_keypoints.video.tracking", "facial_keypoints.video.annotate", "facial_keypoints.video.smoothing",
             "facial_keypoints.bulk.jsonl", "facial_keypoints.bulk.workers", "facial_keypoints.cli",
             "facial_keypoints.cli.parser", "facial_keypoints.cli.predict", "facial_keypoints.cli.outputs"]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The modules ``path`` imports (absolute names), at its top level only or anywhere in it."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def graph(top_level_only: bool = False) -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports(path, top_level_only) if m in modules and m != name}
            for name, path in modules.items()}


def test_no_module_of_the_library_imports_itself_back():
    edges = graph()
    done, stack, circles = set(), [], []

    def visit(module):
        if module in stack:
            circles.append(stack[stack.index(module):] + [module])
            return
        if module in done:
            return
        stack.append(module)
        for target in sorted(edges[module]):
            visit(target)
        stack.pop()
        done.add(module)

    for module in sorted(edges):
        visit(module)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_inference_side_imports_neither_torch_nor_training_at_module_level():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    for start in INFERENCE:
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            names = imports(modules[module], top_level_only=True)
            heavy = sorted(n for n in names if n.split(".")[0] in ("torch", "torchvision", "onnx", "matplotlib")
                           or n.startswith(("facial_keypoints.training", "facial_keypoints.models")))
            assert not heavy, f"{start} imports {heavy} through {module}"
            todo += [n for n in names if n in modules]


def test_photos_and_video_from_the_shipped_model_load_no_torch(real_root):
    script = f"""
import sys
import numpy as np
from PIL import Image
from facial_keypoints import FaceLandmarker
landmarker = FaceLandmarker(threads=1)
photo = {str(real_root / "II" / "004002.jpg")!r}
assert len(landmarker.detect(photo)) == 1
tracker = landmarker.track()
frame = np.asarray(Image.open(photo).convert("RGB"))
for n in range(3):
    tracker.update(frame, n / 30)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "onnx", "matplotlib")
               or m.startswith(("facial_keypoints.training", "facial_keypoints.models")))
print(landmarker.backend, heavy)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "onnx-int8 []", out.stdout + out.stderr


MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_COMPLEXITY = 300, 60, 15


def test_modules_and_functions_stay_small():
    """No module over 300 lines; no function over 60 lines or over cyclomatic complexity 15 (radon)."""
    from radon.complexity import cc_visit
    too_big = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        where = path.relative_to(REPO)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"{where}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{where}:{node.lineno} {node.name}: {length} lines")
        functions = [f for block in cc_visit(text) for f in getattr(block, "methods", None) or [block]]
        too_big += [f"{where}:{f.lineno} {f.name}: complexity {f.complexity}"
                    for f in functions if f.complexity > MAX_COMPLEXITY]
    assert not too_big, "\n".join(too_big)


def test_commands_that_need_torch_name_the_train_extra_where_it_is_missing(monkeypatch, capsys, tmp_path):
    import importlib.util

    from facial_keypoints.cli import main as cli
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name.split(".")[0] == "torch" else real(name, *rest))
    for command in (["train", "--train-list", "x", "--save-directory", str(tmp_path)],
                    ["evaluate", "--data", str(tmp_path)], ["export"], ["quantize", "--list", "x"],
                    ["pack", "--list", "x", "--out", str(tmp_path / "p.npz")]):
        assert cli(command) == 2, command
        err = capsys.readouterr().err
        assert "pip install 'facial_keypoints[train]'" in err and "Traceback" not in err, err
