"""What a keypoint network gives, by name: the one place that knows its outputs.

Every network takes an (N, 1, S, S) batch of standardised grayscale crops. A keypoint-only
network (the course's, ``stage1``) returns its keypoints alone; a two-headed one returns a
``KeypointOutput``. ``KeypointOutput.of`` reads either, so evaluation and training read fields, never
positions. Inference reads an ``InferenceOutput``, which adds what only inference needs (each point's
spread); the ONNX files name their outputs after its fields (``OUTPUT_NAMES``). A new output is one
field here and one head that fills it.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class KeypointOutput(NamedTuple):
    """A batch's outputs as a network trains on them, as torch tensors or NumPy arrays.

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
        if isinstance(raw, InferenceOutput):
            return cls(raw.keypoints, raw.face_logits)
        if isinstance(raw, (tuple, list)):
            return cls(*raw)
        return cls(raw)

    def names(self) -> list[str]:
        """The names of the outputs present."""
        return [name for name, value in zip(self._fields, self) if value is not None]


class InferenceOutput(NamedTuple):
    """What inference reads: ``KeypointOutput``'s fields, and ``point_spread``, (N, 21) how widely each
    point's heatmap spreads, in crop pixels (heatmap networks, as exported and as the torch backend runs
    them: ``models.two_heads.for_inference``). The ONNX files name their outputs after these fields."""

    keypoints: Any
    face_logits: Any = None
    point_spread: Any = None

    @classmethod
    def of(cls, raw) -> "InferenceOutput":
        """A network's result by name, the fields it lacks None."""
        return raw if isinstance(raw, cls) else cls(*KeypointOutput.of(raw))

    @classmethod
    def from_named(cls, named: dict) -> "InferenceOutput":
        """From {output name: value}, as an ONNX session gives them."""
        return cls(**{name: named[name] for name in OUTPUT_NAMES if name in named})

    def names(self) -> list[str]:
        """The names of the outputs present (an ONNX graph's output names)."""
        return [name for name, value in zip(self._fields, self) if value is not None]


OUTPUT_NAMES = InferenceOutput._fields


def face_probability(logits) -> np.ndarray:
    """(N, 2) face/non-face logits -> (N,) probability of "face" (a stable two-class softmax)."""
    logits = np.asarray(logits, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))
