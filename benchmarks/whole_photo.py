"""Whole-photo predict on the test photos: detection recall, false faces, keypoint error, and time per step.

    python benchmarks/whole_photo.py --data-root ../shared/data            # stage3/test.txt's photos
    python benchmarks/whole_photo.py --data-root ../shared/data --detectors mtcnn haar --limit 100

For every test photo (the photos of stage3/test.txt, none of which training saw):
- recall: labelled faces with a candidate at IoU >= 0.5, before and after the
  classifier's rejection (each candidate matches at most one face); a label on a
  box of one flat grey value (lists.blank_faces: a privacy blackout) is not a face
  to find, as it is not a face line in stage3/test.txt;
- false faces per photo: kept candidates whose IoU with every labelled face is
  < 0.3 (a face the labels miss, e.g. in a crowd, counts as false too);
- nme_io (SPEC section 5) of the keypoints on the matched faces, from the
  detector's box, so detection and keypoint errors add up as they would for a user;
- milliseconds per photo: decode, detector, crops, network (classifier and
  keypoints are one forward pass), at each photo's own size and at 640x480 and
  1920x1080 (a test photo resized), on this machine's threads, with MTCNN's time
  over each detector's measured in the same loop.
Writes benchmarks/results/whole_photo.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)

from facial_keypoints.runtime.face_detectors import create_face_detector  # noqa: E402
from facial_keypoints.geometry import iou, match_boxes  # noqa: E402
from facial_keypoints.data.labels import read_labels
from facial_keypoints.data.list_files import read_list  # noqa: E402
from facial_keypoints.data.lists import blank_faces, resolve_data_root  # noqa: E402
from facial_keypoints.evaluation.metrics import keypoint_metrics  # noqa: E402
from facial_keypoints.data.images import open_photo  # noqa: E402
from facial_keypoints.runtime.photos import PhotoPredictor, face_threshold_of  # noqa: E402
from facial_keypoints.runtime.loading import load  # noqa: E402
from facial_keypoints.weights import DEFAULT_CHECKPOINT  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def score(photos, labels_by_photo, predictor, root, blank_by_photo=None):
    """``labels_by_photo``: the faces to find; ``blank_by_photo``: labels that are no face to find,
    near which a candidate is still not counted as a false face."""
    blank_by_photo = blank_by_photo or {}
    counts = defaultdict(float)
    preds, truths, timings = [], [], defaultdict(list)
    for photo in photos:
        labelled = labels_by_photo[photo]
        _, result = predictor.predict_file(root / photo)
        for step, ms in result.timings_ms.items():
            timings[step].append(ms)
        counts["faces"] += len(labelled)
        for stage, faces in (("all", result.faces), ("kept", result.accepted)):
            boxes = np.array([f.box for f in faces]).reshape(-1, 4)
            matched = match_boxes(boxes, [f.box for f in labelled])
            counts[f"found_{stage}"] += len(matched)
            near = labelled + blank_by_photo.get(photo, [])
            if near:
                far = [iou(b, np.array([f.box for f in near])).max() < 0.3 for b in boxes]
            else:
                far = [True] * len(boxes)
            counts[f"false_{stage}"] += sum(far)
            if stage == "kept":
                for i, j in matched.items():
                    preds.append(faces[i].keypoints)
                    truths.append(labelled[j].keypoints)
    n = len(photos)
    keypoints = keypoint_metrics(np.array(preds), np.array(truths)) if preds else {}
    total = [sum(step) for step in zip(*timings.values())]
    return {
        "photos": n, "faces": int(counts["faces"]),
        "recall_all": counts["found_all"] / counts["faces"] * 100,
        "recall_kept": counts["found_kept"] / counts["faces"] * 100,
        "false_all": counts["false_all"] / n, "false_kept": counts["false_kept"] / n,
        "nme_io": keypoints.get("nme_io", float("nan")),
        "nme_io_median": keypoints.get("nme_io_median", float("nan")),
        "matched": len(preds),
        "ms": {step: statistics.median(v) for step, v in timings.items()},
        "ms_total_median": statistics.median(total),
    }


def timing_at_sizes(photos: list[Path], predictors: dict, sizes, runs: int) -> dict:
    """{(detector, size): median ms per step and in all} over ``photos`` resized to each size (JPEG-encoded,
    so decode is real), ``runs`` each after a warm-up. The detectors take turns photo by photo, so the
    machine's drift from minute to minute falls on all of them alike."""
    steps = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in sizes:
            for n, photo in enumerate(photos):
                encoded = Path(tmp) / f"{n}_{width}x{height}.jpg"
                open_photo(photo).resize((width, height)).save(encoded, quality=90)
                for run in range(runs + 1):
                    for name, predictor in predictors.items():
                        _, result = predictor.predict_file(encoded)
                        if run:  # the first call of each photo warms up
                            for step, ms in result.timings_ms.items():
                                steps[name, width, height][step].append(ms)
                            steps[name, width, height]["total"].append(sum(result.timings_ms.values()))
    return {key: {step: statistics.median(v) for step, v in by_step.items()} for key, by_step in steps.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--test-list", type=Path, default=REPO / "stage3" / "test.txt")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--backend", choices=("torch", "onnx", "onnx-int8"), default="onnx-int8")
    parser.add_argument("--detectors", nargs="+", default=["yunet", "mtcnn", "haar"], help="detectors to compare")
    parser.add_argument("--min-face", type=int, default=40)
    parser.add_argument("--limit", type=int, default=0, help="only the first N test photos (0: all)")
    parser.add_argument("--runs", type=int, default=5,
                        help="timed runs per photo and size for the 640x480/1920x1080 rows (10 photos)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-refine", action="store_true", help="one network pass on the detector's box")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "whole_photo.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = resolve_data_root(args.data_root)
    photos = sorted({r.image for r in read_list(args.test_list)})
    if args.limit:
        photos = photos[: args.limit]
    wanted = set(photos)
    labels = [face for face in read_labels(root) if face.image in wanted]
    blank = {id(face) for face in blank_faces(labels, root, box_of=lambda face: face.box)}
    labels_by_photo, blank_by_photo = defaultdict(list), defaultdict(list)
    for face in labels:
        (blank_by_photo if id(face) in blank else labels_by_photo)[face.image].append(face)
    model, payload, backend = load(args.checkpoint, args.backend, threads=args.threads)

    lines = [f"Machine: {machine()}; {args.threads} threads; network backend {backend}; "
             f"checkpoint {args.checkpoint.name} (face threshold {face_threshold_of(payload['config']):.2f}); "
             f"{'one network pass' if args.no_refine else 'second pass on the keypoints box'}; "
             f"{len(photos)} test photos of {args.test_list.name}.", "",
             "| detector | faces | recall before / after classifier (IoU>=0.5) | false faces per photo before / after "
             "| nme_io on matched faces (median) | ms per photo (median: decode + detector + crops + network) |",
             "|---|---:|---:|---:|---:|---|"]
    predictors = {}
    for name in args.detectors:
        predictor = PhotoPredictor(model, payload["config"], create_face_detector(name, min_face=args.min_face),
                                   refine=not args.no_refine)
        r = score(photos, labels_by_photo, predictor, root, blank_by_photo)
        print(name, r, flush=True)
        steps = " + ".join(f"{r['ms'][s]:.1f}" for s in ("decode", "detector", "crops", "network"))
        lines.append(f"| {name} | {r['faces']} | {r['recall_all']:.1f} % / {r['recall_kept']:.1f} % | "
                     f"{r['false_all']:.3f} / {r['false_kept']:.3f} | {r['nme_io']:.2f} % ({r['nme_io_median']:.2f} %, "
                     f"{r['matched']} faces) | {r['ms_total_median']:.1f} ({steps}) |")
        predictors[name] = predictor
    sizes = [(640, 480), (1920, 1080)]
    timed = timing_at_sizes([root / p for p in photos[:: max(1, len(photos) // 10)][:10]], predictors, sizes,
                            args.runs)
    baseline = "mtcnn" if "mtcnn" in predictors else args.detectors[0]
    lines += ["", f"Time per photo by size (10 test photos resized and JPEG-encoded, {args.runs} runs each after a "
                  "warm-up, the detectors taking turns photo by photo; median per step and of the totals, ms):",
              "", f"| detector | size | decode | detector | crops | network | total | {baseline}'s total / this |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in predictors:
        for width, height in sizes:
            steps = timed[name, width, height]
            lines.append(f"| {name} | {width}x{height} | "
                         + " | ".join(f"{steps[s]:.1f}" for s in ("decode", "detector", "crops", "network"))
                         + f" | {steps['total']:.1f} | {timed[baseline, width, height]['total'] / steps['total']:.2f} |")
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
