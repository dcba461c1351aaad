"""Synthetic video with known keypoints, for benchmarks/video.py.

Each scene is one labelled photo (one face of at least 60 px) made to fill a 640x480 frame at 30
frames per second, moved by a similarity transform about the face's centre; the scenes follow each
other with hard cuts. Every frame gets fresh sensor noise (sigma 3 grey levels). The scenes cycle
through four kinds:

- ``turn``: 30 frames still, 2 s of motion (a pan of up to +-45 px, a zoom of up to +-12 %, a roll
  of up to +-10 deg; at peak about 5 px and 2 deg per frame, as a person turning to speak), 30 still;
- ``cover``: the same motion, with a flat patch over one side of the face (a hand) for 30 frames
  of it;
- ``leave``: the face slides to the frame's edge until half of it is out, stays there 30 frames,
  and comes back;
- ``cross`` (every fourth scene): two faces, cut out of their photos onto a blurred background,
  pass each other, one partly in front of the other.

A frame's truth is a list of faces, each (face index in the scene, box, 21 points); its flags say
whether the motion is still, whether a face is covered or partly out of the frame, and how many
frames it is after the cut.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from facial_keypoints.data.labels import read_labels

WIDTH, HEIGHT, FPS = 640, 480, 30.0
STILL, MOVE = 30, 60
KINDS = ("turn", "cover", "leave", "cross")


@dataclass
class Frame:
    scene: int
    kind: str
    t: int             # frame index within the scene (0 = the cut)
    still: bool        # the true points did not move since the previous frame
    hard: bool         # a face is covered or partly outside the frame
    pixels: np.ndarray  # RGB uint8, HEIGHT x WIDTH
    faces: list        # [(face index in the scene, box x1 y1 x2 y2, (21, 2) points)]


def sources(root, photos, count: int, min_face: int = 60):
    """(photo path, face box, keypoints) of the first ``count`` of ``photos`` with one labelled face >= min_face px."""
    by_photo = defaultdict(list)
    for face in read_labels(root, skip_bad=True):
        by_photo[face.image].append(face)
    chosen = []
    for photo in photos:
        faces = by_photo[photo]
        if len(faces) == 1 and min(faces[0].box[2:] - faces[0].box[:2]) >= min_face:
            chosen.append((root / photo, np.asarray(faces[0].box, float), np.asarray(faces[0].keypoints, float)))
        if len(chosen) == count:
            break
    return chosen


def fitted(path, box, points, face_width: float | None = None):
    """The photo scaled to cover the frame (or to make the face ``face_width`` px wide) around its face;
    the frame, and the face's box and points in it."""
    image = np.asarray(Image.open(path).convert("RGB"))
    h, w = image.shape[:2]
    scale = max(WIDTH / w, HEIGHT / h) if face_width is None else face_width / (box[2] - box[0])
    centre = (box[:2] + box[2:]) / 2 * scale
    offset = centre - [WIDTH / 2, HEIGHT / 2]
    if face_width is None:
        offset = np.clip(offset, 0, [w * scale - WIDTH, h * scale - HEIGHT])
    matrix = np.float32([[scale, 0, -offset[0]], [0, scale, -offset[1]]])
    frame = cv2.warpAffine(image, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return frame, box * scale - np.r_[offset, offset], points * scale - offset


def similarity(centre, dx, dy, zoom, roll) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), roll, zoom)
    matrix[:, 2] += (dx, dy)
    return matrix


def moved(box, points, matrix):
    """The box (the bounding box of the moved corners) and points under ``matrix``."""
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]])
    corners = corners @ matrix[:, :2].T + matrix[:, 2]
    return np.r_[corners.min(axis=0), corners.max(axis=0)], points @ matrix[:, :2].T + matrix[:, 2]


def turn_pose(t: int, signs) -> tuple[float, float, float, float]:
    """(dx, dy, zoom, roll) at frame ``t`` of a turn: still, 2 s of pan, zoom and roll, still."""
    u = np.clip((t - STILL) / MOVE, 0.0, 1.0)
    wave, fast = np.sin(2 * np.pi * u), np.sin(4 * np.pi * u)
    return signs[0] * 45 * wave, signs[1] * 20 * fast, 1 + signs[2] * 0.12 * wave, signs[3] * 10 * fast


def leave_pose(t: int, reach: float) -> tuple[float, float, float, float]:
    """(dx, 0, 1, 0): 2 s out to ``reach`` px, 1 s there, 2 s back, eased at both ends."""
    if t < STILL + MOVE:
        u = np.clip((t - STILL) / MOVE, 0.0, 1.0)
    else:
        u = np.clip(1 - (t - 2 * STILL - MOVE) / MOVE, 0.0, 1.0)
    return reach * (0.5 - 0.5 * np.cos(np.pi * u)), 0.0, 1.0, 0.0


def one_face_scene(scene: int, kind: str, source, rng):
    """Yield (t, still, hard, pixels, faces) for a ``turn``, ``cover`` or ``leave`` scene."""
    base, box, points = fitted(*source)
    centre = (box[:2] + box[2:]) / 2
    signs = rng.choice([-1, 1], size=4)
    length = 2 * STILL + MOVE if kind != "leave" else 3 * STILL + 2 * MOVE
    reach = WIDTH - centre[0] if signs[0] > 0 else -centre[0]  # the face's centre to the edge: half out
    previous = None
    for t in range(length):
        pose = turn_pose(t, signs) if kind != "leave" else leave_pose(t, reach)
        matrix = similarity(centre, *pose)
        # beyond the photo: its edge pixels repeated, except where the face leaves (black, as beyond a view)
        border = cv2.BORDER_CONSTANT if kind == "leave" else cv2.BORDER_REPLICATE
        frame = cv2.warpAffine(base, matrix, (WIDTH, HEIGHT), borderMode=border)
        true_box, true_points = moved(box, points, matrix)
        covered = kind == "cover" and STILL + 15 <= t < STILL + 45
        if covered:  # a hand over the face's left or right 40 %, full height
            x1, y1, x2, y2 = true_box.astype(int)
            w = int((x2 - x1) * 0.4)
            xa = x1 if signs[1] > 0 else x2 - w
            frame[max(y1, 0):max(y2, 0), max(xa, 0):max(xa + w, 0)] = (196, 160, 140)
        out = (true_points < 0).any() or (true_points[:, 0] >= WIDTH).any() or (true_points[:, 1] >= HEIGHT).any()
        still = previous is not None and pose == previous
        previous = pose
        yield t, still, covered or bool(out), frame, [(0, true_box, true_points)]


def cross_scene(pair, rng):
    """Yield (t, still, hard, pixels, faces): two faces 120 px wide on a blurred background pass each
    other in 3 s, the second 140 px lower and in front of the first."""
    cut = []
    for path, box, points in pair:
        frame, fbox, fpoints = fitted(path, box, points, face_width=120)
        mask = np.zeros((HEIGHT, WIDTH), np.float32)
        centre, axes = (fbox[:2] + fbox[2:]) / 2, (fbox[2:] - fbox[:2]) * 0.75
        cv2.ellipse(mask, (int(centre[0]), int(centre[1])), (int(axes[0]), int(axes[1])), 0, 0, 360, 1.0, -1)
        cut.append((frame, cv2.GaussianBlur(mask, (0, 0), 6)[..., None], fbox, fpoints, centre))
    background = cv2.GaussianBlur(cut[0][0], (0, 0), 40)
    lanes = [(110, 170), (530, 310)]  # (start x, y) of each face's centre; they swap x
    length, travel, previous = 2 * STILL + 90, 90, None
    for t in range(length):
        u = np.clip((t - STILL) / travel, 0.0, 1.0)
        u = 0.5 - 0.5 * np.cos(np.pi * u)
        still, previous = u == previous, u
        frame, faces = background.astype(np.float32), []
        for index, ((pixels, mask, box, points, centre), (x0, y)) in enumerate(zip(cut, lanes)):
            x = x0 + (lanes[1 - index][0] - x0) * u
            matrix = similarity(centre, x - centre[0], y - centre[1], 1.0, 0.0)
            frame = frame * (1 - cv2.warpAffine(mask, matrix, (WIDTH, HEIGHT))[..., None]) + \
                cv2.warpAffine(pixels, matrix, (WIDTH, HEIGHT)) * cv2.warpAffine(mask, matrix, (WIDTH, HEIGHT))[..., None]
            faces.append((index, *moved(box, points, matrix)))
        overlap = faces[0][1][2] > faces[1][1][0] and faces[1][1][2] > faces[0][1][0]
        yield t, still, overlap, frame.astype(np.uint8), faces


def scenes(photos, seed: int = 0):
    """Yield a ``Frame`` for every frame of every scene, one scene per photo (two for ``cross``)."""
    rng = np.random.default_rng(seed)
    queue, scene = list(photos), 0
    while queue:
        kind = KINDS[scene % len(KINDS)]
        if kind == "cross" and len(queue) < 2:
            break
        made = cross_scene(queue[:2], rng) if kind == "cross" else one_face_scene(scene, kind, queue[0], rng)
        queue = queue[2:] if kind == "cross" else queue[1:]
        for t, still, hard, pixels, faces in made:
            noisy = np.clip(pixels + rng.normal(0, 3, pixels.shape), 0, 255).astype(np.uint8)
            yield Frame(scene, kind, t, still, hard, noisy, faces)
        scene += 1
