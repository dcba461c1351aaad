"""Train as you deploy: add the face detector's own boxes to a stage-3 training list.

Whole-photo predict crops each face from the detector's box, not the labelled
one, and its false detections are the non-faces the classifier must reject.
This runs the detector on the list's photos (training photos only) and writes a
new list with, besides the original lines,
- every labelled face again, cropped from the detector box that matches it
  (IoU >= 0.5), with its labelled keypoints (label 1);
- every detection whose IoU with all labelled faces is below --max-iou (label 0).

    python stage3/face_detector_crops.py --data-root ../shared/data      # stage3/train_detector.txt
    facial-keypoints train --train-list stage3/train_detector.txt --finetune CKPT ...
    # or only the detector's crops, for the face/non-face loss and a teacher, not the keypoint loss:
    python stage3/face_detector_crops.py --new-only --out stage3/train_extra.txt
    facial-keypoints train --train-list stage3/train.txt --extra-list stage3/train_extra.txt ...
    # and the hard faces: those a looser detector finds that the list above lacks
    python stage3/face_detector_crops.py --min-face 24 --thresholds 0.3 0.4 0.4 \
        --faces-beyond stage3/train_extra.txt --out stage3/train_extra_hardpos.txt
"""
import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facial_keypoints.errors import run_reporting_errors
from facial_keypoints.runtime.face_detectors import create_face_detector
from facial_keypoints.geometry import BoxError, expand_box, iou
from facial_keypoints.data.labels import read_labels
from facial_keypoints.data.list_files import ListRecord, read_list, write_list
from facial_keypoints.data.lists import resolve_data_root
from facial_keypoints.runtime.face_detectors import detect_faces
from facial_keypoints.data.images import open_photo

STAGE_DIR = Path(__file__).resolve().parent


def face_detector_crops(records, labels_by_photo, root, detector, ratio: float, max_iou: float, progress=True):
    """(faces, non_faces): ListRecords cut from the detector's boxes on the records' photos."""
    faces, non_faces = [], []
    for photo in tqdm(sorted({r.image for r in records}), desc="detecting", disable=not progress):
        image = open_photo(root / photo)
        width, height = image.size
        labelled = labels_by_photo[photo]
        boxes = detect_faces(detector, image).boxes  # as predict sees the photo
        label_boxes = np.array([f.box for f in labelled]).reshape(-1, 4)
        for n, box in enumerate(boxes):
            overlaps = iou(box, label_boxes) if len(label_boxes) else np.zeros(0)
            best = int(overlaps.argmax()) if len(overlaps) else -1
            try:
                crop = expand_box(box, ratio, width, height)
            except BoxError:
                continue
            source = f"{photo}: detection {n}"
            if best >= 0 and overlaps[best] >= 0.5:
                keypoints = labelled[best].keypoints - crop[:2]
                faces.append(ListRecord(photo, crop, keypoints, 1, source, labelled[best].box))
            elif not len(overlaps) or overlaps.max() < max_iou:
                non_faces.append(ListRecord(photo, crop, None, 0, source, box))
    return faces, non_faces


def faces_beyond(faces, records, tolerance: float = 0.5) -> list:
    """The ``faces`` whose labelled face no face line of ``records`` holds (same photo, every point
    within ``tolerance`` px): the faces one detector finds and another missed."""
    held = defaultdict(list)
    for record in records:
        if record.is_face:
            held[record.image].append(record.absolute_keypoints())
    return [face for face in faces
            if not any(np.abs(points - face.absolute_keypoints()).max() <= tolerance for points in held[face.image])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", default=None, help="the data root (None: $FKD_DATA_ROOT, else data/)")
    parser.add_argument("--train-list", type=Path, default=STAGE_DIR / "train.txt",
                        help="the training list whose photos are searched")
    parser.add_argument("--out", type=Path, default=STAGE_DIR / "train_detector.txt", help="the list written")
    parser.add_argument("--expand-ratio", type=float, default=0.25, help="crop expansion, as the lists'")
    parser.add_argument("--max-iou", type=float, default=0.3,
                        help="a detection below this IoU with every labelled face is a false detection")
    parser.add_argument("--detector", default="mtcnn", help="mtcnn or haar")
    parser.add_argument("--min-face", type=int, default=40, help="smallest face the detector looks for, pixels")
    parser.add_argument("--thresholds", type=float, nargs=3, default=(0.5, 0.6, 0.6), metavar=("P", "R", "O"),
                        help="MTCNN's three stage thresholds (lower: more, harder false detections)")
    parser.add_argument("--new-only", action="store_true",
                        help="write only the detector's lines (for detector.py --extra-list), not the list's own")
    parser.add_argument("--faces-beyond", type=Path, default=None, metavar="LIST",
                        help="write LIST's lines and only the faces this detector finds that LIST has not "
                             "(no false detections): hard faces for detector.py --extra-list")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    def run():
        root = resolve_data_root(args.data_root)
        records = read_list(args.train_list)
        labels = defaultdict(list)
        for face in read_labels(root):
            labels[face.image].append(face)
        options = {"thresholds": tuple(args.thresholds)} if args.detector == "mtcnn" else {}
        detector = create_face_detector(args.detector, min_face=args.min_face, **options)
        faces, non_faces = face_detector_crops(records, labels, root, detector, args.expand_ratio, args.max_iou,
                                             progress=not args.no_progress)
        if args.faces_beyond is not None:
            held = read_list(args.faces_beyond)
            hard = faces_beyond(faces, held)
            write_list(args.out, held + hard)
            print(f"wrote {args.out}: the {len(held)} lines of {args.faces_beyond} and {len(hard)} of the detector's "
                  f"{len(faces)} faces that it lacks")
            return 0
        write_list(args.out, (faces + non_faces) if args.new_only else (records + faces + non_faces))
        kept = "" if args.new_only else f"the {len(records)} lines of {args.train_list}, "
        print(f"wrote {args.out}: {kept}{len(faces)} faces cropped from "
              f"detector boxes, {len(non_faces)} detector false positives as non-faces")
        return 0
    return run_reporting_errors(run)


if __name__ == "__main__":
    sys.exit(main())
