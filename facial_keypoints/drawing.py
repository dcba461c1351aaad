"""Faces drawn on pictures: ``draw`` for anyone's own image (and every annotated photo and video frame
``predict`` writes), and ``draw_points`` and ``grid`` for the course's crops and sheets.

``draw`` works on what a pipeline holds: a NumPy frame from OpenCV (``bgr=True``) or an RGB array, or
a PIL image, and gives back the same kind, drawn on a copy. It draws with OpenCV, straight on the
array, anti-aliased.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from facial_keypoints.keypoints import POINT_NAMES, SKELETON

FACE_COLOUR = (40, 255, 40)       # RGB: accepted faces
REJECTED_COLOUR = (230, 40, 40)   # RGB: candidates the network turned down
AXIS_COLOURS = ((230, 40, 40), (40, 230, 40), (40, 120, 255))  # RGB: the head's right, down, and the nose's way


def draw(image, faces, bgr: bool = False, *, points: bool = True, boxes: bool = True, ids: bool = True,
         confidence: bool = False, pose: bool = False, rejected: bool = True):
    """A copy of ``image`` with ``faces`` drawn on it, of the kind it was given.

    Args:
        image: a PIL image (given back in RGB, whatever its mode), or a uint8 array (H, W, 3) in RGB,
            or in BGR with ``bgr=True`` (an OpenCV frame), or (H, W) grey (given back as RGB).
        faces: ``Face`` objects (``FaceLandmarker.detect``, ``tracker.update``), their JSON records
            (``face.as_json()``, a line of ``predict``'s output), or one of either.
        points, boxes: the 21 points with the lines between them, and the face box.
        ids: a tracked face's id above its box.
        confidence: each point coloured by its ``point_confidence`` (green sure, red doubtful), and the
            face's ``quality`` beside its box, where the faces have them.
        pose: the head's axes from the nose tip, where the faces have a ``pose`` (yaw, pitch, roll).
        rejected: candidates the network turned down (``is_face`` False), as a thin red box and score.
    """
    import cv2
    pil = isinstance(image, Image.Image)
    canvas = np.array(image.convert("RGB")) if pil else np.array(image, copy=True)
    if canvas.dtype != np.uint8 or canvas.ndim not in (2, 3) or (canvas.ndim == 3 and canvas.shape[2] != 3) \
            or not canvas.size:
        raise ValueError(f"draw takes a PIL image or a non-empty uint8 array (H, W, 3) or (H, W), not "
                         f"{canvas.dtype} {canvas.shape}")
    if canvas.ndim == 2:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB)
    colour = (lambda rgb: rgb[::-1]) if bgr and not pil else (lambda rgb: rgb)
    scale = max(canvas.shape[:2]) / 500
    for face in _faces(faces):
        if face["is_face"]:
            _draw_face(canvas, face, colour, scale, points, boxes, ids, confidence, pose)
        elif rejected:
            x1, y1, x2, y2 = _ints(face["box"])
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour(REJECTED_COLOUR), max(1, round(scale)), cv2.LINE_AA)
            _text(canvas, f"{face['score']:.2f}", (x1, y2 + round(14 * scale)), colour(REJECTED_COLOUR), scale)
    return Image.fromarray(canvas) if pil else canvas


def _draw_face(canvas, face, colour, scale, points, boxes, ids, confidence, pose) -> None:
    import cv2
    line = max(1, round(scale))
    x1, y1, x2, y2 = _ints(face["box"])
    if boxes:
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour(FACE_COLOUR), line, cv2.LINE_AA)
    keypoints = face["keypoints"]
    if points and keypoints is not None:
        size = math.sqrt(max((x2 - x1) * (y2 - y1), 1))
        radius = max(1, round(size / 60))
        sure = face.get("point_confidence") if confidence else None
        for a, b in SKELETON:
            cv2.line(canvas, _point(keypoints[a]), _point(keypoints[b]), colour(FACE_COLOUR), 1, cv2.LINE_AA)
        for k, point in enumerate(keypoints):
            tint = FACE_COLOUR if sure is None else _confidence_colour(sure[k])
            cv2.circle(canvas, _point(point), radius, colour(tint), -1, cv2.LINE_AA)
    label = _label(face, ids, confidence)
    if label:
        _text(canvas, label, (x1, y1 - round(5 * scale)), colour(FACE_COLOUR), scale)
    if pose and face.get("pose") is not None and keypoints is not None:
        _draw_axes(canvas, keypoints[POINT_NAMES.index("nose_tip")], face["pose"], (x2 - x1) / 2, colour, line)


def _label(face: dict, ids: bool, confidence: bool) -> str:
    """The text above a face's box: its track id, its quality."""
    label = []
    if ids and face.get("id") is not None:
        label.append(f"id {face['id']}")
    if confidence and face.get("quality") is not None:
        label.append(f"q {face['quality']:.2f}")
    return " ".join(label)


def _draw_axes(canvas, origin, pose, length: float, colour, line: int) -> None:
    """The head's axes from ``origin`` as seen straight on: its right (red), down (green) and the way the
    nose points (blue), turned by (yaw, pitch, roll) as ``pose.head_pose`` reads them."""
    import cv2

    from facial_keypoints.pose import rotation_from_angles
    if not np.all(np.isfinite(pose)):
        return
    rotation = rotation_from_angles(*(float(v) for v in pose))  # head frame -> camera frame, by columns
    for axis, tint in zip((rotation[:, 0], rotation[:, 1], -rotation[:, 2]), AXIS_COLOURS):
        end = np.asarray(origin, dtype=np.float64) + length * axis[:2]
        cv2.line(canvas, _point(origin), _point(end), colour(tint), line + 1, cv2.LINE_AA)


def _faces(faces) -> list[dict]:
    """The faces as dicts of box (4,), keypoints (21, 2) or None, score, is_face, and point_confidence
    (21,) and pose (3,) where they have them (a JSON record's named values in the points' order)."""
    if isinstance(faces, dict) or hasattr(faces, "keypoints"):
        faces = [faces]
    if not isinstance(faces, (list, tuple)):
        raise ValueError(f"draw takes a face or a list of faces (Face objects or their JSON records), not "
                         f"{type(faces).__name__}")
    return [_face_record(face) for face in faces]


def _face_record(face) -> dict:
    if isinstance(face, dict):
        record = dict(face)
    else:  # a Face: its fields, and what it works out on demand
        record = {**vars(face), "quality": getattr(face, "quality", None), "pose": getattr(face, "pose", None)}
    points, sure, pose = record.get("keypoints"), record.get("point_confidence"), record.get("pose")
    if isinstance(points, dict):  # a JSON record: {name: [x, y]}
        points = [points.get(name, (np.nan, np.nan)) for name in POINT_NAMES]
    if isinstance(sure, dict):
        sure = [sure.get(name, 0.0) for name in POINT_NAMES]
    if isinstance(pose, dict):
        pose = [pose.get(angle) for angle in ("yaw", "pitch", "roll")]
    try:
        record["box"] = np.asarray(record["box"], dtype=np.float64).reshape(4)
        count = len(POINT_NAMES)
        record["keypoints"] = None if points is None else np.asarray(points, dtype=np.float64).reshape(count, 2)
        record["point_confidence"] = None if sure is None else np.asarray(sure, dtype=np.float64).reshape(count)
        record["pose"] = None if pose is None else np.array([np.nan if v is None else v for v in pose], np.float64)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"draw: a face needs a box of 4 numbers and 21 points (a Face or its JSON record): "
                         f"{error}") from None
    record.setdefault("is_face", True)
    record.setdefault("score", 1.0)
    return record


def _confidence_colour(value: float) -> tuple:
    value = float(np.clip(value, 0.0, 1.0)) if np.isfinite(value) else 0.0
    return round(255 * (1 - value)), round(255 * value), 40


def _ints(box) -> list[int]:
    return [int(round(min(max(float(v), -1e4), 1e5))) if np.isfinite(v) else 0 for v in box]


def _point(point) -> tuple[int, int]:
    x, y = (float(v) if np.isfinite(v) else -1e4 for v in point)
    return int(round(min(max(x, -1e4), 1e5))), int(round(min(max(y, -1e4), 1e5)))


def _text(canvas, text: str, origin, colour, scale: float) -> None:
    import cv2
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, max(0.4, 0.5 * scale), colour,
                max(1, round(scale)), cv2.LINE_AA)


def draw_points(image: Image.Image, keypoints, color=(0, 255, 0), radius: float = 2.0,
                skeleton: bool = True, numbers: bool = False) -> Image.Image:
    """Draw (21, 2) points (in the image's pixels) on an RGB copy of ``image`` (the course's crops)."""
    image = image.convert("RGB")
    draw_on = ImageDraw.Draw(image)
    points = np.asarray(keypoints, dtype=np.float64)
    if skeleton:
        for a, b in SKELETON:
            draw_on.line([tuple(points[a]), tuple(points[b])], fill=color, width=1)
    for i, (x, y) in enumerate(points):
        draw_on.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
        if numbers:
            draw_on.text((x + radius, y - 3 * radius), str(i), fill=(255, 255, 0))
    return image


def grid(images: list[Image.Image], columns: int = 4) -> Image.Image:
    width = max(i.width for i in images)
    height = max(i.height for i in images)
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * width, rows * height))
    for n, image in enumerate(images):
        sheet.paste(image, ((n % columns) * width, (n // columns) * height))
    return sheet
