"""What a keypoint network gives, by name: the one place that knows its outputs.

Every network takes an (N, 1, S, S) batch of standardised grayscale crops. A keypoint-only
network (the course's, ``stage1``) returns its keypoints alone; a two-headed one returns a
``KeypointOutput``. ``KeypointOutput.of`` reads either, and the ONNX files name their outputs
after its fields (``OUTPUT_NAMES``), so export, the runtimes, evaluation and training read fields,
never positions. A new output is one field here and one head that fills it.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class KeypointOutput(NamedTuple):
    """A batch's outputs, as torch tensors or NumPy arrays.

    ``keypoints``: (N, 42), x and y of the 21 points in the crop's pixels (x0 y0 x1 y1 ...).
    ``face_logits``: (N, 2), non-face and face logits; None for a keypoint-only network.
    """

    keypoints: Any
    face_logits: Any = None

    @classmethod
    def of(cls, raw) -> "KeypointOutput":
        """A network's result by name: a KeypointOutput as it is, a bare tensor as the keypoints."""
        if isinstance(raw, cls):
            return raw
        if isinstance(raw, (tuple, list)):
            return cls(*raw)
        return cls(raw)

    @classmethod
    def from_named(cls, named: dict) -> "KeypointOutput":
        """From {output name: value}, as an ONNX session gives them."""
        return cls(**{name: named[name] for name in OUTPUT_NAMES if name in named})

    def names(self) -> list[str]:
        """The names of the outputs present (an ONNX graph's output names)."""
        return [name for name, value in zip(self._fields, self) if value is not None]


OUTPUT_NAMES = KeypointOutput._fields


def face_probability(logits) -> np.ndarray:
    """(N, 2) face/non-face logits -> (N,) probability of "face" (a stable two-class softmax)."""
    logits = np.asarray(logits, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))
