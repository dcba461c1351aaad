"""How close ``facial_keypoints.align`` puts each face's five template points to the ArcFace template.

    python benchmarks/aligned_crops.py                       # the test photos' faces
    python benchmarks/aligned_crops.py --photos validation

Every photo runs through ``FaceLandmarker``; each face found gets the similarity transform ``align``
uses, and the residual is the distance, in pixels of the 112 x 112 crop, between each of its five
points (pupils, nose tip, mouth corners) carried through it and the template's. A similarity keeps the
face's shape, so the residual measures how far a face differs from the template's proportions (a
turned head more). Writes benchmarks/results/aligned_crops.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)
from video import scene_photos  # noqa: E402

from facial_keypoints.alignment import TEMPLATE_112, TEMPLATE_POINTS, alignment_matrix  # noqa: E402
from facial_keypoints.api import FaceLandmarker  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NAMES = ("left pupil", "right pupil", "nose tip", "left mouth corner", "right mouth corner")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--photos", choices=("test", "validation"), default="test")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "aligned_crops.md")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    landmarker = FaceLandmarker(threads=args.threads)
    residuals = []
    for photo in scene_photos(args.photos):
        for face in landmarker.detect(Image.open(root / photo).convert("RGB")):
            matrix = alignment_matrix(face)
            five = face.keypoints[list(TEMPLATE_POINTS)].astype(np.float64)
            residuals.append(np.linalg.norm(five @ matrix[:, :2].T + matrix[:, 2] - TEMPLATE_112, axis=1))
    residuals = np.array(residuals)
    lines = [f"`python benchmarks/aligned_crops.py --photos {args.photos}` on {machine()}: {len(residuals)} faces "
             f"found on the {args.photos} photos; distance of each template point from the ArcFace template after "
             "the alignment, pixels of the 112 x 112 crop.", "",
             "| point | median | 90th percentile |", "|---|---:|---:|",
             *(f"| {name} | {np.median(residuals[:, k]):.2f} | {np.percentile(residuals[:, k], 90):.2f} |"
               for k, name in enumerate(NAMES)),
             f"| all five | **{np.median(residuals):.2f}** | {np.percentile(residuals, 90):.2f} |"]
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
