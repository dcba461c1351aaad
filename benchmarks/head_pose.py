"""Head pose from the 21 points (``pose.head_pose``) where the truth is known: photos turned and mirrored.

    python benchmarks/head_pose.py --data-root ../shared/data

On the validation photos (the ones every training run holds out, ``--split-seed 1``), the faces that
``FaceLandmarker.detect`` finds and that match a labelled face (IoU >= 0.5 between the boxes the
points imply) get a pose. Then:

- roll under in-plane rotation: each photo turned about its centre by +-10, +-20, +-30 degrees
  (``cv2.warpAffine``, same size, border replicated), its faces detected again and matched by the
  turned box centre; a clockwise turn by t degrees must add t to roll and leave yaw and pitch (the
  photo's centre is the camera's, so the turn is a pure roll of the camera);
- mirror: each photo flipped left to right, its faces matched by the mirrored box centre; yaw and
  roll must change sign, pitch must stay;
- the time ``head_pose`` takes per face (one face a call, one thread).

Writes benchmarks/results/head_pose.md (or ``--out``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)

from facial_keypoints.api import FaceLandmarker  # noqa: E402
from facial_keypoints.data.images import open_photo  # noqa: E402
from facial_keypoints.data.list_files import read_list  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root, split_by_photo  # noqa: E402
from facial_keypoints.geometry import box_from_keypoints, iou  # noqa: E402
from facial_keypoints.pose import head_pose  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ANGLES = (-30, -20, -10, 10, 20, 30)  # clockwise as seen, degrees


def validation_faces(count: int) -> dict[str, np.ndarray]:
    """{photo: (F, 21, 2) labelled points} for ``count`` validation photos with faces, spread over the list."""
    held_out = split_by_photo(read_list(REPO / "stage3" / "train.txt"), 0.1, 1)[1]
    labels: dict[str, list] = {}
    for record in held_out:
        if record.is_face:
            labels.setdefault(record.image, []).append(record.absolute_keypoints())
    photos = sorted(labels)
    chosen = [photos[i] for i in np.unique(np.linspace(0, len(photos) - 1, min(count, len(photos))).astype(int))]
    return {photo: np.array(labels[photo]) for photo in chosen}


def labelled_detections(landmarker, rgb: np.ndarray, labelled: np.ndarray) -> list:
    """The detected faces (box, points) that match a labelled face at IoU >= 0.5 of their points' boxes."""
    truth = box_from_keypoints(labelled).reshape(-1, 4)
    return [(np.asarray(f.box, float), f.keypoints.astype(float)) for f in landmarker.detect(rgb)
            if iou(box_from_keypoints(f.keypoints.astype(float)), truth).max() >= 0.5]


def nearest(centre, faces, limit: float):
    """The points of the face whose box centre lies nearest ``centre``, if within ``limit`` pixels."""
    if not faces:
        return None
    distances = [np.hypot(*((box[:2] + box[2:]) / 2 - centre)) for box, _ in faces]
    best = int(np.argmin(distances))
    return faces[best][1] if distances[best] <= limit else None


def wrap(degrees):
    return (np.asarray(degrees) + 180.0) % 360.0 - 180.0


def labelled_free(landmarker, rgb: np.ndarray) -> list:
    """Every detected face (box, points) of a turned or mirrored copy, which has no labels of its own."""
    return [(np.asarray(f.box, float), f.keypoints.astype(float)) for f in landmarker.detect(rgb)]


def turned_and_mirrored(landmarker, rgb: np.ndarray, faces: list) -> tuple[dict, list]:
    """{angle: [(d yaw, d pitch, roll error)]} over the turned copies and [(yaw sum, pitch difference,
    roll sum)] over the mirrored copy, for the faces of one photo."""
    height, width = rgb.shape[:2]
    poses = [head_pose(points, width, height) for _, points in faces]
    turned: dict[int, list] = {angle: [] for angle in ANGLES}
    for angle in ANGLES:
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -angle, 1.0)  # cv2: positive is anticlockwise
        copy = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        found = labelled_free(landmarker, copy)
        for (box, _), pose in zip(faces, poses):
            centre = matrix[:, :2] @ ((box[:2] + box[2:]) / 2) + matrix[:, 2]
            points = nearest(centre, found, 0.25 * max(box[2:] - box[:2]))
            if points is not None:
                change = wrap(head_pose(points, width, height) - pose)
                turned[angle].append((change[0], change[1], wrap(change[2] - angle)))
    mirrored = []
    found = labelled_free(landmarker, np.ascontiguousarray(rgb[:, ::-1]))
    for (box, _), pose in zip(faces, poses):
        centre = np.array([width - (box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        points = nearest(centre, found, 0.25 * max(box[2:] - box[:2]))
        if points is not None:
            other = head_pose(points, width, height)
            mirrored.append((wrap(pose[0] + other[0]), pose[1] - other[1], wrap(pose[2] + other[2])))
    return turned, mirrored


def us_per_face(faces: list, runs: int = 20) -> float:
    """Median microseconds of one ``head_pose`` call on one face."""
    times = []
    for _ in range(runs):
        for points, width, height in faces:
            start = time.perf_counter()
            head_pose(points, width, height)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e6)


def med(values, column: int) -> str:
    values = np.abs(np.asarray(values, float).reshape(-1, 3)[:, column])
    return f"{np.median(values):.2f}" if len(values) else "-"


def p90(values, column: int) -> str:
    values = np.abs(np.asarray(values, float).reshape(-1, 3)[:, column])
    return f"{np.percentile(values, 90):.2f}" if len(values) else "-"


def report(args, turned: dict, mirrored: list, poses: np.ndarray, us: float) -> list[str]:
    every = [row for angle in ANGLES for row in turned[angle]]
    spread = np.percentile(np.abs(poses), [50, 90], axis=0)
    lines = [f"`python benchmarks/head_pose.py --photo-count {args.photo_count}` on {machine()}; ONNX Runtime "
             f"and OpenCV on 1 thread: {len(poses)} labelled faces found in {args.photos_used} validation photos. "
             f"Their poses, |yaw|, |pitch|, |roll| in degrees: median {spread[0, 0]:.1f}, {spread[0, 1]:.1f}, "
             f"{spread[0, 2]:.1f}; 90th percentile {spread[1, 0]:.1f}, {spread[1, 1]:.1f}, {spread[1, 2]:.1f}.", "",
             "Photo turned clockwise about its centre by t degrees: roll error = (roll turned - roll) - t; "
             "yaw and pitch should not change. Degrees.", "",
             "| turn t | faces matched | median roll error | 90th pct roll error | median change of yaw "
             "| median change of pitch |", "|---:|---:|---:|---:|---:|---:|"]
    for angle, rows in [*turned.items(), ("all", every)]:
        lines.append(f"| {angle} | {len(rows)} | {med(rows, 2)} | {p90(rows, 2)} | {med(rows, 0)} | {med(rows, 1)} |")
    lines += ["", "Photo mirrored left to right: yaw and roll should change sign, pitch should stay. Degrees.", "",
              "| faces matched | median yaw + mirrored yaw | median roll + mirrored roll "
              "| median pitch - mirrored pitch | 90th pct, yaw / roll / pitch |", "|---:|---:|---:|---:|---|",
              f"| {len(mirrored)} | {med(mirrored, 0)} | {med(mirrored, 2)} | {med(mirrored, 1)} | "
              f"{p90(mirrored, 0)} / {p90(mirrored, 2)} / {p90(mirrored, 1)} |", "",
              f"`head_pose`, one face a call: **{us:.0f} µs** per face (median)."]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--photo-count", type=int, default=150, help="validation photos (all of them: about 148)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "head_pose.md")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    root = resolve_data_root(args.data_root)
    landmarker = FaceLandmarker(threads=1)
    labelled = validation_faces(args.photo_count)
    args.photos_used = len(labelled)
    turned, mirrored, timed, poses = {angle: [] for angle in ANGLES}, [], [], []
    for number, (photo, truth) in enumerate(labelled.items()):
        rgb = np.asarray(open_photo(root / photo))
        faces = labelled_detections(landmarker, rgb, truth)
        one_turned, one_mirrored = turned_and_mirrored(landmarker, rgb, faces)
        for angle in ANGLES:
            turned[angle] += one_turned[angle]
        mirrored += one_mirrored
        timed += [(points, rgb.shape[1], rgb.shape[0]) for _, points in faces]
        poses += [head_pose(points, rgb.shape[1], rgb.shape[0]) for _, points in faces]
        print(f"{number + 1}/{len(labelled)} {photo}: {len(faces)} faces", flush=True)
    lines = report(args, turned, mirrored, np.array(poses).reshape(-1, 3), us_per_face(timed))
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
