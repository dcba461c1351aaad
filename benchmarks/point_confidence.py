"""How well ``Face.point_confidence`` and ``Face.quality`` flag points and faces that are wrong.

    python benchmarks/point_confidence.py --photos validation --fit   # choose the constants on these
    python benchmarks/point_confidence.py                              # the test photos, once, after the choice

Each photo runs through ``FaceLandmarker`` as it is ("whole"), and once more cut so that one labelled
face runs 25-50 % off the photo's left, right, top or bottom edge ("cut"; the side and share drawn
from a seeded generator), so that known points lie outside the photo. Each labelled face is matched to
the predicted face whose keypoints' box overlaps it most (IoU >= 0.3). A point is wrong when its error
exceeds 10 % of the interocular distance (the outer eye corners). Reported:

- AUROC of ``1 - point_confidence`` for flagging wrong points, and the Spearman correlation between
  the two, beside a baseline that scores each point by its point type's mean error on the same faces;
- ``point_confidence`` of points whose true place is outside the photo: the share below 0.2, the median;
- AUROC of ``1 - quality`` for flagging faces whose mean error exceeds 10 %.

``--fit`` also fits the logistic curve of ``runtime.confidence`` (the chance that a point is right,
from the log of its heatmap's spread) on the whole photos and prints its constants.
Writes benchmarks/results/point_confidence[_validation].md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)
from video import scene_photos  # noqa: E402

from facial_keypoints.api import FaceLandmarker  # noqa: E402
from facial_keypoints.data.list_files import read_list  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root, split_by_photo  # noqa: E402
from facial_keypoints.geometry import box_from_keypoints, iou  # noqa: E402
from facial_keypoints.keypoints import LEFT_EYE_OUTER, RIGHT_EYE_OUTER  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WRONG = 0.10  # of the interocular distance


def labelled_faces(split: str) -> dict[str, list]:
    """{photo: its labelled face records} of the test list or of the validation split."""
    if split == "test":
        records = read_list(REPO / "stage3" / "test.txt")
    else:
        records = split_by_photo(read_list(REPO / "stage3" / "train.txt"), 0.1, 1)[1]
    photos = set(scene_photos(split))
    out: dict[str, list] = {}
    for record in records:
        if record.is_face and record.image in photos:
            out.setdefault(record.image, []).append(record)
    return out


def cut_photo(image: Image.Image, points: np.ndarray, rng) -> tuple[Image.Image, np.ndarray]:
    """``image`` cut so that 25-50 % of the face of ``points`` lies off one of its edges; the cut's offset."""
    x1, y1, x2, y2 = box_from_keypoints(points)
    width, height = image.size
    side, share = int(rng.integers(4)), float(rng.uniform(0.25, 0.5))
    order = (0, 2, 1, 3)[side]  # the window's coordinate that side moves: left, right, top, bottom
    window = [0, 0, width, height]
    window[order] = (int(x1 + share * (x2 - x1)), int(x2 - share * (x2 - x1)),
                     int(y1 + share * (y2 - y1)), int(y2 - share * (y2 - y1)))[side]
    return image.crop(window), np.array(window[:2], dtype=np.float64)


def face_rows(landmarker, image, records, offset) -> list[dict]:
    """One row per labelled face found: its points' confidence, spread, error and whether outside."""
    faces = landmarker.detect(image)
    if not faces:
        return []
    gray = np.asarray(image.convert("L"))
    runner = landmarker.predictor.runner
    crop_boxes = np.array([f.crop_box for f in faces])
    spreads = runner.points_and_probability(runner.crops(gray, crop_boxes), crop_boxes)[2]
    boxes = np.array([box_from_keypoints(f.keypoints) for f in faces])
    rows = []
    for record in records:
        truth = record.absolute_keypoints() - offset
        overlaps = iou(box_from_keypoints(truth), boxes)
        best = int(np.argmax(overlaps))
        if overlaps[best] < 0.3:
            continue
        interocular = np.linalg.norm(truth[LEFT_EYE_OUTER] - truth[RIGHT_EYE_OUTER])
        width, height = image.size
        rows.append({"confidence": faces[best].point_confidence, "quality": faces[best].quality,
                     "spread": spreads[best],
                     "error": np.linalg.norm(faces[best].keypoints - truth, axis=1) / interocular,
                     "outside": (truth[:, 0] < 0) | (truth[:, 1] < 0) | (truth[:, 0] >= width) | (truth[:, 1] >= height)})
    return rows


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """The chance that a random positive scores above a random negative (ties count half)."""
    ranks = _ranks(score)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / max(n_pos * n_neg, 1))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their mean rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def fit_logistic(x: np.ndarray, right: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of P(right) = sigmoid(intercept + slope * x), by Newton's method."""
    design = np.stack([np.ones_like(x), x], axis=1)
    weights = np.zeros(2)
    for _ in range(50):
        p = 1 / (1 + np.exp(-design @ weights))
        hessian = design.T @ (design * (p * (1 - p))[:, None])
        weights += np.linalg.solve(hessian, design.T @ (right - p))
    return float(weights[0]), float(weights[1])


def figures(rows: list[dict]) -> dict:
    confidence = np.concatenate([r["confidence"] for r in rows])
    error = np.concatenate([r["error"] for r in rows])
    outside = np.concatenate([r["outside"] for r in rows])
    wrong = error > WRONG
    kind = np.tile(np.arange(21), len(rows))
    baseline = np.array([error[kind == k].mean() for k in range(21)])[kind]
    faces_wrong = np.array([r["error"].mean() > WRONG for r in rows])
    return {"faces": len(rows), "points": len(error), "wrong": 100 * wrong.mean(),
            "auroc": auroc(-confidence, wrong), "auroc_base": auroc(baseline, wrong),
            "rho": spearman(-confidence, error), "rho_base": spearman(baseline, error),
            "outside": int(outside.sum()),
            "outside_low": 100 * float((confidence[outside] < 0.2).mean()) if outside.any() else np.nan,
            "outside_median": float(np.median(confidence[outside])) if outside.any() else np.nan,
            "faces_wrong": int(faces_wrong.sum()),
            "quality_auroc": auroc(-np.array([r["quality"] for r in rows]), faces_wrong) if faces_wrong.any() else np.nan}


def row(name: str, f: dict) -> str:
    return (f"| {name} | {f['faces']} | {f['points']} | {f['wrong']:.1f} % | {f['auroc']:.3f} | {f['auroc_base']:.3f} | "
            f"{f['rho']:.3f} | {f['rho_base']:.3f} | {f['outside']} | {f['outside_low']:.1f} % | "
            f"{f['outside_median']:.3f} | {f['faces_wrong']} | {f['quality_auroc']:.3f} |")


def speed(landmarker, root: Path, photos: list[str], rounds: int = 6) -> tuple[float, float]:
    """Median ms per face of a face's pass (crop, network, points mapped back) without and with the
    confidence worked out, on one thread, taking turns ``rounds`` times over the faces of ``photos``."""
    import time

    from facial_keypoints.runtime.confidence import point_confidence
    runner, faces = landmarker.predictor.runner, []
    for photo in photos:
        image = Image.open(root / photo).convert("RGB")
        gray = np.asarray(image.convert("L"))
        faces += [(gray, f.crop_box[None]) for f in landmarker.detect(image)]

    def without(gray, box):
        return runner.points_and_probability(runner.crops(gray, box), box)

    def with_confidence(gray, box):
        points, _, spread = without(gray, box)
        return point_confidence(spread, points, gray.shape[1], gray.shape[0])
    times = {without: [], with_confidence: []}
    for _ in range(rounds):
        for function in times:
            started = time.perf_counter()
            for gray, box in faces:
                function(gray, box)
            times[function].append((time.perf_counter() - started) / len(faces) * 1e3)
    return float(np.median(times[without])), float(np.median(times[with_confidence]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--photos", choices=("test", "validation"), default="test")
    parser.add_argument("--fit", action="store_true", help="also fit and print the spread curve's constants")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--speed", action="store_true", help="also time a face's pass without and with the confidence")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    landmarker = FaceLandmarker(threads=args.threads)
    rng = np.random.default_rng(0)
    rows = {"whole": [], "cut": []}
    for photo, records in sorted(labelled_faces(args.photos).items()):
        image = Image.open(root / photo).convert("RGB")
        rows["whole"] += face_rows(landmarker, image, records, np.zeros(2))
        cut, offset = cut_photo(image, records[0].absolute_keypoints(), rng)
        rows["cut"] += face_rows(landmarker, cut, records[:1], offset)
    table = {"whole photos": figures(rows["whole"]), "cut photos": figures(rows["cut"]),
             "both": figures(rows["whole"] + rows["cut"])}
    lines = [f"`python benchmarks/point_confidence.py --photos {args.photos}` on {machine()}: wrong = error above "
             f"{100 * WRONG:g} % of the interocular distance; the baseline scores each point by its point type's mean "
             "error on the same faces.", "",
             "| photos | faces | points | wrong | AUROC | AUROC, baseline | Spearman | Spearman, baseline | "
             "points outside the photo | of them below 0.2 | their median | faces wrong | quality AUROC |",
             "|---" + "|---:" * 12 + "|", *(row(name, f) for name, f in table.items())]
    if args.fit:
        spread = np.concatenate([r["spread"] for r in rows["whole"]])
        right = np.concatenate([r["error"] for r in rows["whole"]]) <= WRONG
        intercept, slope = fit_logistic(np.log(spread), right.astype(float))
        lines += ["", f"The spread curve fitted on the whole photos: INTERCEPT, SLOPE = {intercept:.2f}, {slope:.2f}"]
    if args.speed:
        plain, confident = speed(FaceLandmarker(threads=1), root, sorted(labelled_faces(args.photos))[:40])
        lines += ["", f"A face's pass (crop, network, points mapped back), one thread, 6 rounds in turn: {plain:.3f} ms, "
                      f"{confident:.3f} ms with the confidence worked out ({100 * (confident / plain - 1):+.1f} %)."]
    out = args.out or REPO / "benchmarks" / "results" / (
        "point_confidence.md" if args.photos == "test" else "point_confidence_validation.md")
    write_table(lines, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
