"""Keypoints for boxes in a grayscale photo: cut, standardise, run the network once, map back.

One path that whole-photo predict, the Python API and the speed benchmarks share.  At
batch 1 a face costs well under a millisecond of network on one CPU thread, so what
happens around the network counts: the crop comes from the photo's uint8 array with
OpenCV (``images.crop_warped``: area reduction, then an affine warp), the batch is built
in NumPy, and an ONNX model gets NumPy arrays without a round trip through torch.
"""
from __future__ import annotations

import numpy as np

from .engine import model_outputs, softmax_face_probability
from .geometry import frame_to_image
from .images import crop_warped
from .keypoints import POINT_NAMES
from .transforms import crops_to_array


class KeypointRunner:
    """``runner(gray, crop_boxes)`` -> (points (N, 21, 2) in photo pixels, face probability (N,) or None).

    ``model`` is a torch module or a ``runtime.OnnxModel``; ``config`` the
    checkpoint's (input size, normalisation).  ``crop_boxes`` are the expanded
    boxes the network sees, in the pixels of ``gray`` ((H, W) uint8 array).
    """

    def __init__(self, model, config: dict):
        self.model, self.size = model, int(config["input_size"])
        self.normalize = bool(config.get("normalize", True))
        self.run_arrays = getattr(model, "run_arrays", None)  # ONNX: NumPy in, NumPy out

    def crops(self, gray: np.ndarray, crop_boxes) -> np.ndarray:
        """(N, 1, S, S) float32 network input for ``crop_boxes``."""
        return crops_to_array([crop_warped(gray, box, self.size) for box in crop_boxes], self.normalize)

    def network(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, 42) keypoints in the crop frame and (N, 2) logits (None for keypoint-only models)."""
        if self.run_arrays is not None:
            outputs = self.run_arrays(batch)
            return outputs[0], (outputs[1] if len(outputs) > 1 else None)
        import torch
        with torch.no_grad():
            keypoints, logits = model_outputs(self.model, torch.from_numpy(batch))
        return keypoints.float().numpy(), (None if logits is None else logits.float().numpy())

    def points_and_probability(self, batch: np.ndarray, crop_boxes: np.ndarray):
        """The network on ``batch`` (from ``crops``), its points mapped to the photo through ``crop_boxes``."""
        keypoints, logits = self.network(batch)
        points = frame_to_image(keypoints.reshape(len(batch), -1, 2), crop_boxes, self.size)
        return points, (None if logits is None else softmax_face_probability(logits))

    def __call__(self, gray: np.ndarray, crop_boxes) -> tuple[np.ndarray, np.ndarray | None]:
        crop_boxes = np.asarray(crop_boxes, dtype=np.float64).reshape(-1, 4)
        if len(crop_boxes) == 0:
            return np.zeros((0, len(POINT_NAMES), 2)), None
        return self.points_and_probability(self.crops(gray, crop_boxes), crop_boxes)
