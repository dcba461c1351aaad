"""Stage 3 lists: faces (ending in 1) and non-faces (ending in 0) from the same photos, split by photo.

    IMAGE_PATH bx1 by1 bx2 by2 x0 y0 ... x20 y20 1     a face (points relative to the box)
    IMAGE_PATH bx1 by1 bx2 by2 0                       a non-face (IoU < --max-iou with every face)

    python stage3/gen_train_test.py --data-root ../shared/data --non-faces-per-face 1
"""
import argparse
import sys
from pathlib import Path

from facial_keypoints.cli.arguments import finite_float
from facial_keypoints.data.generate import add_list_arguments, generate_lists
from facial_keypoints.errors import run_reporting_errors
from facial_keypoints.data.negatives import sample_non_faces

from not_face_generate import add_non_face_arguments


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_list_arguments(parser, Path(__file__).resolve().parent)
    parser.add_argument("--non-faces-per-face", type=finite_float(0), default=1.0,
                        help="the non-face : face ratio (0 or more; per photo, at least one non-face each)")
    add_non_face_arguments(parser)
    args = parser.parse_args(argv)

    def non_faces(faces, root, stats):
        return sample_non_faces([(f.image, f.face_box) for f in faces], root,
                                per_photo=lambda n: max(1, round(args.non_faces_per_face * n)),
                                ratio=args.expand_ratio, max_iou=args.max_iou, seed=args.seed,
                                size_spread=tuple(args.size_spread), stats=stats)
    return run_reporting_errors(lambda: generate_lists(args, extra_records=non_faces, face_label=1))


if __name__ == "__main__":
    sys.exit(main())
