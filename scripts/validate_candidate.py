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
- on a larger pool of validation crops (``--pool-non-faces`` per face, ``--pool-jitters``
  per face; seeded, never written to a list): non-faces drawn as the lists draw them (IoU <
  0.3 with every face, face-sized, the same expansion) and each face's crop shifted and
  scaled a little, as a detector frames it. The list's validation crops are all right for
  every model since session 7 (100 / 100 %); the test list's differences between models are
  one or two crops, which only a pool some times larger can see.

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
from facial_keypoints.export import OnnxModel, load_backend  # noqa: E402
from facial_keypoints.face_detection import adjust_boxes, create_detector  # noqa: E402
from facial_keypoints.images import image_size  # noqa: E402
from facial_keypoints.labels import ListRecord, read_labels, read_list  # noqa: E402
from facial_keypoints.lists import resolve_data_root, split_by_photo  # noqa: E402
from facial_keypoints.negatives import sample_non_faces  # noqa: E402
from facial_keypoints.photos import PhotoPredictor, face_threshold_of  # noqa: E402
from facial_keypoints.quantize import int8_path  # noqa: E402
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


def classifier_pool(val, labels_by_photo, root, expand_ratio: float, non_faces_per_face: int, jitters: int,
                    seed: int = 2, shift: float = 0.05, scale: float = 0.1) -> list:
    """More labelled crops of the validation photos for the face/non-face figures (see the docstring).

    Non-faces: ``sample_non_faces`` as stage3/gen_train_test.py calls it, ``non_faces_per_face``
    times as many per photo and another seed.  Faces: ``jitters`` copies of each validation face
    crop, shifted by up to ``shift`` of its side and scaled by up to 1 ± ``scale``; keypoints follow.
    """
    photos = sorted({r.image for r in val})
    labelled = [(face.image, face.box) for photo in photos for face in labels_by_photo[photo]]
    pool = sample_non_faces(labelled, root, per_photo=lambda n: non_faces_per_face * n, ratio=expand_ratio,
                            seed=seed)
    rng = np.random.default_rng(seed)
    for record in (r for r in val if r.is_face):
        width, height = image_size(Path(root) / record.image)
        kept = 0
        for _ in range(jitters * 20):  # the lists' crops lie inside their photos; so do these
            if kept == jitters:
                break
            shift_x, shift_y = rng.uniform(-shift, shift, 2)
            factor = np.exp(rng.uniform(np.log(1 - scale), np.log(1 + scale)))
            box = adjust_boxes(record.box, shift_x, shift_y, factor, factor)[0]
            if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
                continue
            kept += 1
            pool.append(ListRecord(image=record.image, box=box, keypoints=record.absolute_keypoints() - box[:2],
                                   label=1, source=f"jittered {record.source}", face_box=record.face_box))
    return pool


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
    parser.add_argument("--pool-non-faces", type=int, default=20,
                        help="pool non-faces per validation face (0: no pool figures)")
    parser.add_argument("--pool-jitters", type=int, default=5, help="pool copies of each validation face crop")
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
    pool = (classifier_pool(val, labels_by_photo, root, list_settings(args.train_list).get("expand_ratio", 0.25),
                            args.pool_non_faces, args.pool_jitters) if args.pool_non_faces else [])
    print(f"{len(val)} validation crops ({sum(r.is_face for r in val)} faces) of {len(photos)} photos"
          + (f"; pool: {sum(r.is_face for r in pool)} jittered faces, {sum(not r.is_face for r in pool)} non-faces"
             if pool else ""))
    print("| model | backend | loss | nme_io | face / non-face recall | crop log loss | pool face / non-face recall "
          "| pool log loss | photo recall | false faces per photo | candidate log loss | loose log loss |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for checkpoint in [args.against, *args.checkpoints]:
        model, payload = load_backend(checkpoint, "torch")
        config = payload["config"]
        backends = [("float", model)]
        if int8_path(checkpoint).is_file():
            backends.append(("int8", OnnxModel(int8_path(checkpoint), threads=2)))
        for name, net in backends:
            result = predict_records(net, config, val, root, torch.device("cpu"), cache_dir=args.cache_dir,
                                     loss_fn=loss_fn, progress=False)
            crops = crop_figures([r.is_face for r in val], result["face_prob"], face_threshold_of(config))
            row = (f"| {checkpoint} | {name} | {result['loss']:.4f} | {face_metrics(val, result)['nme_io']:.3f} % "
                   f"| {crops['face_recall']:.2f} / {crops['non_face_recall']:.2f} % | {crops['log_loss']:.4f} ")
            if pool:
                pool_result = predict_records(net, config, pool, root, torch.device("cpu"),
                                              cache_dir=args.cache_dir, progress=False)
                pooled = crop_figures([r.is_face for r in pool], pool_result["face_prob"], face_threshold_of(config))
                row += (f"| {pooled['face_recall']:.2f} / {pooled['non_face_recall']:.2f} % "
                        f"| {pooled['log_loss']:.4f} ")
            else:
                row += "| | "
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
