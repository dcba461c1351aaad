"""How wide a referee's band should be, judged on the validation photos only.

    python scripts/referee_band.py STUDENT.pt --data-root ../shared/data \
        --bands 0.1,0.9 0.01,0.9 0.001,0.9

STUDENT.pt names its referee (``facial_keypoints.referee``); every band is run through the
deployed path (int8 where ``STUDENT.int8.onnx`` exists, the mirror look included) on the
validation crops, the pool and the hard pool (``facial_keypoints.validation_pool``), at the
student's stored threshold, with the referee alone (the shipped default) as the first row.
A student's face-side mistakes that lie outside the band stay its own (session 16: C6R, the
default deciding inside (0.1, 0.9), was still behind the default on the hard pool's log loss);
a wider band hands more of them to the referee and costs a second network on more crops.
The share of faces and of non-faces whose student probability lies inside the band is that cost.

It prints one markdown table and decides nothing: write the rule before running it.
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
from validate_candidate import crop_figures  # noqa: E402

from facial_keypoints.detector_cli import list_settings  # noqa: E402
from facial_keypoints.evaluation import predict_records  # noqa: E402
from facial_keypoints.export import load_backend  # noqa: E402
from facial_keypoints.face_decision import unsure_rows  # noqa: E402
from facial_keypoints.labels import read_labels, read_list  # noqa: E402
from facial_keypoints.lists import resolve_data_root, split_by_photo  # noqa: E402
from facial_keypoints.photos import face_threshold_of  # noqa: E402
from facial_keypoints.quantize import int8_path  # noqa: E402
from facial_keypoints.referee import Refereed, checked_band  # noqa: E402
from facial_keypoints.validation_pool import HARD_POOL, POOL, classifier_pool  # noqa: E402


def parse_band(text: str) -> tuple[float, float]:
    try:
        return checked_band(text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"a band is LOW,HIGH: {error}") from None


def referred(prob, band) -> np.ndarray:
    """Which crops a ``Refereed`` with ``band`` hands to its referee, from the student's face probability:
    ``face_decision.unsure_rows`` (the test ``Refereed`` applies) on the probability's log-odds."""
    prob = np.asarray(prob, dtype=float)
    with np.errstate(divide="ignore"):  # a probability of exactly 0 or 1 is sure: an infinite margin
        margin = np.log(prob) - np.log1p(-prob)
    mask = np.zeros(len(prob), dtype=bool)
    mask[unsure_rows(np.stack([np.zeros_like(margin), margin], axis=1), band)] = True
    return mask


def decision_changes(reference_says, says, is_face) -> dict:
    """Crops the reference decides right and ``says`` wrong (lost) and the other way round (won), by class."""
    reference_says, says, is_face = (np.asarray(a, dtype=bool) for a in (reference_says, says, is_face))
    reference_right, right = reference_says == is_face, says == is_face
    lost, won = reference_right & ~right, ~reference_right & right
    return {"lost_faces": int((lost & is_face).sum()), "won_faces": int((won & is_face).sum()),
            "lost_non_faces": int((lost & ~is_face).sum()), "won_non_faces": int((won & ~is_face).sum())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("student", type=Path, help="a checkpoint whose config names a referee")
    parser.add_argument("--bands", type=parse_band, nargs="+", default=None, help="LOW,HIGH ... (default: its own)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--train-list", type=Path, default=REPO / "stage3" / "train.txt")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    backend = "onnx-int8" if int8_path(args.student).is_file() else "torch"
    model, payload = load_backend(args.student, backend, threads=2)
    if not isinstance(model, Refereed):
        parser.error(f"{args.student}: its config names no referee")
    config, threshold = payload["config"], face_threshold_of(payload["config"])
    _, val = split_by_photo(read_list(args.train_list), args.val_fraction, args.seed)
    labels_by_photo = defaultdict(list)
    for face in read_labels(root, skip_bad=True):
        labels_by_photo[face.image].append(face)
    expand_ratio = list_settings(args.train_list).get("expand_ratio", 0.25)
    sets = {"crops": val, **{name: classifier_pool(val, labels_by_photo, root, expand_ratio, **settings)
                             for name, settings in (("pool", POOL), ("hard pool", HARD_POOL))}}
    torch.set_num_threads(2)

    def figures(net, records):
        result = predict_records(net, config, records, root, torch.device("cpu"), cache_dir=args.cache_dir,
                                 progress=False)
        return result, crop_figures([r.is_face for r in records], result["face_prob"], threshold)

    print(f"{args.student} ({backend}) at threshold {threshold:.2f}; referee {config['referee']['checkpoint']}; "
          + "; ".join(f"{name}: {sum(r.is_face for r in rs)} faces, {sum(not r.is_face for r in rs)} non-faces"
                      for name, rs in sets.items()))
    header = "| band | " + " | ".join(f"{n} face / non-face recall | {n} log loss | {n} referred faces / non-faces "
                                       f"| {n} lost / won faces, non-faces" for n in sets)
    print(header + " |\n|---|" + "---:|" * (4 * len(sets)))
    referee_says = {}  # the referee's own decisions, which the cascade should keep
    student_prob = {}  # the student's plain probability, which decides who is referred (its row comes first)
    rows = [("referee alone", model.referee, None), ("student alone", model.student, None)]
    rows += [(f"({low:g}, {high:g})", model, (low, high)) for low, high in args.bands or [model.band]]
    for label, net, band in rows:
        if band is not None:
            model.band = band
        line = f"| {label} "
        for name, records in sets.items():
            result, got = figures(net, records)
            is_face = np.array([r.is_face for r in records])
            says = np.asarray(result["face_prob"], dtype=float) >= threshold
            if net is model.student:
                student_prob[name] = result["face_prob_plain"]
            referee_says.setdefault(name, says)
            c = decision_changes(referee_says[name], says, is_face)
            changes = f"{c['lost_faces']} / {c['won_faces']}, {c['lost_non_faces']} / {c['won_non_faces']}"
            share = "" if band is None else (f"{100 * referred(student_prob[name][is_face], band).mean():.2f} / "
                                             f"{100 * referred(student_prob[name][~is_face], band).mean():.2f} %")
            line += (f"| {got['face_recall']:.2f} / {got['non_face_recall']:.2f} % | {got['log_loss']:.4f} "
                     f"| {share} | {changes} ")
        print(line + "|", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
