"""Keypoints on whole photos: face detector -> crops -> one network (keypoints + face/non-face) -> faces.

``PhotoPredictor`` holds the pieces; ``predict_photo`` returns one photo's
result as plain data, with the time each step took (decode is the caller's).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from PIL import Image

from facial_keypoints.geometry import BoxError, box_from_keypoints, expand_box
from facial_keypoints.output_schema import SCHEMA
from facial_keypoints.runtime.confidence import face_quality, point_confidence
from facial_keypoints.runtime.face_detectors import detect_faces
from facial_keypoints.data.images import open_photo
from facial_keypoints.runtime.keypoint_runner import KeypointRunner
from facial_keypoints.keypoints import POINT_NAMES

@dataclass
class Face:
    """One face in a photo; every coordinate is in the photo's own pixels."""

    box: np.ndarray          # (4,) float: x1 y1 x2 y2, the face box (the labels' convention)
    score: float             # the network's face probability (the detector's score for keypoint-only models)
    keypoints: np.ndarray    # (21, 2) float32, in the order of keypoints.POINT_NAMES
    detector_score: float    # the face detector's own confidence in the candidate
    crop_box: np.ndarray     # (4,) the expanded box the network saw
    is_face: bool = True     # score >= the face threshold (False: a rejected candidate)
    point_confidence: np.ndarray | None = None  # (21,) float32 in [0, 1] (runtime.confidence); None without heatmaps
    image_size: tuple[int, int] | None = None    # the photo's (width, height): the camera ``pose`` assumes
    _pose: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def quality(self) -> float | None:
        """The mean of the points' confidences: low for a face that is likely to have failed."""
        return None if self.point_confidence is None else face_quality(self.point_confidence)

    @property
    def pose(self) -> np.ndarray | None:
        """(3,) float32 yaw, pitch, roll in degrees (``pose.head_pose``: its signs; nan where no pose fits),
        worked out on first use (a third of a millisecond); None where the photo's size is not known."""
        if self._pose is None and self.image_size is not None:
            from facial_keypoints.pose import head_pose
            self._pose = head_pose(self.keypoints, *self.image_size).astype(np.float32)
        return self._pose

    def box_json(self) -> dict:
        """The box and the two scores: all a rejected candidate's record holds (no pose or confidence is
        worked out for what is not a face)."""
        return {"box": [round(float(v), 1) for v in self.box],
                "score": round(self.score, 4),
                "detector_score": round(self.detector_score, 4)}

    def as_json(self) -> dict:
        record = {**self.box_json(),
                  "keypoints": {name: [round(float(x), 1), round(float(y), 1)]
                                for name, (x, y) in zip(POINT_NAMES, self.keypoints)}}
        if self.point_confidence is not None:
            record["quality"] = round(self.quality, 3)
            record["point_confidence"] = {name: round(float(c), 3)
                                          for name, c in zip(POINT_NAMES, self.point_confidence)}
        if self.pose is not None:
            record["pose"] = {name: round(float(v), 1) if np.isfinite(v) else None
                              for name, v in zip(("yaw", "pitch", "roll"), self.pose)}
        return record


@dataclass
class PhotoResult:
    width: int
    height: int
    faces: list[Face] = field(default_factory=list)
    timings_ms: dict = field(default_factory=dict)

    @property
    def accepted(self) -> list[Face]:
        return [f for f in self.faces if f.is_face]

    def as_json(self, image: str, model: str, detector: str) -> dict:
        """The record ``predict`` writes for a photo (docs/output.md, ``output_schema.json``)."""
        return {"image": image, "width": self.width, "height": self.height, "model": model, "detector": detector,
                "faces": [f.as_json() for f in self.accepted],
                "rejected": [f.box_json() for f in self.faces if not f.is_face],
                "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
                "schema": SCHEMA}


def face_threshold_of(config: dict) -> float:
    """The face-probability cut a checkpoint stores (``config["face_threshold"]``), else 0.5."""
    return float(config.get("face_threshold", 0.5))


class BoxRun(NamedTuple):
    """One network pass over candidate boxes, in the photo's pixels."""

    kept: np.ndarray                # (M,) indices of the boxes that could be cropped
    crop_boxes: np.ndarray          # (M, 4) the expanded boxes the network saw
    points: np.ndarray              # (M, 21, 2)
    face_prob: np.ndarray | None    # (M,) face probability; None for a keypoint-only network
    confidence: np.ndarray | None = None  # (M, 21) each point's confidence; None for a network without heatmaps


class PhotoPredictor:
    """Candidate boxes from ``face_detector``, kept where the network's face probability >= ``face_threshold``
    (default: the checkpoint's ``face_threshold``, else 0.5).

    ``model`` is a torch module or a ``runtime.loading.OnnxModel``; ``config`` the
    checkpoint's (input size, expansion ratio, normalisation).  Photos larger
    than ``detect_max_side`` (None: the detector's own) are shrunk for the detector only; crops always come
    from the full-resolution photo.
    """

    def __init__(self, model, config: dict, face_detector, face_threshold: float | None = None,
                 detect_max_side: int | None = None, refine: bool = True):
        self.model, self.config, self.face_detector = model, config, face_detector
        self.runner = KeypointRunner(model, config)
        self.face_threshold = face_threshold if face_threshold is not None else face_threshold_of(config)
        self.detect_max_side = detect_max_side
        self.refine = refine

    def predict_photo(self, image: Image.Image) -> PhotoResult:
        """Detect, then crop and run the network on every candidate.

        With ``refine`` (the default) each candidate is cropped a second time, from
        the box its first keypoints imply (``geometry.box_from_keypoints``), and run
        again: the detector frames faces its own way (and turned faces badly), while
        the network was trained on crops of the labelled boxes (benchmarks/validation.py
        reports the validation photos' recall with and without it).
        """
        width, height = image.size
        result = PhotoResult(width, height)
        timings = result.timings_ms

        started = time.perf_counter()
        detections = detect_faces(self.face_detector, image, self.detect_max_side)
        timings["detector"] = (time.perf_counter() - started) * 1e3

        started = time.perf_counter()
        gray = np.asarray(image.convert("L"))
        timings["crops"] = (time.perf_counter() - started) * 1e3  # grayscale for the crops; run_boxes adds the cutting
        result.faces = self.faces_in_boxes(gray, detections.boxes, detections.scores, timings)
        return result

    def faces_in_boxes(self, gray: np.ndarray, boxes: np.ndarray, scores: np.ndarray, timings: dict) -> list[Face]:
        """A ``Face`` (accepted or not) for each detector box of ``gray`` that can be cropped: the network on
        its crop, and with ``refine`` once more on the crop of its first keypoints' box."""
        run = self.run_boxes(gray, boxes, timings)
        boxes, scores = boxes[run.kept], scores[run.kept]
        if self.refine and len(boxes):
            boxes = box_from_keypoints(run.points)
            run = self.run_boxes(gray, boxes, timings)
            boxes, scores = boxes[run.kept], scores[run.kept]
        face_prob = run.face_prob if run.face_prob is not None else scores  # keypoints only: the detector decides
        confidence = run.confidence if run.confidence is not None else [None] * len(boxes)
        size = (gray.shape[1], gray.shape[0])
        return [Face(boxes[i], float(face_prob[i]), run.points[i].astype(np.float32), float(scores[i]),
                     run.crop_boxes[i], bool(face_prob[i] >= self.face_threshold), confidence[i], size)
                for i in range(len(boxes))]

    def run_boxes(self, gray: np.ndarray, boxes: np.ndarray, timings: dict) -> "BoxRun":
        """The crops of ``boxes`` through the network (``BoxRun``); boxes off the photo are left out."""
        started = time.perf_counter()
        height, width = gray.shape
        kept, crop_boxes = [], []
        for n, box in enumerate(boxes):
            try:
                crop_box = expand_box(box, self.config["expand_ratio"], width, height)
            except BoxError:
                continue  # a box wholly outside the photo
            if crop_box[2] - crop_box[0] < 2 or crop_box[3] - crop_box[1] < 2:
                continue
            kept.append(n)
            crop_boxes.append(crop_box)
        crop_boxes = np.array(crop_boxes, dtype=np.float64).reshape(-1, 4)
        batch = self.runner.crops(gray, crop_boxes) if len(crop_boxes) else None
        timings["crops"] = timings.get("crops", 0.0) + (time.perf_counter() - started) * 1e3

        started = time.perf_counter()
        points, face_prob, confidence = np.zeros((0, len(POINT_NAMES), 2)), None, None
        if batch is not None:
            points, face_prob, spread = self.runner.points_and_probability(batch, crop_boxes)
            confidence = None if spread is None else point_confidence(spread, points, width, height)
        timings["network"] = timings.get("network", 0.0) + (time.perf_counter() - started) * 1e3
        return BoxRun(np.array(kept, dtype=int), crop_boxes, points, face_prob, confidence)

    def predict_file(self, path) -> tuple[Image.Image, PhotoResult]:
        """Read ``path`` (``open_photo``; ImageError if it cannot) and predict; timings start with the decode."""
        started = time.perf_counter()
        image = open_photo(path)
        decode_ms = (time.perf_counter() - started) * 1e3
        result = self.predict_photo(image)
        result.timings_ms = {"decode": decode_ms, **result.timings_ms}
        return image, result
