"""Face detectors for whole-photo predict: their box convention, recall, false faces and time, side by side.

    python benchmarks/detectors.py --data-root ../shared/data                    # validation photos
    python benchmarks/detectors.py --data-root ../shared/data --photos test      # the test photos, once

For each detector of ``facial_keypoints.runtime.face_detectors`` (its raw boxes, before any mapping):

1. the mapping from its boxes to the labels' convention (centre shift and size ratios, medians
   over the labelled faces of up to 500 training photos whose best raw box overlaps at IoU >= 0.3),
   the constants ``face_detection`` keeps for it;
2. on the chosen photos (the validation split of stage3/train.txt, or stage3/test.txt's photos):
   recall of labelled faces at IoU >= 0.5 with the mapped boxes, then after the shipped model's
   face decision (as ``predict`` runs, second crop included), false faces per photo after it, and
   milliseconds per photo for the detector alone (its shrinking included) at 640x480 and 1920x1080
   (10 photos resized, median of 3 runs each, the detectors taking turns photo by photo, on ``--threads``).

Writes benchmarks/results/detectors.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)
from detector_boxes import REPO, fit_mapping, found_and_false, labelled_photos, ms_at_sizes  # noqa: E402

from facial_keypoints.api import FaceLandmarker  # noqa: E402
from facial_keypoints.runtime.face_detectors import FACE_DETECTORS, create_face_detector, detect_faces  # noqa: E402
from facial_keypoints.data.images import open_photo  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root  # noqa: E402

SIZES = ((640, 480), (1920, 1080))


def raw_boxes(name: str, min_face: int):
    """``image -> boxes`` of the detector with its mapping switched off: boxes as the detector draws them."""
    detector = create_face_detector(name, min_face=min_face)
    detector.to_label = (0.0, 0.0, 1.0, 1.0)
    return lambda image: detect_faces(detector, image).boxes


def recall_and_false(landmarker, detector, photos, labels_by_photo, root) -> tuple[float, float, float]:
    """(% found by the mapped boxes, % found after the face decision, false faces per photo after it)."""
    found_raw = found = total = false = 0
    landmarker.predictor.face_detector = detector
    for photo in photos:
        labelled = labels_by_photo[photo]
        image = open_photo(root / photo)
        found_raw += found_and_false(detect_faces(detector, image).boxes, labelled)[0]
        hits, misses = found_and_false([f.box for f in landmarker.process(image).accepted], labelled)
        found, false, total = found + hits, false + misses, total + len(labelled)
    return 100.0 * found_raw / total, 100.0 * found / total, false / len(photos)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--photos", choices=("validation", "test"), default="validation",
                        help="where recall and false faces are counted (the mappings are fitted on training photos)")
    parser.add_argument("--detectors", nargs="+", default=sorted(FACE_DETECTORS), choices=sorted(FACE_DETECTORS),
                        help="detectors to compare")
    parser.add_argument("--min-face", type=int, default=40, help="as predict's --min-face")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--yunet-max-side", type=int, nargs="+", default=[], metavar="PX",
                        help="also YuNet with photos shrunk to these sides (its default: YuNetDetector.max_side)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "detectors.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = resolve_data_root(args.data_root)
    labels_by_photo, fit_photos, photos = labelled_photos(root, args.photos)
    landmarker = FaceLandmarker(threads=args.threads)
    candidates = [(name, name, None) for name in args.detectors]
    candidates += [(f"yunet, photos shrunk to {side} px", "yunet", side) for side in args.yunet_max_side]
    rows, timed = [], {}
    for label, name, side in candidates:
        detector = create_face_detector(name, min_face=args.min_face)
        detector.max_side = side or detector.max_side
        if side is None:
            mapping, fitted = fit_mapping(raw_boxes(name, args.min_face), fit_photos, labels_by_photo, root)
            fit = (f"({', '.join(f'{v:.3f}' for v in mapping)}) from {fitted} faces "
                   f"| ({', '.join(f'{v:.3f}' for v in detector.to_label)})")
        else:
            fit = "|"
        raw, kept, false = recall_and_false(landmarker, detector, photos, labels_by_photo, root)
        rows.append([label, fit, f"{raw:.1f} % | {kept:.1f} % | {false:.3f}"])
        timed[label] = lambda image, detector=detector: detect_faces(detector, image)
        print(rows[-1], flush=True)
    ms = ms_at_sizes(timed, photos, root, SIZES)
    rows = [f"| {label} | {fit} | {counts} | " + " | ".join(f"{ms[label, size]:.1f}" for size in SIZES) + " |"
            for label, fit, counts in rows]
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
