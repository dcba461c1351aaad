"""What the referee and the mirrored second look add to the face decision, against training noise.

    python benchmarks/face_decision.py --data-root ../shared/data --noise A.pt B.pt C.pt

Validation split of stage3/train.txt only (the photos training held out).  For the
shipped student, with and without its referee and its mirrored look at unsure crops,
int8 as ``predict`` runs it and float, and for each ``--noise`` checkpoint (draws of
one training recipe that differ only in the seed), alone: the errors of the face
decision on the validation crops, the pool and the hard pool
(``facial_keypoints.validation_pool``), and on the validation photos the recall of
labelled faces and the false faces per photo.  Writes benchmarks/results/face_decision.md.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
import calibrate_face_threshold as calibrate  # noqa: E402

from facial_keypoints.detector_cli import list_settings  # noqa: E402
from facial_keypoints.evaluation import attach_face_boxes, predict_records  # noqa: E402
from facial_keypoints.export import _load_one_backend  # noqa: E402
from facial_keypoints.face_decision import UNSURE  # noqa: E402
from facial_keypoints.face_detection import create_detector  # noqa: E402
from facial_keypoints.labels import read_labels, read_list  # noqa: E402
from facial_keypoints.lists import resolve_data_root, split_by_photo  # noqa: E402
from facial_keypoints.photos import PhotoPredictor  # noqa: E402
from facial_keypoints.referee import Refereed  # noqa: E402
from facial_keypoints.validation_pool import HARD_POOL, POOL, classifier_pool  # noqa: E402
from facial_keypoints.weights import DEFAULT_CHECKPOINT, REFEREE_CHECKPOINT  # noqa: E402


def errors(records, probs, threshold):
    is_face = np.array([r.is_face for r in records])
    said = np.asarray(probs) >= threshold
    return int((~said[is_face]).sum()), int(said[~is_face].sum())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--train-list", type=Path, default=REPO / "stage3" / "train.txt")
    parser.add_argument("--noise", type=Path, nargs="*", default=[], help="draws of one recipe, other seeds")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "face_decision.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    root = resolve_data_root(args.data_root)
    _, val = split_by_photo(read_list(args.train_list), 0.1, 1)
    attach_face_boxes(val, root)
    photos = sorted({r.image for r in val})
    labels_by_photo = defaultdict(list)
    for face in read_labels(root, skip_bad=True):
        labels_by_photo[face.image].append(face)
    ratio = list_settings(args.train_list).get("expand_ratio", 0.25)
    sets = {"crops": val, "pool": classifier_pool(val, labels_by_photo, root, ratio, **POOL),
            "hard pool": classifier_pool(val, labels_by_photo, root, ratio, **HARD_POOL)}
    detector = create_detector("mtcnn")
    sizes = ", ".join(f"{name} {sum(r.is_face for r in s)} faces / {sum(not r.is_face for r in s)} non-faces"
                      for name, s in sets.items())

    def row(label, model, config, mirror, thresholds):
        band = UNSURE if mirror else None
        probs = {name: predict_records(model, config, s, root, torch.device("cpu"), progress=False,
                                       mirror_band=band)["face_prob"] for name, s in sets.items()}
        predictor = PhotoPredictor(model, config, detector, face_threshold=0.0)
        predictor.runner.mirror_band = band
        face_best, far = calibrate.candidates(photos, labels_by_photo, predictor, root)
        lines = []
        for t in thresholds:
            cells = [f"{a} / {b}" for a, b in (errors(sets[n], probs[n], t) for n in sets)]
            at = calibrate.sweep(face_best, far, len(photos), [t])[0]
            lines.append(f"| {label} | {t:.2f} | " + " | ".join(cells)
                         + f" | {at['recall']:.1f} % | {at['false_per_photo']:.3f} |")
            print(lines[-1], flush=True)
        return lines

    table = [f"Validation: {sizes}; {len(photos)} photos. Cells: faces missed / non-faces accepted.", "",
             "| model | threshold | crops | pool | hard pool | photo recall | false faces per photo |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for backend, name in (("onnx-int8", "int8"), ("torch", "float")):
        student, payload = _load_one_backend(DEFAULT_CHECKPOINT, backend, threads=2)
        referee, _ = _load_one_backend(REFEREE_CHECKPOINT, backend, threads=2)
        config = payload["config"]
        pair = Refereed(student, referee, config["referee"]["band"])
        table += row(f"student + referee + mirror ({name}, shipped)", pair, config, True, [0.45])
        table += row(f"student + referee ({name})", pair, config, False, [0.45])
        table += row(f"student + mirror ({name})", student, config, True, [0.45, 0.5])
        table += row(f"student alone ({name})", student, config, False, [0.45, 0.5])
    for path in args.noise:
        model, payload = _load_one_backend(path, "torch")
        table += row(f"{path.parent.name} alone (float)", model, payload["config"], False, [0.45, 0.5])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(table) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
