"""Networks, chosen by name from one registry.

Every model maps a ``(N, 1, 112, 112)`` float image to ``(N, 42)`` keypoint
coordinates ``x0, y0, x1, y1, ...`` in the pixels of that 112x112 frame, so the
training loop, the metrics and the evaluator never need to know which it is.
"""
from __future__ import annotations

# Importing a family registers its networks; this module is the one to import for all of them.
from facial_keypoints.models import heatmap, regression, two_heads
from facial_keypoints.models.initialise import freeze, init_output, init_weights
from facial_keypoints.models.registry import MODELS, KeypointNet, count_parameters, create_model, register

__all__ = ["MODELS", "KeypointNet", "count_parameters", "create_model", "register", "freeze", "init_output",
           "init_weights", "heatmap", "regression", "two_heads"]
