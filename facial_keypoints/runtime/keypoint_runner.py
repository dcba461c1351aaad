"""Keypoints for boxes in a grayscale photo: cut, standardise, run the network once, map back.

One path that whole-photo predict, the Python API and the speed benchmarks share.  At
batch 1 a face costs well under a millisecond of network on one CPU thread, so what
happens around the network counts: the crop comes from the photo's uint8 array with
OpenCV (``data.images.crop_warped``: area reduction, then an affine warp), the batch is built
in NumPy, and an ONNX model gets NumPy arrays without a round trip through torch.
"""
from __future__ import annotations

import numpy as np

from facial_keypoints.geometry import frame_to_image
from facial_keypoints.data.images import crop_warped
from facial_keypoints.keypoints import POINT_NAMES
from facial_keypoints.outputs import InferenceOutput, face_probability
from facial_keypoints.data.transforms import crops_to_array


class KeypointRunner:
    """``runner(gray, crop_boxes)`` -> (points (N, 21, 2) in photo pixels, face probability (N,) or None).

    ``model`` is a torch module or a ``runtime.loading.OnnxModel``; ``config`` the
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

    def network(self, batch: np.ndarray) -> InferenceOutput:
        """The network's outputs for ``batch`` as NumPy arrays: keypoints (N, 42) in the crop frame, face
        logits (N, 2) or None."""
        if self.run_arrays is not None:
            return self.run_arrays(batch)
        import torch
        weight = next(iter(self.model.parameters()), None)
        device = weight.device if weight is not None else "cpu"
        with torch.no_grad():
            out = InferenceOutput.of(self.model(torch.from_numpy(batch).to(device)))
        return InferenceOutput(*(None if value is None else value.float().cpu().numpy() for value in out))

    def points_and_probability(self, batch: np.ndarray, crop_boxes: np.ndarray):
        """The network on ``batch`` (from ``crops``): its points mapped to the photo through ``crop_boxes``,
        the face probability (None for a keypoint-only network) and each point's spread as a share of
        the crop (None for a network without heatmaps)."""
        out = self.network(batch)
        points = frame_to_image(out.keypoints.reshape(len(batch), -1, 2), crop_boxes, self.size)
        probability = None if out.face_logits is None else face_probability(out.face_logits)
        return points, probability, None if out.point_spread is None else out.point_spread / self.size

    def __call__(self, gray: np.ndarray, crop_boxes) -> tuple[np.ndarray, np.ndarray | None]:
        crop_boxes = np.asarray(crop_boxes, dtype=np.float64).reshape(-1, 4)
        if len(crop_boxes) == 0:
            return np.zeros((0, len(POINT_NAMES), 2)), None
        return self.points_and_probability(self.crops(gray, crop_boxes), crop_boxes)[:2]
