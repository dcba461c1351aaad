"""The models shipped inside the package, so predict and evaluate work with no data and no training.

``default.pt`` is the stage-3 model (keypoints + face/non-face) chosen in
stage3/README.md; how it was trained and how to retrain it is written there.
Each file holds only the weights and config (no optimizer state).
"""
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "default.pt"
