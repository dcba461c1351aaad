"""The validation figures a stage-3 candidate is judged by, side by side with the shipped default.

    python scripts/validate_candidate.py results/run/best.pt --data-root ../shared/data
    python scripts/validate_candidate.py A.pt B.pt --against facial_keypoints/weights/default.pt

Every figure comes from the validation split of the training list (the photos that
training held out, same --val-fraction and --seed; never the test list), for each
checkpoint in float and, where ``CKPT.int8.onnx`` exists (``python -m facial_keypoints
quantize --checkpoint CKPT --list stage3/train.txt``), in int8:

- on the validation crops: the stage-3 loss (the training defaults: a·CE + b·Wing on
  faces), keypoint ``nme_io``, face and non-face recall of the deployed decision (unsure
  crops also seen mirrored) and its log loss;
- on the validation photos (int8 where there is one, as ``predict`` runs): with
  ``predict``'s detector, the recall of labelled faces after the classifier and the false
  faces per photo at the checkpoint's threshold, and the classifier's log loss on the
  candidates (8 of them far from every face); with ``--loose``'s detector, the log loss on
  about 300 candidates (108 far), so one ambiguous candidate cannot decide it.
- on larger pools of validation crops (``facial_keypoints.validation_pool``; seeded, never
  written to a list): non-faces drawn as the lists draw them (IoU < 0.3 with every face,
  face-sized, the same expansion), 20 per face, and each face's crop shifted and scaled a
  little (the pool: 5 copies, up to 5 % / 10 %) or a lot (the hard pool: 20 copies, up to
  15 % / 25 %; its non-faces are the pool's). The list's validation crops are all right for
  every model since session 7 (100 / 100 %); the test list's differences between models are
  one to three crops, which only pools some times larger can see.

It prints one markdown table and decides nothing: write the rule before running it.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
import calibrate_face_threshold as calibrate  # noqa: E402

from facial_keypoints.detector_cli import classification_metrics, list_settings  # noqa: E402
from facial_keypoints.evaluation import attach_face_boxes, face_metrics, predict_records  # noqa: E402
from facial_keypoints.export import load_backend  # noqa: E402
from facial_keypoints.face_detection import create_detector  # noqa: E402
from facial_keypoints.labels import read_labels, read_list  # noqa: E402
from facial_keypoints.lists import resolve_data_root, split_by_photo  # noqa: E402
from facial_keypoints.photos import PhotoPredictor, face_threshold_of  # noqa: E402
from facial_keypoints.quantize import int8_path  # noqa: E402
from facial_keypoints.validation_pool import HARD_POOL, POOL, classifier_pool  # noqa: E402
from facial_keypoints.weights import DEFAULT_CHECKPOINT  # noqa: E402


def stage3_loss():
    """The loss ``stage3/detector.py --phase test`` reports, with the stage-3 training defaults."""
    spec = importlib.util.spec_from_file_location("stage3_detector", REPO / "stage3" / "detector.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.detector().parser().parse_args(["--phase", "test"])
    return module.loss_factory(args)


def crop_figures(is_face, face_prob, threshold: float) -> dict:
    """Recalls (in %) and log loss of face probabilities on labelled crops."""
    is_face = np.asarray(is_face, dtype=bool)
    face_prob = np.asarray(face_prob, dtype=float)
    counts = classification_metrics(is_face, face_prob, threshold)
    return {"face_recall": counts["face_recall"], "non_face_recall": counts["non_face_recall"],
            "log_loss": calibrate.candidate_log_loss(face_prob[is_face], face_prob[~is_face])}


def photo_figures(model, config, photos, labels_by_photo, root, detector) -> dict:
    """Whole-photo recall / false faces at the checkpoint's threshold and the candidates' log loss."""
    predictor = PhotoPredictor(model, config, detector, face_threshold=0.0)
    face_best, far = calibrate.candidates(photos, labels_by_photo, predictor, root)
    at_threshold = calibrate.sweep(face_best, far, len(photos), [face_threshold_of(config)])[0]
    return {**at_threshold, "log_loss": calibrate.candidate_log_loss(face_best, far), "far": len(far)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--against", type=Path, default=DEFAULT_CHECKPOINT, help="the model to beat (first row)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--train-list", type=Path, default=REPO / "stage3" / "train.txt")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--no-photos", action="store_true", help="the crop figures only (seconds, not minutes)")
    parser.add_argument("--no-pools", action="store_true", help="without the pool figures")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    _, val = split_by_photo(read_list(args.train_list), args.val_fraction, args.seed)
    attach_face_boxes(val, root)
    photos = sorted({r.image for r in val})
    labels_by_photo = defaultdict(list)
    for face in read_labels(root, skip_bad=True):
        labels_by_photo[face.image].append(face)
    torch.set_num_threads(2)
    loss_fn = stage3_loss()
    detectors = {} if args.no_photos else {"photos": create_detector("mtcnn"),
                                           "loose": create_detector("mtcnn", **calibrate.LOOSE)}
    expand_ratio = list_settings(args.train_list).get("expand_ratio", 0.25)
    pools = {} if args.no_pools else {name: classifier_pool(val, labels_by_photo, root, expand_ratio, **settings)
                                      for name, settings in (("pool", POOL), ("hard pool", HARD_POOL))}
    print(f"{len(val)} validation crops ({sum(r.is_face for r in val)} faces) of {len(photos)} photos" + "".join(
        f"; {name}: {sum(r.is_face for r in pool)} jittered faces, {sum(not r.is_face for r in pool)} non-faces"
        for name, pool in pools.items()))
    print("| model | backend | loss | nme_io | face / non-face recall | crop log loss | pool face / non-face recall "
          "| pool log loss | hard pool face / non-face recall | hard pool log loss "
          "| photo recall | false faces per photo | candidate log loss | loose log loss |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for checkpoint in [args.against, *args.checkpoints]:
        model, payload = load_backend(checkpoint, "torch")
        config = payload["config"]
        backends = [("float", model)]
        if int8_path(checkpoint).is_file():  # through load_backend: a referee the config names comes too
            backends.append(("int8", load_backend(checkpoint, "onnx-int8", threads=2)[0]))
        for name, net in backends:
            result = predict_records(net, config, val, root, torch.device("cpu"), cache_dir=args.cache_dir,
                                     loss_fn=loss_fn, progress=False)
            crops = crop_figures([r.is_face for r in val], result["face_prob"], face_threshold_of(config))
            row = (f"| {checkpoint} | {name} | {result['loss']:.4f} | {face_metrics(val, result)['nme_io']:.3f} % "
                   f"| {crops['face_recall']:.2f} / {crops['non_face_recall']:.2f} % | {crops['log_loss']:.4f} ")
            for pool in pools.values() or [None, None]:
                if pool is None:
                    row += "| | "
                    continue
                pool_result = predict_records(net, config, pool, root, torch.device("cpu"),
                                              cache_dir=args.cache_dir, progress=False)
                pooled = crop_figures([r.is_face for r in pool], pool_result["face_prob"], face_threshold_of(config))
                row += (f"| {pooled['face_recall']:.2f} / {pooled['non_face_recall']:.2f} % "
                        f"| {pooled['log_loss']:.4f} ")
            if detectors and net is backends[-1][1]:  # the photos once, with the backend predict would use
                seen = {key: photo_figures(net, config, photos, labels_by_photo, root, detector)
                        for key, detector in detectors.items()}
                row += (f"| {seen['photos']['recall']:.1f} % | {seen['photos']['false_per_photo']:.3f} "
                        f"| {seen['photos']['log_loss']:.4f} | {seen['loose']['log_loss']:.4f} |")
            else:
                row += "| | | | |"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
