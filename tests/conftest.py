"""Shared fixtures: synthetic photos with known keypoints, and the real data (a small slice)."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facial_keypoints.models.heatmap import CompactHeatmap

from facial_keypoints.models.networks import register

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("FKD_TEST_DATA", REPO.parent / "shared" / "data")).resolve()


# Small networks that keep the tests fast, and narrower copies of the compact model that exercise
# recipes/change_backbone.py; registered for the tests only (the package's registry holds the models
# a stage, the stage-2 ablation or the shipped model needs).
@register("test_small_heatmap")
class SmallHeatmap(CompactHeatmap):
    def __init__(self, input_size: int = 112):
        super().__init__(input_size, width=16, blocks=(1, 1, 1), stem=8)


@register("test_tiny_heatmap")
class TinyHeatmap(CompactHeatmap):
    def __init__(self, input_size: int = 112):
        super().__init__(input_size, width=16, blocks=(0, 1, 1), stem=8)


@register("test_slim_heatmap")
class SlimHeatmap(CompactHeatmap):  # 16 of 32 channels at 28x28: one channel subset shared by every layer there
    def __init__(self, input_size: int = 112):
        super().__init__(input_size, fine_width=16)


@register("test_thin_heatmap")
class ThinHeatmap(CompactHeatmap):  # narrower block insides at 28x28 and 14x14: each block keeps its own subset
    def __init__(self, input_size: int = 112):
        super().__init__(input_size, inner=(16, 32, None))


@register("test_lean_heatmap")
class LeanHeatmap(CompactHeatmap):  # one residual block fewer at 28x28
    def __init__(self, input_size: int = 112):
        super().__init__(input_size, blocks=(1, 2, 2))


def load_script(stage, name):
    """A stage folder's script as a module (its folder on sys.path, for the script's own imports)."""
    spec = importlib.util.spec_from_file_location(f"{stage}_{name}", REPO / stage / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / stage))
    spec.loader.exec_module(module)
    return module


def keypoints_in_box(box, rng) -> np.ndarray:
    """21 random points well inside ``box`` (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = box
    xs = rng.uniform(x1 + 0.15 * (x2 - x1), x2 - 0.15 * (x2 - x1), 21)
    ys = rng.uniform(y1 + 0.15 * (y2 - y1), y2 - 0.15 * (y2 - y1), 21)
    # Outer eye corners far enough apart for nme_io.
    xs[6], xs[9] = x1 + 0.25 * (x2 - x1), x1 + 0.75 * (x2 - x1)
    return np.stack([xs, ys], axis=1)


def label_line(name, box, keypoints) -> str:
    return " ".join([name] + [f"{v:.3f}" for v in box] + [f"{v:.3f}" for v in np.asarray(keypoints).reshape(-1)])


@pytest.fixture
def synthetic_root(tmp_path):
    """A data root with two folders of photos; every face has one bright dot, at its point 0.

    Returns (root, faces) where faces is a list of (relative image path, box, keypoints).
    """
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    faces = []
    for folder, count in (("I", 6), ("II", 4)):
        (root / folder).mkdir(parents=True)
        lines = []
        for n in range(count):
            width, height = int(rng.integers(200, 400)), int(rng.integers(200, 400))
            pixels = np.full((height, width, 3), 40, np.uint8)
            size = float(rng.uniform(60, 120))
            x1, y1 = float(rng.uniform(20, width - size - 20)), float(rng.uniform(20, height - size - 20))
            box = (x1, y1, x1 + size, y1 + size)
            points = keypoints_in_box(box, rng)
            # A 4x4 white square centred on point 0 (coordinates are continuous: pixel i spans [i, i+1)).
            cx, cy = int(round(points[0, 0])), int(round(points[0, 1]))
            pixels[cy - 2:cy + 2, cx - 2:cx + 2] = 255
            points[0] = (cx, cy)
            name = f"{folder.lower()}{n:03d}.png"
            Image.fromarray(pixels).save(root / folder / name)
            lines.append(label_line(name, box, points))
            faces.append((f"{folder}/{name}", np.array(box), points))
        (root / folder / "label.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())  # CRLF like the data
    return root, faces


@pytest.fixture(scope="session")
def real_root():
    if not (REAL_DATA / "I" / "label.txt").is_file():
        message = f"real data not found at {REAL_DATA} (set FKD_TEST_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must not pass by skipping the tests that read the real data
        pytest.skip(message)
    return REAL_DATA


def linked_photos(real_root, folder: Path, count: int) -> Path:
    """``folder`` holding links to the first ``count`` photos of the real data's folder II."""
    folder.mkdir()
    for source in sorted((real_root / "II").glob("*.jpg"))[:count]:
        os.symlink(source, folder / source.name)
    return folder
