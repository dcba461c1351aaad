"""What the detector benchmarks share, without torch (benchmarks/blazeface.py runs in a venv without it):
the labelled photos, the box mapping fit, recall and false boxes of mapped boxes, and interleaved timing."""
from __future__ import annotations

import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from facial_keypoints.geometry import iou, match_boxes
from facial_keypoints.data.images import open_photo
from facial_keypoints.data.labels import read_labels
from facial_keypoints.data.list_files import read_list
from facial_keypoints.data.lists import blank_faces, split_by_photo

REPO = Path(__file__).resolve().parents[1]


def labelled_photos(root: Path, which: str):
    """(labels by photo without privacy blackouts, up to 500 training photos to fit mappings on, the
    ``which`` photos: "validation" (the validation split of stage3/train.txt) or "test")."""
    train, val = split_by_photo(read_list(REPO / "stage3" / "train.txt"), 0.1, 1)
    labels = read_labels(root, skip_bad=True)
    blank = {id(f) for f in blank_faces(labels, root, box_of=lambda f: f.box)}
    labels_by_photo = defaultdict(list)
    for face in labels:
        if id(face) not in blank:
            labels_by_photo[face.image].append(face)
    chosen = val if which == "validation" else read_list(REPO / "stage3" / "test.txt")
    return labels_by_photo, sorted({r.image for r in train})[:500], sorted({r.image for r in chosen})


def fit_mapping(boxes_of, photos, labels_by_photo, root) -> tuple[tuple[float, ...], int]:
    """((shift x, shift y, width ratio, height ratio) medians, faces used) from a detector's raw boxes
    (``boxes_of(image)``: (N, 4) x1 y1 x2 y2) to the labelled ones, over faces whose best box has IoU >= 0.3."""
    ratios = []
    for photo in photos:
        boxes = boxes_of(open_photo(root / photo))
        for face in labels_by_photo[photo]:
            if not len(boxes):
                break
            overlaps = iou(face.box, boxes)
            best = int(np.argmax(overlaps))
            if overlaps[best] < 0.3:
                continue
            b = boxes[best]
            w, h = b[2] - b[0], b[3] - b[1]
            label_centre = (face.box[:2] + face.box[2:]) / 2
            centre = (b[:2] + b[2:]) / 2
            ratios.append([(label_centre[0] - centre[0]) / w, (label_centre[1] - centre[1]) / h,
                           (face.box[2] - face.box[0]) / w, (face.box[3] - face.box[1]) / h])
    return tuple(float(v) for v in np.median(np.array(ratios), axis=0)), len(ratios)


def found_and_false(boxes, labelled: list) -> tuple[int, int]:
    """(labelled faces matched at IoU >= 0.5, boxes with IoU < 0.3 against every labelled face)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    truth = np.array([f.box for f in labelled]).reshape(-1, 4)
    false = sum(1 for box in boxes if not len(truth) or iou(box, truth).max() < 0.3)
    return len(match_boxes(boxes, truth)), false


def recall_of_boxes(boxes_of, photos, labels_by_photo, root) -> tuple[float, float]:
    """(% of labelled faces found by ``boxes_of``'s boxes at IoU >= 0.5, false boxes per photo)."""
    found = false = total = 0
    for photo in photos:
        hits, misses = found_and_false(boxes_of(open_photo(root / photo)), labels_by_photo[photo])
        found, false, total = found + hits, false + misses, total + len(labels_by_photo[photo])
    return 100.0 * found / total, false / len(photos)


def ms_at_sizes(detectors: dict, photos, root, sizes, runs: int = 3) -> dict:
    """{(name, (w, h)): median ms} of each ``detectors[name](image)`` on up to 10 photos resized to each
    size, ``runs`` each after a warm-up; the detectors take turns photo by photo, so the machine's
    drift from minute to minute falls on all alike."""
    times = defaultdict(list)
    for size in sizes:
        for photo in photos[:10]:
            image = open_photo(root / photo).resize(size, Image.Resampling.BILINEAR)
            for run in range(runs + 1):
                for name, detect in detectors.items():
                    started = time.perf_counter()
                    detect(image)
                    if run:
                        times[name, size].append((time.perf_counter() - started) * 1e3)
    return {key: statistics.median(v) for key, v in times.items()}
