"""Microseconds per face crop at inference, by how many times the box exceeds the crop.

    python benchmarks/crop_speed.py --data-root ../shared/data

The test list's face boxes, cut from their decoded grayscale photos by
``data.images.crop_warped`` (what ``runtime.keypoint_runner.KeypointRunner`` uses) and, for
reference, by ``crop_resized`` (PIL, what training uses).  Faces are grouped by
k = int(box side / crop side): k >= 2 is where area reduction happens.  Each
crop is timed on its own, the faces in list order, ``--repeats`` passes; the
median and mean per group.  Writes benchmarks/results/crop_speed.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)

from facial_keypoints.data.images import crop_resized, crop_warped, load_gray  # noqa: E402
from facial_keypoints.data.list_files import read_list  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--test-list", type=Path, default=REPO / "stage3" / "test.txt")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "crop_speed.md")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    photos, faces = {}, []  # faces: (PIL photo, its array, box, k); photos decoded once, before any timing
    for record in read_list(args.test_list):
        if record.is_face:
            if record.image not in photos:
                image = load_gray(root / record.image)[0]
                photos[record.image] = (image, np.asarray(image))
            box = np.asarray(record.box, dtype=np.float64)
            faces.append((*photos[record.image], box, min(6, int(min(box[2] - box[0], box[3] - box[1]) / args.size))))
    cutters = {"crop_warped (OpenCV, inference)": lambda image, array, box: crop_warped(array, box, args.size),
               "crop_resized (PIL, training)": lambda image, array, box: crop_resized(image, box, args.size)}
    times = {name: defaultdict(list) for name in cutters}
    for _ in range(args.repeats):
        for name, cut in cutters.items():
            for image, array, box, k in faces:
                started = time.perf_counter()
                cut(image, array, box)
                times[name][k].append((time.perf_counter() - started) * 1e6)
    counts = Counter(k for *_, k in faces)
    groups = sorted(counts)
    label = {k: (f"k = {k}" if k < 6 else "k >= 6") for k in groups}
    lines = [f"Machine: {machine()}; {len(faces)} test faces of {len(photos)} photos, crop {args.size} px, "
             f"{args.repeats} passes; µs per crop, median (mean).", "",
             "| cutter | all faces | " + " | ".join(f"{label[k]} ({counts[k]})" for k in groups) + " |",
             "|---|---:|" + "---:|" * len(groups)]
    for name, by_group in times.items():
        every = [t for values in by_group.values() for t in values]
        cells = [f"{statistics.median(by_group[k]):.0f} ({statistics.mean(by_group[k]):.0f})" for k in groups]
        lines.append(f"| {name} | {statistics.median(every):.0f} ({statistics.mean(every):.0f}) | "
                     + " | ".join(cells) + " |")
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
