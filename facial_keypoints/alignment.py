"""Aligned face crops for recognition: a face warped onto the five-point template ArcFace models expect.

    crop = facial_keypoints.align(image, face)            # 112 x 112, the kind of image given
    crops = facial_keypoints.align(frame, faces, bgr=True)  # one per face

Five of the 21 points are the template's: the pupils, the nose tip and the mouth corners. A
similarity transform (rotation, uniform scale, shift: the face keeps its shape) maps them onto the
template by least squares over all five, as InsightFace's ``norm_crop`` fits it (a closed form in
a few lines: OpenCV's ``estimateAffinePartial2D`` fits a robust subset of the points instead), and the
photo is warped through it with OpenCV.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from facial_keypoints.keypoints import POINT_NAMES

# The ArcFace (InsightFace) template for 112 x 112 crops: image-left eye, image-right eye, nose tip,
# image-left and image-right mouth corners, in pixels.
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]])
TEMPLATE_POINTS = tuple(POINT_NAMES.index(name) for name in (
    "left_pupil", "right_pupil", "nose_tip", "mouth_left_corner", "mouth_right_corner"))


def five_points(face) -> np.ndarray:
    """(5, 2) template points of a ``Face``, its JSON record, or (21, 2) or (5, 2) points."""
    points = face.get("keypoints") if isinstance(face, dict) else getattr(face, "keypoints", face)
    if isinstance(points, dict):  # a JSON record: {name: [x, y]}
        points = [points[name] for name in POINT_NAMES]
    points = np.asarray(points, dtype=np.float64)
    if points.shape == (len(POINT_NAMES), 2):
        points = points[list(TEMPLATE_POINTS)]
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise ValueError(f"align needs a face with 21 finite points (or the 5 of the template), not {points.shape}")
    if np.ptp(points, axis=0).max() < 1e-6:
        raise ValueError("align: the five points coincide, so they fix no similarity transform")
    return points


def alignment_matrix(face, size: int = 112) -> np.ndarray:
    """(2, 3) the similarity transform from the photo's pixels to a ``size`` x ``size`` aligned crop."""
    source, target = five_points(face), TEMPLATE_112 * (size / 112.0)
    # x' = a x - b y + tx, y' = b x + a y + ty: linear in (a, b, tx, ty), two equations a point
    x, y = source[:, 0], source[:, 1]
    ones, zeros = np.ones(5), np.zeros(5)
    equations = np.concatenate([np.stack([x, -y, ones, zeros], 1), np.stack([y, x, zeros, ones], 1)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(equations, np.concatenate([target[:, 0], target[:, 1]]), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def align(image, face, size: int = 112, bgr: bool = False):
    """The face (or each of a list of faces) warped onto the ArcFace template, ``size`` x ``size``.

    ``image`` is a PIL image or a uint8 array (RGB, or BGR with ``bgr``: the channels are kept as they
    are, so the crop is of the kind given); ``face`` a ``Face``, its JSON record, or its points.
    Outside the photo is black.
    """
    import cv2
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 8:
        raise ValueError(f"size must be a whole number of pixels, at least 8, not {size!r}")
    if isinstance(face, (list, tuple)) and not _is_points(face):
        return [align(image, one, size, bgr) for one in face]
    pil = isinstance(image, Image.Image)
    pixels = np.asarray(image.convert("RGB")) if pil else np.asarray(image)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or not pixels.size:
        raise ValueError(f"align takes a PIL image (given back in RGB) or a non-empty uint8 array (H, W, 3) or "
                         f"(H, W), not {pixels.dtype} {pixels.shape}")
    crop = cv2.warpAffine(pixels, alignment_matrix(face, int(size)), (int(size), int(size)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)
    return Image.fromarray(crop) if pil else crop


def _is_points(value) -> bool:
    """Whether a list is one face's points ((21, 2) or (5, 2) numbers), not a list of faces."""
    try:
        return np.asarray(value, dtype=np.float64).shape in ((len(POINT_NAMES), 2), (5, 2))
    except (TypeError, ValueError):
        return False


CROP_MARK = b"facial_keypoints aligned crop"  # the JPEG comment of every crop predict writes


def write_aligned(folder, names: list[str], image, faces, size: int = 112, bgr: bool = False) -> list[Path]:
    """Each face aligned (``align``) as ``folder/NAME.jpg`` (``predict --aligned``), each file whole or absent.

    A crop replaces only an earlier crop (a JPEG with ``CROP_MARK`` as its comment): where another file
    has its name, ``_`` is added to the name, so nothing of the user's is ever written over. Returns
    the paths written.
    """
    from facial_keypoints.atomic import atomic_output
    written = []
    for name, face in zip(names, faces):
        crop = align(image, face, size, bgr)
        if not isinstance(crop, Image.Image):
            crop = Image.fromarray(crop[..., ::-1] if bgr else crop)
        path = Path(folder) / f"{name}.jpg"
        while os.path.lexists(path) and not is_crop(path):
            path = path.with_name(f"{path.stem}_.jpg")
        with atomic_output(path) as partial:
            crop.save(partial, format="JPEG", quality=95, comment=CROP_MARK)
        written.append(path)
    return written


def is_crop(path) -> bool:
    """Whether ``path`` is a crop ``write_aligned`` wrote (which a rerun may replace)."""
    try:
        with Image.open(path) as image:
            return image.format == "JPEG" and image.info.get("comment", b"") == CROP_MARK
    except (OSError, ValueError):
        return False
