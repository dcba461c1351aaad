"""The validation figures a stage-3 model is chosen by, for one or more checkpoints side by side.

    python benchmarks/validation.py --data-root ../shared/data                   # the shipped model
    python benchmarks/validation.py A.pt B.pt C.pt --backends torch --data-root ../shared/data

Every figure comes from the validation split of stage3/train.txt (the photos training held
out: 10 % of the training photos, ``--split-seed 1`` as every recipe uses; never the test
list), with each checkpoint's own face threshold:

- on the validation crops: keypoint ``nme_io`` and the face decision's errors;
- on larger pools of validation crops (``facial_keypoints.evaluation.validation_pool``; seeded, never
  written to a list): non-faces drawn as the lists draw them and each face's crop shifted
  and scaled a little (the pool) or a lot (the hard pool): the errors there tell apart models
  that the 360 validation crops cannot;
- on the validation photos, through ``predict``'s detector: the recall of labelled faces
  (IoU >= 0.5) and the false faces per photo, with the second crop from the keypoints' box
  (as ``predict`` runs) and without it (``--no-refine``).

Prints and writes one markdown table (benchmarks/results/validation.md); it decides nothing:
write the rule before running it.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from common import machine  # noqa: E402  (benchmarks/common.py, beside this file)

from facial_keypoints.data.list_files import attach_face_boxes  # noqa: E402
from facial_keypoints.evaluation.evaluate import face_metrics, predict_records  # noqa: E402
from facial_keypoints.runtime.face_detectors import create_face_detector  # noqa: E402
from facial_keypoints.geometry import iou, match_boxes  # noqa: E402
from facial_keypoints.data.labels import read_labels
from facial_keypoints.data.list_files import read_list  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root, split_by_photo  # noqa: E402
from facial_keypoints.runtime.photos import PhotoPredictor, face_threshold_of  # noqa: E402
from facial_keypoints.runtime.loading import BACKENDS, load  # noqa: E402
from facial_keypoints.evaluation.validation_pool import HARD_POOL, POOL, classifier_pool  # noqa: E402
from facial_keypoints.weights import DEFAULT_CHECKPOINT  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def decision_errors(records, face_prob, threshold: float) -> tuple[int, int]:
    """(faces called non-faces, non-faces called faces) among ``records``."""
    is_face = np.array([r.is_face for r in records])
    said_face = np.asarray(face_prob) >= threshold
    return int((~said_face[is_face]).sum()), int(said_face[~is_face].sum())


def photo_figures(predictor, photos, labels_by_photo, root) -> tuple[float, float]:
    """(% of labelled faces found at IoU >= 0.5 after the face decision, false faces per photo)."""
    found = total = false = 0
    for photo in photos:
        labelled = np.array([f.box for f in labels_by_photo[photo]]).reshape(-1, 4)
        _, result = predictor.predict_file(root / photo)
        boxes = np.array([f.box for f in result.accepted]).reshape(-1, 4)
        found += len(match_boxes(boxes, labelled))
        total += len(labelled)
        false += sum(1 for box in boxes if not len(labelled) or iou(box, labelled).max() < 0.3)
    return 100.0 * found / max(total, 1), false / max(len(photos), 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", type=Path, nargs="*", default=[DEFAULT_CHECKPOINT],
                        help="stage-3 checkpoints (two-headed)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=["auto"],
                        help="a row per checkpoint and backend (as predict's --backend)")
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--train-list", type=Path, default=REPO / "stage3" / "train.txt")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="as the training runs'")
    parser.add_argument("--split-seed", type=int, default=1, help="as the training runs'")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "validation.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    root = resolve_data_root(args.data_root)
    _, val = split_by_photo(read_list(args.train_list), args.val_fraction, args.split_seed)
    attach_face_boxes(val, root)
    photos = sorted({r.image for r in val})
    labels_by_photo = defaultdict(list)
    for face in read_labels(root, skip_bad=True):
        labels_by_photo[face.image].append(face)
    sets = {"crops": val, "pool": classifier_pool(val, labels_by_photo, root, 0.25, **POOL),
            "hard pool": classifier_pool(val, labels_by_photo, root, 0.25, **HARD_POOL)}
    detector = create_face_detector()  # predict's default (auto)
    sizes = "; ".join(f"{name}: {sum(r.is_face for r in s)} faces, {sum(not r.is_face for r in s)} non-faces"
                      for name, s in sets.items())
    lines = [f"Validation split of {args.train_list.name} ({len(photos)} photos; {sizes}). Machine: {machine()}.",
             "Decision cells: faces called non-faces / non-faces called faces.", "",
             "| checkpoint | backend | threshold | nme_io (crops) | crops | pool | hard pool "
             "| photo recall / false faces per photo | the same with --no-refine |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for checkpoint, wanted in ((c, b) for c in args.checkpoints for b in args.backends):
        model, payload, backend = load(checkpoint, wanted, threads=2)
        config = payload["config"]
        threshold = face_threshold_of(config)
        cells = []
        for name, records in sets.items():
            result = predict_records(model, config, records, root, torch.device("cpu"), progress=False)
            if name == "crops":
                nme = face_metrics(records, result)["nme_io"]
            cells.append("{} / {}".format(*decision_errors(records, result["face_prob"], threshold)))
        seen = [photo_figures(PhotoPredictor(model, config, detector, refine=refine), photos, labels_by_photo, root)
                for refine in (True, False)]
        lines.append(f"| {checkpoint} | {backend} | {threshold:.2f} | {nme:.3f} % | " + " | ".join(cells) + " | "
                     + " | ".join(f"{recall:.1f} % / {false:.3f}" for recall, false in seen) + " |")
        print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
