"""Keypoints on whole photos: detector -> crops -> one network (keypoints + face/non-face) -> JSON and a drawing.

``PhotoPredictor`` holds the pieces; ``predict_photo`` returns one photo's
result as plain data, with the time each step took (decode is the caller's).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .atomic import atomic_output
from .geometry import BoxError, box_from_keypoints, expand_box
from .face_detection import detect_faces
from .images import open_photo
from .inference import KeypointRunner
from .keypoints import POINT_NAMES
from .plots import draw_points
from .video import VIDEO_SUFFIXES, csv_header, is_video

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


def find_photos(paths, skip=None) -> list[Path]:
    """The photos and videos among ``paths``: files as given, folders searched recursively (sorted).

    Inside folders, nothing under ``skip`` (predict's output folder) is taken: a second run
    never reads the first one's drawings as photos.
    """
    skip = Path(skip).resolve() if skip is not None else None
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES
                            and not (skip is not None and p.resolve().is_relative_to(skip)))
        else:
            found.append(path)  # a missing or unreadable file is reported when it is opened
    return found


PHOTO_OUTPUTS = (".json", ".jpg")            # what predict writes for a photo
VIDEO_OUTPUTS = (".jsonl", ".mp4", ".csv")    # and for a video or a camera


def output_stems(photos, out_dir) -> list[str]:
    """The output name of each photo or video (``STEM.json`` and ``STEM.jpg``, or ``STEM.jsonl``,
    ``STEM.mp4`` and ``STEM.csv``, in ``out_dir``): its own stem, with ``_`` added while it is taken.

    A stem is taken by an earlier input of this run, or where one of its outputs would replace one of
    the inputs or any file that an earlier predict did not write (``written_by_predict``): two inputs of
    one name keep both outputs, and a user's own photo, video or JSON is never written over.
    """
    inputs = {Path(p).resolve() for p in photos if not isinstance(p, int)}
    out_dir = Path(out_dir).resolve()
    taken, stems = set(), []
    for photo in photos:
        stem = f"camera{photo}" if isinstance(photo, int) else Path(photo).stem  # an int is a live camera
        suffixes = VIDEO_OUTPUTS if is_video(photo) else PHOTO_OUTPUTS
        while stem in taken or any(_not_ours(out_dir / f"{stem}{suffix}", inputs) for suffix in suffixes):
            stem += "_"
        taken.add(stem)
        stems.append(stem)
    return stems


def _not_ours(path: Path, inputs: set) -> bool:
    return path in inputs or (os.path.lexists(path) and not written_by_predict(path))


def written_by_predict(path: Path) -> bool:
    """Whether ``path`` is an output of an earlier predict, which a rerun may replace: a photo record
    (``STEM.json``), frame lines (``STEM.jsonl``) or a table with predict's header (``STEM.csv``), or a
    drawing (``STEM.jpg``, ``STEM.mp4``) beside the record of the same stem."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix == ".jpg":
        return written_by_predict(path.with_suffix(".json"))
    if path.suffix == ".mp4":
        return written_by_predict(path.with_suffix(".jsonl"))
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 26) if path.suffix == ".json" else handle.readline(1 << 20)
        if path.suffix == ".csv":
            return head.decode().rstrip("\r\n") == ",".join(csv_header())
        record = json.loads(head)
    except (OSError, ValueError):
        return False
    keys = ("image", "faces") if path.suffix == ".json" else ("frame", "faces")
    return isinstance(record, dict) and all(key in record for key in keys)


@dataclass
class Face:
    """One face in a photo; every coordinate is in the photo's own pixels."""

    box: np.ndarray          # (4,) float: x1 y1 x2 y2, the face box (the labels' convention)
    score: float             # the network's face probability (the detector's score for keypoint-only models)
    keypoints: np.ndarray    # (21, 2) float32, in the order of keypoints.POINT_NAMES
    detector_score: float    # the face detector's own confidence in the candidate
    crop_box: np.ndarray     # (4,) the expanded box the network saw
    is_face: bool = True     # score >= the face threshold (False: a rejected candidate)

    def as_json(self) -> dict:
        return {"box": [round(float(v), 1) for v in self.box],
                "score": round(self.score, 4),
                "detector_score": round(self.detector_score, 4),
                "keypoints": {name: [round(float(x), 1), round(float(y), 1)]
                              for name, (x, y) in zip(POINT_NAMES, self.keypoints)}}


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
        return {"image": image, "width": self.width, "height": self.height, "model": model, "detector": detector,
                "faces": [f.as_json() for f in self.accepted],
                "rejected": [{k: v for k, v in f.as_json().items() if k != "keypoints"}
                             for f in self.faces if not f.is_face],
                "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()}}


def face_threshold_of(config: dict) -> float:
    """The face-probability cut a checkpoint stores (``config["face_threshold"]``), else 0.5."""
    return float(config.get("face_threshold", 0.5))


class PhotoPredictor:
    """Candidate boxes from ``detector``, kept where the network's face probability >= ``face_threshold``
    (default: the checkpoint's ``face_threshold``, else 0.5).

    ``model`` is a torch module or a ``runtime.OnnxModel``; ``config`` the
    checkpoint's (input size, expansion ratio, normalisation).  Photos larger
    than ``detect_max_side`` (None: the detector's own) are shrunk for the detector only; crops always come
    from the full-resolution photo.
    """

    def __init__(self, model, config: dict, detector, face_threshold: float | None = None,
                 detect_max_side: int | None = None, refine: bool = True):
        self.model, self.config, self.detector = model, config, detector
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
        detections = detect_faces(self.detector, image, self.detect_max_side)
        timings["detector"] = (time.perf_counter() - started) * 1e3

        started = time.perf_counter()
        gray = np.asarray(image.convert("L"))
        timings["crops"] = (time.perf_counter() - started) * 1e3  # grayscale for the crops; run_boxes adds the cutting
        boxes, scores = detections.boxes, detections.scores
        kept, crop_boxes, points, face_prob = self.run_boxes(gray, boxes, timings)
        boxes, scores = boxes[kept], scores[kept]
        if self.refine and len(boxes):
            boxes = box_from_keypoints(points)
            again, crop_boxes, points, face_prob = self.run_boxes(gray, boxes, timings)
            boxes, scores = boxes[again], scores[again]
        if face_prob is None:  # a keypoints-only model: the detector's score decides
            face_prob = scores
        for i in range(len(boxes)):
            result.faces.append(Face(boxes[i], float(face_prob[i]), points[i].astype(np.float32), float(scores[i]),
                                     crop_boxes[i], bool(face_prob[i] >= self.face_threshold)))
        return result

    def run_boxes(self, gray: np.ndarray, boxes: np.ndarray, timings: dict):
        """Crops of ``boxes`` through the network: (indices of the usable boxes, crop boxes, points, face prob)."""
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
        points, face_prob = np.zeros((0, len(POINT_NAMES), 2)), None
        if batch is not None:
            points, face_prob = self.runner.points_and_probability(batch, crop_boxes)
        timings["network"] = timings.get("network", 0.0) + (time.perf_counter() - started) * 1e3
        return np.array(kept, dtype=int), crop_boxes, points, face_prob

    def predict_file(self, path) -> tuple[Image.Image, PhotoResult]:
        """Read ``path`` (``open_photo``; ImageError if it cannot) and predict; timings start with the decode."""
        started = time.perf_counter()
        image = open_photo(path)
        decode_ms = (time.perf_counter() - started) * 1e3
        result = self.predict_photo(image)
        result.timings_ms = {"decode": decode_ms, **result.timings_ms}
        return image, result


def draw_result(image: Image.Image, result: PhotoResult) -> Image.Image:
    """The photo with accepted faces (green box, points) and rejected candidates (thin red box, score)."""
    canvas = image.copy()
    line = max(1, round(max(image.size) / 500))
    for face in result.faces:
        if not face.is_face:
            ImageDraw.Draw(canvas).rectangle([float(v) for v in face.box], outline=(230, 40, 40), width=line)
            ImageDraw.Draw(canvas).text((float(face.box[0]), float(face.box[3]) + 2), f"{face.score:.2f}",
                                        fill=(230, 40, 40))
    for face in result.accepted:
        ImageDraw.Draw(canvas).rectangle([float(v) for v in face.box], outline=(40, 220, 40), width=line)
        radius = max(1.5, float(np.sqrt(np.prod(face.box[2:] - face.box[:2]))) / 60)
        canvas = draw_points(canvas, face.keypoints, color=(40, 255, 40), radius=radius)
    return canvas


def write_outputs(out_dir: Path, stem: str, image: Image.Image, result: PhotoResult, record: dict) -> tuple[Path, Path]:
    """``STEM.json`` and the drawing ``STEM.jpg`` in ``out_dir``, each written whole or not at all."""
    json_path, image_path = out_dir / f"{stem}.json", out_dir / f"{stem}.jpg"
    with atomic_output(json_path) as partial:
        partial.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    with atomic_output(image_path) as partial:
        draw_result(image, result).save(partial, format="JPEG", quality=90)
    return json_path, image_path
