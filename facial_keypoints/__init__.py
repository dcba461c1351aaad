"""Facial keypoint detection: 21 points per face, on face crops and on whole photos.

    from facial_keypoints import FaceLandmarker
    faces = FaceLandmarker().detect("photo.jpg")
    drawn = facial_keypoints.draw(frame, faces, bgr=True)   # the faces on a copy of an OpenCV frame
    crop = facial_keypoints.align(photo, faces[0])           # 112 x 112 on the ArcFace template

Importing the package is light: the model loads with the first ``FaceLandmarker``, and torch only
for a torch backend (the shipped model runs on ONNX Runtime).
The course's stage scripts (stage1/, stage2/, stage3/) take its lists, metrics, plots and checkpoint
format; ``facial-keypoints train`` (``training/``) trains the shipped model.
"""
from typing import TYPE_CHECKING

from facial_keypoints.keypoints import FLIP_INDEX, NUM_POINTS, POINT_NAMES

if TYPE_CHECKING:  # what type checkers see; at run time the classes load on first use (__getattr__)
    from facial_keypoints.api import FaceLandmarker
    from facial_keypoints.alignment import align
    from facial_keypoints.drawing import draw
    from facial_keypoints.runtime.photos import Face

__version__ = "1.0.0"
__all__ = ["FaceLandmarker", "Face", "align", "draw", "FLIP_INDEX", "NUM_POINTS", "POINT_NAMES", "__version__"]


def __getattr__(name):
    # The API's classes import numpy, PIL and (when a model loads) torch: only when asked for.
    if name == "FaceLandmarker":
        from facial_keypoints.api import FaceLandmarker
        return FaceLandmarker
    if name == "Face":
        from facial_keypoints.runtime.photos import Face
        return Face
    if name == "align":
        from facial_keypoints.alignment import align
        return align
    if name == "draw":
        from facial_keypoints.drawing import draw
        return draw
    raise AttributeError(f"module 'facial_keypoints' has no attribute {name!r}")
