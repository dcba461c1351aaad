"""Candidate face boxes on whole photos, from detectors whose weights ship inside installed packages.

Each detector returns boxes in *this data set's* convention (the labelled ``label.txt`` boxes), so
the stage-3 crop (the box expanded by the list's ratio) looks like the crops the model was trained on:

- ``yunet`` (the default where its wheel installs: CPython 3.10-3.11, x86-64 Linux): libfacedetection's
  YuNet from the ``yuface`` wheel, the model inside it (``runtime/yunet.py``);
- ``mtcnn`` (the default elsewhere): MTCNN's three small networks as ONNX files inside this package
  (facenet-pytorch's weights), run by ONNX Runtime (``runtime/mtcnn.py``). Its boxes are taller than
  ours and sit higher (they include the forehead); ``MTCNN_TO_LABEL`` maps them;
- ``haar``: OpenCV's bundled frontal-face Haar cascade, for comparison; it finds far fewer of this
  data set's faces (many are turned or tilted).

Thresholds are loose on purpose: the stage-3 classifier is the filter. None of them needs torch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# (centre shift x, centre shift y) as fractions of the detection's width/height, then (width, height) ratios.
MTCNN_TO_LABEL = (0.010, 0.091, 1.008, 0.782)
YUNET_TO_LABEL = (0.009, 0.106, 0.991, 0.776)  # fitted by benchmarks/detectors.py on training photos

# The smallest face a detector may be asked for: MTCNN's first network sees 12-pixel windows, so a
# smaller face means enlarging the photo itself, 12 times over at 1 px, and its memory with it.
MIN_FACE = 12


def adjust_boxes(boxes: np.ndarray, shift_x: float, shift_y: float, scale_w: float, scale_h: float) -> np.ndarray:
    """Move and resize (N, 4) boxes about their centres, in units of their own size."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + shift_x * w
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + shift_y * h
    half_w, half_h = scale_w * w / 2, scale_h * h / 2
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)


@dataclass
class Detections:
    boxes: np.ndarray   # (N, 4) x1 y1 x2 y2 in the detector input's pixels, label-box convention
    scores: np.ndarray  # (N,) the detector's own confidence


class MtcnnDetector:
    """MTCNN's three networks on ONNX Runtime (``runtime/mtcnn.py``; facenet-pytorch's weights, MIT,
    exported into the package by ``recipes/export_mtcnn.py``): no torch, on every platform."""

    to_label = MTCNN_TO_LABEL
    max_side = 1280  # photos are shrunk to this side first (detect_faces, below)

    def __init__(self, min_face: int = 40, thresholds=(0.5, 0.6, 0.6), threads: int | None = None):
        from facial_keypoints.runtime.mtcnn import Mtcnn
        self.net = Mtcnn(min_face, thresholds, threads)
        self.min_face = min_face

    def __call__(self, rgb: np.ndarray) -> Detections:
        if min(rgb.shape[:2]) < self.min_face:  # no face fits: an empty pyramid
            return Detections(np.zeros((0, 4)), np.zeros(0))
        boxes, scores = self.net(rgb)
        return Detections(adjust_boxes(boxes, *self.to_label), np.asarray(scores, dtype=np.float64))


class HaarDetector:
    to_label = (0.0, 0.0, 1.0, 1.0)  # its boxes are used as they are
    max_side = 1280

    def __init__(self, min_face: int = 40, threads: int | None = None):
        import cv2
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise ImportError(f"OpenCV's Haar cascade is missing ({path}); opencv-python-headless<5 ships it")
        self.min_face = min_face

    def __call__(self, rgb: np.ndarray) -> Detections:
        import cv2
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        found = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3,
                                              minSize=(self.min_face, self.min_face))
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in found], dtype=np.float64).reshape(-1, 4)
        return Detections(adjust_boxes(boxes, *self.to_label), np.ones(len(boxes)))


class YuNetDetector:
    """libfacedetection's YuNet from the ``yuface`` wheel, which carries the model (BSD licence;
    a dependency where its wheels exist: CPython 3.10 and 3.11 on x86-64 Linux). It is called through
    ``runtime/yunet.py``, since ``yuface.detect`` itself leaks 36 KB a call.

    YuNet has no image pyramid to bound with ``min_face``; ``detect_faces`` drops its boxes
    under half of ``min_face``, as small as MTCNN's reach (a full ``min_face`` cut lost 5 points of
    recall on the validation photos, benchmarks/detectors.py)."""

    to_label = YUNET_TO_LABEL

    def __init__(self, min_face: int = 40, threshold: float = 0.3, threads: int | None = None):
        from facial_keypoints.runtime.yunet import YuNet
        try:
            self.yunet = YuNet(threads)
        except ImportError:
            from facial_keypoints.errors import MissingExtra
            raise MissingExtra("the yunet face detector needs yuface (pip install yuface; wheels for CPython "
                               "3.10-3.11 on x86-64 Linux)") from None
        self.min_face, self.threshold = min_face, threshold

    # ``detect_faces`` shrinks larger photos to this side first. YuNet pads its input to
    # multiples of 32, and on the validation photos 416 px found as many faces after the face decision
    # as 640 px in half the time (benchmarks/detectors.py --yunet-max-side). libfacedetection is made
    # for images up to 960 px.
    max_side = 416

    def __call__(self, rgb: np.ndarray) -> Detections:
        import cv2
        # YuNet reads BGR; OpenCV swaps the channels in a hundredth of the time of a numpy copy
        bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
        faces = self.yunet(bgr)
        faces = faces[faces[:, 0] > self.threshold * 100]  # confidence in percent
        boxes = faces[:, 1:5].astype(np.float64)
        boxes[:, 2:] += boxes[:, :2]  # x y w h -> x1 y1 x2 y2
        scores = faces[:, 0].astype(np.float64) / 100.0
        return Detections(adjust_boxes(boxes, *self.to_label), scores)


def detect_faces(detector, image, max_side: int | None = None):
    """The detector's Detections on ``image`` (a PIL image or an RGB uint8 array), in ``image`` pixels.

    A detector is a callable from an RGB uint8 array to ``Detections``; its optional ``max_side``
    and ``min_face`` attributes are honoured. Photos larger than ``max_side`` (default: the
    detector's, else 1280) are shrunk first, by area averaging (PIL's box filter for a PIL image, the
    cheapest anti-aliased resize there; OpenCV's area resize for an array, a video frame, without a
    copy into PIL). Boxes under half of ``min_face`` in photo pixels are dropped.
    """
    pil = isinstance(image, Image.Image)
    width, height = image.size if pil else (image.shape[1], image.shape[0])
    scale = min(1.0, (max_side or getattr(detector, "max_side", 1280)) / max(width, height))
    size = (round(width * scale), round(height * scale))
    if scale == 1.0:
        small = np.asarray(image)
    elif pil:
        small = np.asarray(image.resize(size, Image.Resampling.BOX))
    else:
        import cv2
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    detections = detector(small)
    boxes = detections.boxes / scale
    keep = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= getattr(detector, "min_face", 0) / 2
    detections.boxes, detections.scores = boxes[keep], detections.scores[keep]
    return detections


FACE_DETECTORS = {"mtcnn": MtcnnDetector, "yunet": YuNetDetector, "haar": HaarDetector}


def default_face_detector() -> str:
    """``auto``'s choice: YuNet where its wheel is installed (it finds as many validation faces as MTCNN in
    less than half the time, benchmarks/detectors.py), else MTCNN, which runs everywhere."""
    import importlib.util
    return "yunet" if importlib.util.find_spec("yuface") is not None else "mtcnn"


def create_face_detector(name: str = "auto", **kwargs):
    """A detector by name: ``auto`` (``default_face_detector()``), ``yunet``, ``mtcnn`` or ``haar``."""
    name = default_face_detector() if name == "auto" else name
    if name not in FACE_DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose from auto, {', '.join(FACE_DETECTORS)}")
    detector = FACE_DETECTORS[name](**kwargs)
    detector.name = name
    return detector
