"""Head pose (yaw, pitch, roll in degrees) from the 21 keypoints.

``head_pose`` solves the perspective-n-point problem (``cv2.solvePnP``, SQPnP then a Levenberg-Marquardt
refinement) between the 21 photo points and ``MEAN_FACE_3D``, a rigid mean face, seen by a pinhole
camera with focal length ``max(width, height)`` pixels, its centre at the photo's centre and no lens
distortion. The rotation found maps the head frame into the camera frame (x image-right, y down, z
away from the camera) and is read as ``R = Rz(roll) @ Ry(-yaw) @ Rx(-pitch)`` (roll last, about the
camera's optical axis):

- yaw > 0: the subject turns so that the nose points towards the image's right;
- pitch > 0: the subject looks up;
- roll > 0: the face is rotated clockwise as the viewer sees the photo (rotating the photo clockwise
  about its centre by t degrees adds t to roll and leaves yaw and pitch as they were).

A frontal mean face reads (0, 0, 0); a mirrored photo negates yaw and roll and keeps pitch. Angles lie
in (-180, 180] (yaw in [-90, 90]). The pose is relative to the camera's axis, not to the line of sight:
a face away from the photo's centre that looks straight into the lens reads the angle between the two
as yaw and pitch.

``MEAN_FACE_3D`` holds vertices of MediaPipe's canonical face model
(mediapipe/modules/face_geometry/data/canonical_face_model.obj, google-ai-edge/mediapipe, Apache
License 2.0), in the head frame: x image-left to image-right of a frontal photo, y down, z into the
head, in millimetres (the model's centimetres times 10, its y and z negated), its origin the mean of
the 21 points.
"""
from __future__ import annotations

import math

import numpy as np

# MediaPipe canonical_face_model.obj vertex (or mean of the vertices) behind each of the 21 points.
# Brows: means of vertices of the brow's upper and lower contours; pupils: the mean of the upper and
# lower eyelid centres; mouth centre: the mean of the inner lips' centres; nose tip: 4 (the model's
# most protruding vertex); nose wings: the mean of two vertices of the wing. Where a point could take
# several vertices, the choice is the one whose FaceMesh landmarks lie nearest the library's points on
# the validation faces of benchmarks/head_pose_mediapipe.py (the median offset of every point within
# 2.3 % of the outer-eye-corner distance).
MEDIAPIPE_VERTICES = (
    (70, 63, 46), (105, 66, 52, 65), (107, 55), (336, 285), (334, 296, 282, 295), (300, 293, 276),
    (33,), (133,), (362,), (263,),
    (129, 64), (2,), (358, 294),
    (0,), (13, 14), (17,),
    (159, 145), (386, 374), (4,),
    (61,), (291,),
)

# Those vertices' means: x, y, z in mm, less their mean over the 21 points (canonical_face_model.obj,
# Copyright Google LLC, Apache License 2.0).
MEAN_FACE_3D = np.array([
    [-53.20, -35.20, 13.22],   # left_brow_outer       70, 63, 46
    [-32.82, -40.18, -1.01],   # left_brow_middle      105, 66, 52, 65
    [-13.08, -37.84, -5.73],   # left_brow_inner       107, 55
    [13.08, -37.84, -5.73],    # right_brow_inner      336, 285
    [32.82, -40.18, -1.01],    # right_brow_middle     334, 296, 282, 295
    [53.20, -35.20, 13.22],    # right_brow_outer      300, 293, 276
    [-44.46, -18.71, 14.64],   # left_eye_outer        33
    [-18.56, -17.93, 8.80],    # left_eye_inner        133
    [18.56, -17.93, 8.80],     # right_eye_inner       362
    [44.46, -18.71, 14.64],    # right_eye_outer       263
    [-16.89, 19.11, -5.16],    # nose_left_wing        129, 64
    [0.00, 28.82, -14.21],     # nose_bottom_centre    2
    [16.89, 19.11, -5.16],     # nose_right_wing       358, 294
    [0.00, 41.99, -13.42],     # upper_lip_centre      0
    [0.00, 50.61, -6.74],      # mouth_centre          13, 14
    [0.00, 61.58, -8.98],      # lower_lip_centre      17
    [-31.77, -18.37, 8.11],    # left_pupil            159, 145
    [31.77, -18.37, 8.11],     # right_pupil           386, 374
    [0.00, 12.56, -29.49],     # nose_tip              4
    [-24.56, 51.35, 3.54],     # mouth_left_corner     61
    [24.56, 51.35, 3.54],      # mouth_right_corner    291
], dtype=np.float64)


def camera_matrix(width: float, height: float) -> np.ndarray:
    """The pinhole camera ``head_pose`` assumes: focal ``max(width, height)``, centre at the photo's centre."""
    focal = float(max(width, height))
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The head-to-camera rotation of (yaw, pitch, roll) in degrees: ``Rz(roll) @ Ry(-yaw) @ Rx(-pitch)``."""
    a, b, c = np.radians([-pitch, -yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def angles_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees of a head-to-camera rotation; the inverse of ``rotation_from_angles``."""
    r = rotation
    yaw = -math.degrees(math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2])))
    pitch = -math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return np.array([a + 360.0 if a <= -180.0 else a + 0.0 for a in (yaw, pitch, roll)])  # + 0.0: no -0.0


def solve_rotation(points: np.ndarray, camera: np.ndarray) -> np.ndarray | None:
    """The head-to-camera rotation that best projects ``MEAN_FACE_3D`` onto ``points`` (21, 2), or None."""
    import cv2
    image = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 1, 2)
    model = MEAN_FACE_3D.reshape(-1, 1, 3)
    try:
        found, rvec, tvec = cv2.solvePnP(model, image, camera, None, flags=cv2.SOLVEPNP_SQPNP)
        if not found:
            return None
        if tvec[2, 0] < 0:  # the mean face behind the camera: no photo shows that
            return None
        rvec, tvec = cv2.solvePnPRefineLM(model, image, camera, None, rvec, tvec)
    except cv2.error:
        return None
    return cv2.Rodrigues(rvec)[0]


def head_pose(keypoints, width: float, height: float) -> np.ndarray:
    """(yaw, pitch, roll) in degrees, float32, of faces' 21 keypoints in photo pixels.

    ``keypoints`` (21, 2) gives (3,), (N, 21, 2) gives (N, 3); ``width`` and ``height`` are the photo's
    in pixels. A face with a point that is not finite, or that no pose fits, gets nan angles. Signs:
    yaw > 0 when the nose points towards the image's right, pitch > 0 when the subject looks up,
    roll > 0 when the face is rotated clockwise as seen in the photo (the module's docstring has the
    convention in full).
    """
    points = np.asarray(keypoints, dtype=np.float64)
    single = points.ndim == 2
    points = points.reshape(-1, len(MEAN_FACE_3D), 2)
    camera = camera_matrix(width, height)
    out = np.full((len(points), 3), np.nan, dtype=np.float32)
    for n, face in enumerate(points):
        if not np.isfinite(face).all():
            continue
        rotation = solve_rotation(face, camera)
        if rotation is not None:
            out[n] = angles_from_rotation(rotation)
    return out[0] if single else out
