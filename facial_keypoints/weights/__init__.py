"""The model shipped inside the package, so predict and the Python API work with no data and no training.

``default.pt`` is a stage-3 model (keypoints + face/non-face; weights and config, no optimizer
state) and ``default.int8.onnx`` its int8 ONNX twin, stamped with the checkpoint's SHA-256.
recipes/README.md says how both are made.  No command writes into this folder.
"""
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "default.pt"
