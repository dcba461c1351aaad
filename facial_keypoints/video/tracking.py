"""Faces followed through video frames: the detector now and then, the keypoints' own box in between.

``FaceTracker.update(frame)`` returns the frame's faces, each with a stable ``id``:

- each face is cropped from the box its previous keypoints imply and runs through the network once,
  as the second crop of a photo does;
- the face detector and the network on its boxes run on the first frame and on any frame where a
  tracked face's probability falls below the face threshold (a face that left, or a scene cut), or
  where two tracks came onto one face;
- every ``detect_every`` frames the detector also looks for new faces, and only the boxes that no
  track covers go through the network: a scheduled look costs the detector and little more;
- a detection keeps the id of the track its box overlaps most (IoU >= ``match_iou``); a new face
  gets a new id, and a track that no detection confirms ends. An ended track is remembered for
  ``keep_lost`` frames, so a face that was missed for a moment (half out of the frame, covered)
  comes back with its id;
- with ``smoothing`` (a ``FaceMotionFilter`` per track, in units of the face's size) the points are
  steady when the face is still and follow it when it moves; each new track gets its own copy.
"""
from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

import numpy as np

from facial_keypoints.data.images import to_rgb_image
from facial_keypoints.geometry import box_from_keypoints, iou
from facial_keypoints.runtime.face_detectors import detect_faces
from facial_keypoints.runtime.photos import Face
from facial_keypoints.video.smoothing import FaceMotionFilter


DUPLICATE_IOU = 0.5  # two tracks whose boxes overlap this much follow one face


@dataclass
class TrackedFace(Face):
    """A ``Face`` with the id of its track (stable while the face stays in view)."""

    id: int = -1

    def as_json(self) -> dict:
        return {"id": self.id, **super().as_json()}


def gray_of(frame, bgr: bool = False) -> np.ndarray:
    """The grayscale pixels the crops are cut from. A colour array goes straight through OpenCV (a
    fifth of a frame's time when tracking, against a round trip through PIL; the two differ by one
    grey level on 0.1 % of pixels); anything else as ``FaceLandmarker.detect`` reads it."""
    if _colour_array(frame):
        import cv2
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    return np.asarray(to_rgb_image(frame, bgr).convert("L"))


def rgb_array(frame, bgr: bool = False) -> np.ndarray:
    """An RGB uint8 array of ``frame`` for the detector: a colour array as it is (or its channels swapped),
    anything else as ``FaceLandmarker.detect`` reads it."""
    if _colour_array(frame):
        if bgr:
            import cv2
            return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        return frame
    return np.asarray(to_rgb_image(frame, bgr))


def _colour_array(frame) -> bool:
    """Whether ``frame`` is a non-empty (H, W, 3) uint8 array, which OpenCV converts as it is."""
    return isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 \
        and bool(frame.size)


@dataclass
class _Track:
    id: int
    face: Face
    size: float                      # the face's size when the track began: the filter's unit
    smoother: FaceMotionFilter | None  # face.keypoints stay raw: they place the next crop
    lost_at: int = 0                   # the frame count when it ended (remembered tracks only)


class FaceTracker:
    """Faces with stable ids through a sequence of frames (``FaceLandmarker.track()`` makes one).

    Args:
        predictor: the ``runtime.photos.PhotoPredictor`` whose face detector and network run
            (``FaceLandmarker.predictor``).
        detect_every: run the detector at least every this many frames (new faces are found then).
        smoothing: a ``FaceMotionFilter`` (or any filter with its ``__call__(points, time_s, scale)``
            and ``reset()``) copied for each track, or None for the raw per-frame points.
        match_iou: the overlap a detection needs with a track to keep its id.
        keep_lost: frames an ended track's id waits for its face to be detected again.
    """

    def __init__(self, predictor, detect_every: int = 30, smoothing: FaceMotionFilter | None = None,
                 match_iou: float = 0.3, keep_lost: int = 30):
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, not {detect_every}")
        self.predictor, self.detect_every, self.match_iou = predictor, detect_every, match_iou
        self.smoothing, self.keep_lost = smoothing, keep_lost
        self.tracks: list[_Track] = []
        self.lost: list[_Track] = []  # ended tracks, newest last, for ``keep_lost`` frames
        self.frames = 0
        self.detections = 0  # frames the detector ran on
        self._ids = itertools.count()
        self._since_detection = 0

    def update(self, frame, time_s: float | None = None, bgr: bool = False) -> list[TrackedFace]:
        """The faces of the next frame (a path, PIL image or uint8 array, as ``FaceLandmarker.detect``).
        ``time_s``: the frame's time, for the smoothing (default: 30 frames per second)."""
        time_s = self.frames / 30.0 if time_s is None else float(time_s)
        if not math.isfinite(time_s):  # one nan would make every later smoothed point of a track nan
            raise ValueError(f"time_s must be a finite number of seconds, not {time_s}")
        self.frames += 1
        predictor, gray = self.predictor, gray_of(frame, bgr)
        followed = self._follow(predictor, gray) if self.tracks else None
        if followed is None:  # no faces yet, or one was lost: the detector and the network on every box
            self._detect(predictor.predict_photo(to_rgb_image(frame, bgr)).accepted)
        else:
            self.tracks = followed
            if self._since_detection >= self.detect_every:
                self._add_new_faces(predictor, rgb_array(frame, bgr), gray)
            else:
                self._since_detection += 1
        return [self._output(track, time_s) for track in self.tracks]

    def reset(self) -> None:
        """Forget every track: the next frame runs the detector, and its faces get new ids (a new scene,
        or frames of another size)."""
        self.tracks = []

    def _follow(self, predictor, gray: np.ndarray) -> list[_Track] | None:
        """Every track moved to this frame through its keypoints' box, or None where one was lost (or two
        tracks came onto one face)."""
        boxes = box_from_keypoints(np.stack([t.face.keypoints for t in self.tracks]))
        run = predictor.run_boxes(gray, boxes, {})
        probs = run.face_prob
        if len(run.kept) < len(self.tracks) or probs is None or (probs < predictor.face_threshold).any():
            return None  # a face left the frame or turned away, or the scene changed: ask the detector
        moved = []
        confidence = run.confidence if run.confidence is not None else [None] * len(boxes)
        for track, crop_box, box, pts, prob, sure in zip(self.tracks, run.crop_boxes, boxes, run.points, probs,
                                                         confidence):
            face = Face(box, float(prob), pts.astype(np.float32), track.face.detector_score, crop_box, True, sure,
                        (gray.shape[1], gray.shape[0]))
            moved.append(_Track(track.id, face, track.size, track.smoother))
        boxes = np.array([t.face.box for t in moved])
        if any(iou(box, boxes[k + 1:]).max(initial=0.0) >= DUPLICATE_IOU for k, box in enumerate(boxes)):
            return None
        return moved

    def _detect(self, faces: list[Face]) -> None:
        """Tracks from the faces of a frame the detector ran on: each continues the track (or the recently
        ended one) it overlaps most, the others end; a face that continues none starts a new track."""
        self._detected()
        candidates = self.tracks + self.lost  # the tracks first: the best match wins, ties go to them
        tracks, taken = self._continue(faces, candidates)
        ended = [t for k, t in enumerate(self.tracks) if k not in taken]
        for track in ended:
            track.lost_at = self.frames
        self.lost = [t for k, t in enumerate(self.lost, len(self.tracks)) if k not in taken] + ended
        self.tracks = tracks

    def _add_new_faces(self, predictor, image, gray: np.ndarray) -> None:
        """The scheduled look for new faces while every track follows its face: the detector on the frame,
        and the network (with its second crop) only on the boxes no track covers."""
        self._detected()
        detections = detect_faces(predictor.face_detector, image, predictor.detect_max_side)
        tracked = np.array([t.face.box for t in self.tracks])
        new = [k for k, box in enumerate(detections.boxes) if iou(box, tracked).max() < self.match_iou]
        if not new:
            return
        faces = [f for f in predictor.faces_in_boxes(gray, detections.boxes[new], detections.scores[new], {})
                 if f.is_face and iou(f.box, tracked).max() < self.match_iou]  # its second crop may land on one
        tracks, taken = self._continue(faces, self.lost)
        self.lost = [t for k, t in enumerate(self.lost) if k not in taken]
        self.tracks += tracks

    def _detected(self) -> None:
        self.detections += 1
        self._since_detection = 1
        self.lost = [t for t in self.lost if self.frames - t.lost_at <= self.keep_lost]

    def _continue(self, faces: list[Face], candidates: list[_Track]) -> tuple[list[_Track], set]:
        """A track per face, continuing the candidate it matches (same id and filter) or new; and the
        indices of the candidates continued."""
        tracks, taken = [], set()
        for face, best in self._match(faces, candidates):
            if best >= 0:
                taken.add(best)
                old = candidates[best]
                tracks.append(_Track(old.id, face, old.size, old.smoother))
            else:
                size = float(np.sqrt(np.prod(face.box[2:] - face.box[:2])))
                smoother = copy.deepcopy(self.smoothing) if self.smoothing is not None else None
                if smoother is not None:
                    smoother.reset()
                tracks.append(_Track(next(self._ids), face, size, smoother))
        return tracks, taken

    def _match(self, faces, candidates):
        """Yield (face, index of the candidate track it continues, or -1), the most confident face first."""
        boxes = np.array([t.face.box for t in candidates]).reshape(-1, 4)
        taken = []
        for face in sorted(faces, key=lambda f: -f.score):
            overlaps = iou(face.box, boxes) if len(boxes) else np.zeros(0)
            overlaps[taken] = 0.0
            best = int(np.argmax(overlaps)) if len(overlaps) else -1
            if best >= 0 and overlaps[best] >= self.match_iou:
                taken.append(best)
                yield face, best
            else:
                yield face, -1

    @staticmethod
    def _output(track: _Track, time_s: float) -> TrackedFace:
        face = track.face
        points = face.keypoints
        if track.smoother is not None:
            points = track.smoother(face.keypoints, time_s, scale=track.size).astype(np.float32)
        return TrackedFace(face.box, face.score, points, face.detector_score, face.crop_box, face.is_face,
                           face.point_confidence, face.image_size, id=track.id)
