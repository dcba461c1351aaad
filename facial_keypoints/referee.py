"""A referee for the face decision: a fast student's keypoints and sure decisions, and a second model's
decision on the crops the student is unsure of.

Pruned students keep the default's keypoints but not quite its face decision on borderline faces
(sessions 13-16, stage3/README.md).  With the default as referee on the crops whose student face
probability lies inside ``REFEREE_BAND``, the decision there is the default's.  Session 16's band,
(0.1, 0.9), still left the student some decisions of its own: on the validation hard pool C6 with
it decided 2 faces wrong that the default decides right (and 2 the other way), and C6R, tested in
session 17, missed one test face more than the default.  At (0.01, 0.99) -- the mirror look's
band, so every crop that look would hear is the referee's -- C6's cascade decided every crop of
every validation pool as the default does (``scripts/referee_band.py``), with the referee asked on
2 % of list-like faces, 9 % of the hard pool's faces and 7 % of non-faces.

Since session 18 the shipped default is such a pair: C9R (a ``thin_deep48_heatmap`` student) names
``referee.pt``, the default of sessions 7-17 ("the default" above), which lies beside it in
``facial_keypoints/weights``.

A checkpoint names its referee in ``config["referee"]``: ``{"checkpoint": FILE, "band": [lo, hi]}``,
FILE relative to the checkpoint's folder; ``export.load_backend`` loads both with the same backend.
Keypoints are always the student's.
"""
from __future__ import annotations

import numpy as np
import torch

from .engine import model_outputs
from .face_decision import unsure_rows

REFEREE_BAND = (0.01, 0.99)  # checkpoints made before session 17 name their band, (0.1, 0.9)


def unpaired(config: dict) -> dict:
    """``config`` without its referee: for a checkpoint whose network changes (a finetune, another backbone),
    which must decide alone until ``scripts/attach_referee.py`` pairs it again."""
    return {key: value for key, value in config.items() if key != "referee"}


def checked_band(band) -> tuple[float, float]:
    """``band`` as (low, high) floats, or a ValueError where it is not 0 <= low < high <= 1."""
    low, high = (float(b) for b in band)
    if not 0 <= low < high <= 1:
        raise ValueError(f"a referee band needs 0 <= low < high <= 1, not ({low:g}, {high:g})")
    return low, high


class Refereed:
    """Callable like the student (a torch module or ``export.OnnxModel``) on a (N, 1, H, W) batch."""

    def __init__(self, student, referee, band=REFEREE_BAND):
        self.student, self.referee, self.band = student, referee, checked_band(band)
        self.asked = 0  # crops the referee decided (the share is what it costs)
        if hasattr(student, "run_arrays") and hasattr(referee, "run_arrays"):
            self.run_arrays = self._run_arrays  # inference.KeypointRunner's NumPy path

    def eval(self):
        self.student.eval()
        self.referee.eval()
        return self

    def to(self, device):
        self.student = self.student.to(device)
        self.referee = self.referee.to(device)
        return self

    def __call__(self, images: torch.Tensor):
        keypoints, logits = model_outputs(self.student, images)
        rows = unsure_rows(logits.detach().float().cpu().numpy(), self.band)  # the mirror look's test, another band
        if len(rows):
            self.asked += len(rows)
            index = torch.from_numpy(rows).to(logits.device)
            logits = logits.clone()
            logits[index] = model_outputs(self.referee, images[index])[1].to(logits.dtype)
        return keypoints, logits

    def _run_arrays(self, images: np.ndarray) -> list[np.ndarray]:
        keypoints, logits = self.student.run_arrays(images)
        rows = unsure_rows(logits, self.band)
        if len(rows):
            self.asked += len(rows)
            logits = logits.copy()
            logits[rows] = self.referee.run_arrays(np.ascontiguousarray(images[rows]))[1]
        return [keypoints, logits]
