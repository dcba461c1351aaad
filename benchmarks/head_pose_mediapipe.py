"""Head pose from the 21 points against head pose fitted to MediaPipe FaceMesh's 468 landmarks, face by face.

    python3.11 -m venv /tmp/mpvenv && source /tmp/mpvenv/bin/activate
    pip install -r benchmarks/requirements-mediapipe.txt && pip install --no-deps .
    curl -o /tmp/canonical_face_model.obj https://raw.githubusercontent.com/google-ai-edge/mediapipe/master/mediapipe/modules/face_geometry/data/canonical_face_model.obj
    python benchmarks/head_pose_mediapipe.py --data-root ../shared/data --canonical-obj /tmp/canonical_face_model.obj

MediaPipe pins NumPy below 2, so this runs in a venv of its own. On the faces benchmarks/head_pose.py
uses (validation photos, detected faces that match a label), ``facial_keypoints.pose.head_pose`` on
the library's 21 points is set against two poses from FaceMesh (``mediapipe.solutions.face_mesh``,
static images, no iris refinement) on the same photo:

- Procrustes: a similarity fit (Umeyama: rotation, scale, shift) of the canonical face model's 468
  vertices (canonical_face_model.obj, in the head frame of ``facial_keypoints.pose``) onto FaceMesh's
  468 landmarks as 3D points, x and y in pixels and z times the photo's width, as MediaPipe documents
  its z; an orthographic reading that uses FaceMesh's depth;
- PnP: ``cv2.solvePnP`` (SQPnP, then Levenberg-Marquardt) of the same 468 vertices against FaceMesh's
  468 points in 2D, with the camera ``head_pose`` assumes (focal max(width, height), centre at the
  photo's centre): the same solver as ``head_pose`` with a dense model instead of 21 points.

Both rotations are read as (yaw, pitch, roll) by ``facial_keypoints.pose.angles_from_rotation``. A
FaceMesh face belongs to one of ours when its vertices behind our 21 points
(``facial_keypoints.pose.MEDIAPIPE_VERTICES``) lie on average within 25 % of our outer-eye-corner
distance of our points. Writes benchmarks/results/head_pose_mediapipe.md (or ``--out``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)
from head_pose import REPO, labelled_detections, validation_faces  # noqa: E402

from facial_keypoints.api import FaceLandmarker  # noqa: E402
from facial_keypoints.data.images import open_photo  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root  # noqa: E402
from facial_keypoints.keypoints import LEFT_EYE_OUTER, RIGHT_EYE_OUTER  # noqa: E402
from facial_keypoints.pose import MEDIAPIPE_VERTICES, angles_from_rotation, camera_matrix, head_pose  # noqa: E402

# canonical_face_model.obj of google-ai-edge/mediapipe (mediapipe/modules/face_geometry/data/, Apache
# License 2.0): the mediapipe wheel does not carry it, so it is read from a copy of the repository's file.
CANONICAL_OBJ = Path("/tmp/canonical_face_model.obj")


def canonical_vertices(path: Path) -> np.ndarray:
    """The model's 468 vertices in the head frame of ``facial_keypoints.pose``: mm, x right, y down, z into the head."""
    vertices = np.array([line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")],
                        dtype=np.float64)
    return vertices * [10.0, -10.0, -10.0]


def procrustes_rotation(model: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The rotation R of the similarity fit ``landmarks ~ s R model + t`` (Umeyama, least squares)."""
    a, b = model - model.mean(0), landmarks - landmarks.mean(0)
    u, _, vt = np.linalg.svd(b.T @ a)
    flip = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    return u @ flip @ vt


def pnp_rotation(model: np.ndarray, points: np.ndarray, width: int, height: int) -> np.ndarray:
    camera = camera_matrix(width, height)
    image = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 1, 2)
    _, rvec, tvec = cv2.solvePnP(model.reshape(-1, 1, 3), image, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    rvec, _ = cv2.solvePnPRefineLM(model.reshape(-1, 1, 3), image, camera, None, rvec, tvec)
    return cv2.Rodrigues(rvec)[0]


def mesh_faces(mesh, rgb: np.ndarray) -> list[np.ndarray]:
    """FaceMesh's faces in one photo, each (468, 3): x, y in pixels, z times the photo's width."""
    height, width = rgb.shape[:2]
    found = mesh.process(rgb).multi_face_landmarks or []
    return [np.array([(p.x * width, p.y * height, p.z * width) for p in face.landmark]) for face in found]


def partner(points: np.ndarray, meshes: list[np.ndarray]):
    """The FaceMesh face whose vertices behind the 21 points lie nearest ours, if near enough; and that distance."""
    ours = np.linalg.norm(points[LEFT_EYE_OUTER] - points[RIGHT_EYE_OUTER])
    distances = [np.mean(np.linalg.norm(points - np.array([mesh[list(v), :2].mean(0) for v in MEDIAPIPE_VERTICES]),
                                        axis=1)) / ours for mesh in meshes]
    if not distances or min(distances) > 0.25:
        return None, None
    best = int(np.argmin(distances))
    return meshes[best], distances[best]


def wrap(degrees):
    return (np.asarray(degrees) + 180.0) % 360.0 - 180.0


def compare(landmarker, mesh, root: Path, labelled: dict, model: np.ndarray) -> tuple[dict, list, int]:
    """{method: [(d yaw, d pitch, d roll)]}, the mean point distances of matched faces, and our face count."""
    differences, distances, ours = {"Procrustes": [], "PnP": []}, [], 0
    for number, (photo, truth) in enumerate(labelled.items()):
        rgb = np.ascontiguousarray(np.asarray(open_photo(root / photo)))
        height, width = rgb.shape[:2]
        faces, meshes = labelled_detections(landmarker, rgb, truth), mesh_faces(mesh, rgb)
        ours += len(faces)
        for _, points in faces:
            landmarks, distance = partner(points, meshes)
            if landmarks is None:
                continue
            pose = head_pose(points, width, height)
            distances.append(distance)
            fitted = {"Procrustes": procrustes_rotation(model, landmarks),
                      "PnP": pnp_rotation(model, landmarks[:, :2], width, height)}
            for method, rotation in fitted.items():
                differences[method].append(wrap(pose - angles_from_rotation(rotation)))
        print(f"{number + 1}/{len(labelled)} {photo}: {len(faces)} faces, {len(meshes)} FaceMesh faces", flush=True)
    return {k: np.array(v).reshape(-1, 3) for k, v in differences.items()}, distances, ours


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--photo-count", type=int, default=150, help="validation photos (all of them: about 148)")
    parser.add_argument("--canonical-obj", type=Path, default=CANONICAL_OBJ,
                        help="MediaPipe's mediapipe/modules/face_geometry/data/canonical_face_model.obj")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "head_pose_mediapipe.md")
    args = parser.parse_args(argv)
    import mediapipe as mp
    cv2.setNumThreads(1)
    root = resolve_data_root(args.data_root)
    labelled = validation_faces(args.photo_count)
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=20, refine_landmarks=False)
    differences, distances, ours = compare(FaceLandmarker(threads=1), mesh, root, labelled,
                                           canonical_vertices(args.canonical_obj))
    count = len(distances)
    lines = [f"`python benchmarks/head_pose_mediapipe.py --photo-count {args.photo_count}` on {machine()}; "
             f"mediapipe {mp.__version__} (FaceMesh, static images, no iris refinement), ONNX Runtime on 1 thread: "
             f"{count} of our {ours} labelled faces in {len(labelled)} validation photos have a FaceMesh face "
             f"(its vertices behind our 21 points lie on average {np.median(distances) * 100:.1f} % of our "
             "outer-eye-corner distance from ours, median).", "",
             "Our pose (`head_pose` on the 21 points) minus the pose fitted to FaceMesh's 468 landmarks, degrees:", "",
             "| FaceMesh pose | faces | median abs yaw | median abs pitch | median abs roll "
             "| median yaw | median pitch | median roll | 90th pct abs, yaw / pitch / roll |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for method, label in (("Procrustes", "3D Procrustes of the 468 landmarks (z times width)"),
                          ("PnP", "solvePnP of the 468 points, the camera of `head_pose`")):
        d = differences[method]
        absolute, signed, high = np.median(np.abs(d), 0), np.median(d, 0), np.percentile(np.abs(d), 90, axis=0)
        lines.append(f"| {label} | {len(d)} | " + " | ".join(f"{v:.2f}" for v in absolute) + " | "
                     + " | ".join(f"{v:+.2f}" for v in signed) + " | " + " / ".join(f"{v:.1f}" for v in high) + " |")
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
