"""The models shipped inside the package, so predict and evaluate work with no data and no training.

``default.pt`` is the stage-3 model (keypoints + face/non-face) chosen in
stage3/README.md; how it was trained and how to retrain it is written there.
Since session 18 it is a fast student (``thin_deep48_heatmap``) whose config names
``referee.pt`` -- the default of sessions 7-17 (``compact_heatmap``) -- as the judge of
the crops it is unsure of (``facial_keypoints.referee``).  ``referee.pt`` is also the
teacher the students were distilled from.  ``fast.pt`` is the small alternative.
Each file holds only the weights and config (no optimizer state).
"""
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "default.pt"
REFEREE_CHECKPOINT = WEIGHTS_DIR / "referee.pt"
