"""How far to trust each point: the spread of its heatmap, and its distance from the photo's edge.

``point_confidence`` is the chance that a point lies within 10 % of the interocular distance of the
truth, read from the spread of its heatmap (the soft-argmax's distribution: a point the network is
unsure of spreads its map) through a logistic curve fitted on validation faces, times an edge factor.
The network only ever sees the photo (a crop is clipped to it), so a point of a face that runs off the
photo is put just inside the edge, where its map spreads, but not always enough: a point within
``EDGE_ZERO`` face sizes of the edge scores 0, rising to its spread's score ``EDGE_RAMP`` further in.
A face's ``quality`` is the mean of its 21 confidences. ``benchmarks/point_confidence.py --fit``
fits the constants on the validation split and reports how well they rank the errors.
"""
from __future__ import annotations

import numpy as np

from facial_keypoints.geometry import KEYPOINTS_TO_BOX

# logit of P(error <= 10 % interocular) = INTERCEPT + SLOPE * ln(spread / crop side), on validation faces
INTERCEPT, SLOPE = -16.61, -6.44
EDGE_ZERO, EDGE_RAMP = 0.03, 0.15  # in face sizes (the square root of the keypoints' box area)
BOX_AREA = KEYPOINTS_TO_BOX[2] * KEYPOINTS_TO_BOX[3]  # the keypoints' box over their extent, in area


def point_confidence(spread: np.ndarray, points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 21) float32 in [0, 1] from the spreads (N, 21, a share of the crop's side) and the points
    (N, 21, 2) in the pixels of a ``width`` x ``height`` photo. A few NumPy calls on the whole batch:
    it runs on every face of every frame, beside a network pass of half a millisecond."""
    spread = np.asarray(spread, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64).reshape(len(spread), -1, 2)
    if len(spread) == 0:
        return np.zeros(spread.shape, dtype=np.float32)
    logit = np.clip(INTERCEPT + SLOPE * np.log(np.maximum(spread, 1e-6)), -50.0, 50.0)
    return (edge_factor(points, width, height) / (1.0 + np.exp(-logit))).astype(np.float32)


def edge_factor(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 21): 0 for points within ``EDGE_ZERO`` face sizes of the photo's edge (or outside it, or not
    finite), 1 from ``EDGE_ZERO + EDGE_RAMP`` inwards, linear between. A face's size is the square root
    of the area of its keypoints' box (``geometry.box_from_keypoints``)."""
    extent = points.max(axis=1) - points.min(axis=1)  # (N, 2)
    size = np.sqrt(np.maximum(extent[:, 0] * extent[:, 1] * BOX_AREA, 1e-12))[:, None]
    x, y = points[..., 0], points[..., 1]
    inside = np.minimum(np.minimum(x, width - x), np.minimum(y, height - y)) / size
    factor = np.clip((inside - EDGE_ZERO) / EDGE_RAMP, 0.0, 1.0)
    factor[~(factor >= 0.0)] = 0.0  # nan: a point (or face) that is not finite
    return factor


def face_quality(confidence) -> float:
    """A face's quality: the mean of its points' confidences (low where it is likely to have failed)."""
    return float(np.mean(confidence)) if confidence is not None and len(confidence) else float("nan")
