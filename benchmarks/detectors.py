"""Face detectors for whole-photo predict: their box convention, recall, false faces and time, side by side.

    python benchmarks/detectors.py --data-root ../shared/data                    # validation photos
    python benchmarks/detectors.py --data-root ../shared/data --photos test      # the test photos, once

For each detector of ``facial_keypoints.face_detection`` (its raw boxes, before any mapping):

1. the mapping from its boxes to the labels' convention (centre shift and size ratios, medians
   over the labelled faces of up to 500 training photos whose best raw box overlaps at IoU >= 0.3),
   the constants ``face_detection`` keeps for it;
2. on the chosen photos (the validation split of stage3/train.txt, or stage3/test.txt's photos):
   recall of labelled faces at IoU >= 0.5 with the mapped boxes, then after the shipped model's
   face decision (as ``predict`` runs, second crop included), false faces per photo after it, and
   milliseconds per photo for the detector alone at 640x480 and 1920x1080 (10 photos resized,
   median of 3 runs each, on ``--threads``).

Writes benchmarks/results/detectors.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)

from facial_keypoints.api import FaceLandmarker  # noqa: E402
from facial_keypoints.face_detection import DETECTORS, create_detector  # noqa: E402
from facial_keypoints.geometry import iou, match_boxes  # noqa: E402
from facial_keypoints.labels import read_labels, read_list  # noqa: E402
from facial_keypoints.lists import blank_faces, resolve_data_root, split_by_photo  # noqa: E402
from facial_keypoints.photos import detect_faces, open_photo  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def raw_detector(name: str, min_face: int):
    """The detector with its mapping switched off: boxes as the detector draws them."""
    detector = create_detector(name, min_face=min_face)
    detector.to_label = (0.0, 0.0, 1.0, 1.0)
    return detector


def fit_mapping(detector, photos, labels_by_photo, root) -> tuple[tuple[float, ...], int]:
    """((shift x, shift y, width ratio, height ratio) medians, faces used) from raw boxes to labelled ones."""
    ratios = []
    for photo in photos:
        boxes = detect_faces(detector, open_photo(root / photo)).boxes
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


def recall_and_false(landmarker, detector, photos, labels_by_photo, root) -> tuple[float, float, float]:
    """(% found by the mapped boxes, % found after the face decision, false faces per photo after it)."""
    found_raw = found = total = false = 0
    landmarker._predictor.detector = detector
    for photo in photos:
        labelled = np.array([f.box for f in labels_by_photo[photo]]).reshape(-1, 4)
        image = open_photo(root / photo)
        candidates = detect_faces(detector, image).boxes
        result = landmarker.process(image)
        kept = np.array([f.box for f in result.accepted]).reshape(-1, 4)
        found_raw += len(match_boxes(candidates, labelled))
        found += len(match_boxes(kept, labelled))
        total += len(labelled)
        false += sum(1 for box in kept if not len(labelled) or iou(box, labelled).max() < 0.3)
    return 100.0 * found_raw / total, 100.0 * found / total, false / len(photos)


def milliseconds(detector, photos, root, size) -> float:
    times = []
    for photo in photos[:10]:
        image = open_photo(root / photo).resize(size, Image.Resampling.BILINEAR)
        detect_faces(detector, image)  # warm-up
        for _ in range(3):
            started = time.perf_counter()
            detect_faces(detector, image)
            times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--photos", choices=("validation", "test"), default="validation",
                        help="where recall and false faces are counted (the mappings are fitted on training photos)")
    parser.add_argument("--detectors", nargs="+", default=sorted(DETECTORS), choices=sorted(DETECTORS),
                        help="detectors to compare")
    parser.add_argument("--min-face", type=int, default=40, help="as predict's --min-face")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--yunet-max-side", type=int, nargs="+", default=[], metavar="PX",
                        help="also YuNet with photos shrunk to these sides (its default: YuNetDetector.MAX_SIDE)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "detectors.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = resolve_data_root(args.data_root)
    train, val = split_by_photo(read_list(REPO / "stage3" / "train.txt"), 0.1, 1)
    labels = read_labels(root, skip_bad=True)
    blank = {id(f) for f in blank_faces(labels, root, box_of=lambda f: f.box)}
    labels_by_photo = defaultdict(list)
    for face in labels:
        if id(face) not in blank:
            labels_by_photo[face.image].append(face)
    fit_photos = sorted({r.image for r in train})[:500]
    chosen = val if args.photos == "validation" else read_list(REPO / "stage3" / "test.txt")
    photos = sorted({r.image for r in chosen})
    landmarker = FaceLandmarker(threads=args.threads)
    rows = []
    for name in args.detectors:
        mapping, fitted = fit_mapping(raw_detector(name, args.min_face), fit_photos, labels_by_photo, root)
        detector = create_detector(name, min_face=args.min_face)
        raw, kept, false = recall_and_false(landmarker, detector, photos, labels_by_photo, root)
        ms = [milliseconds(detector, photos, root, size) for size in ((640, 480), (1920, 1080))]
        rows.append(f"| {name} | ({', '.join(f'{v:.3f}' for v in mapping)}) from {fitted} faces "
                    f"| ({', '.join(f'{v:.3f}' for v in detector.to_label)}) | {raw:.1f} % | {kept:.1f} % "
                    f"| {false:.3f} | {ms[0]:.1f} | {ms[1]:.1f} |")
        print(rows[-1], flush=True)
    for side in args.yunet_max_side:
        detector = create_detector("yunet", min_face=args.min_face)
        detector.MAX_SIDE = side
        raw, kept, false = recall_and_false(landmarker, detector, photos, labels_by_photo, root)
        ms = [milliseconds(detector, photos, root, size) for size in ((640, 480), (1920, 1080))]
        rows.append(f"| yunet, photos shrunk to {side} px | | | {raw:.1f} % | {kept:.1f} % | {false:.3f} "
                    f"| {ms[0]:.1f} | {ms[1]:.1f} |")
        print(rows[-1], flush=True)
    lines = [f"Machine: {machine()}; {len(photos)} {args.photos} photos; the shipped model decides; "
             f"--min-face {args.min_face}.", "",
             "| detector | mapping fitted on training photos (shift x, y; ratio w, h) | mapping in use "
             "| recall, mapped boxes (IoU >= 0.5) | recall after the face decision | false faces per photo "
             "| detector ms, 640x480 | detector ms, 1920x1080 |",
             "|---|---|---|---:|---:|---:|---:|---:|", *rows]
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
