"""Stage 3, step 1: non-face crops from the same photos (IoU < 0.3 with every labelled face).

Writes stage3/not_faces.txt, one ``IMAGE_PATH bx1 by1 bx2 by2 0`` line per crop,
the box expanded like a face box.  Seeded: the same flags give the same crops.

    python stage3/not_face_generate.py --data-root ../shared/data --per-photo 2 --verify 16
"""
import argparse
import sys
from pathlib import Path

from facial_keypoints.cli.arguments import finite_float, non_negative_int, positive_int
from facial_keypoints.errors import run_reporting_errors
from facial_keypoints.data.generate import verify_crops
from facial_keypoints.data.labels import ParseStats, read_labels
from facial_keypoints.data.list_files import write_list
from facial_keypoints.data.lists import resolve_data_root
from facial_keypoints.data.negatives import sample_non_faces

STAGE_DIR = Path(__file__).resolve().parent


class SizeSpread(argparse.Action):
    """LOW HIGH, each a finite factor above 0 (``type`` checks that), LOW not above HIGH."""

    def __call__(self, parser, namespace, values, option_string=None):
        low, high = values
        if low > high:
            parser.error(f"argument {option_string}: LOW must not exceed HIGH, not {low:g} {high:g}")
        setattr(namespace, self.dest, (low, high))


def add_non_face_arguments(parser) -> None:
    """The flags the two list scripts share; each is checked at parsing (nan and inf refused), so a
    value no draw can use stops with one line before anything is read or written."""
    parser.add_argument("--max-iou", type=finite_float(0, 1, low_open=True), default=0.3,
                        help="largest IoU a non-face may have with any face, in (0, 1]")
    parser.add_argument("--size-spread", type=finite_float(0, low_open=True), nargs=2, default=(0.5, 1.5),
                        metavar=("LOW", "HIGH"), action=SizeSpread,
                        help="non-face size as a factor of the photo's face sizes, 0 < LOW <= HIGH")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", default=None, help="the data root (None: $FKD_DATA_ROOT, else data/)")
    parser.add_argument("--out", type=Path, default=STAGE_DIR / "not_faces.txt", help="the non-face list")
    parser.add_argument("--per-photo", type=positive_int, default=2, help="non-faces drawn per photo (1 or more)")
    parser.add_argument("--expand-ratio", type=finite_float(0), default=0.25,
                        help="each square grows by this share of its side, as face boxes do (0 or more)")
    parser.add_argument("--seed", type=non_negative_int, default=1, help="the draw's seed (per photo; 0 or more)")
    parser.add_argument("--verify", type=non_negative_int, default=0, metavar="N",
                        help="draw N crops into OUT_DIR/verify_non_faces/")
    add_non_face_arguments(parser)
    return run_reporting_errors(write_non_faces, parser.parse_args(argv))


def write_non_faces(args) -> None:
    root = resolve_data_root(args.data_root)
    stats = ParseStats()
    faces = read_labels(root, stats=stats)
    records = sample_non_faces([(f.image, f.box) for f in faces], root, per_photo=args.per_photo,
                               ratio=args.expand_ratio, max_iou=args.max_iou, seed=args.seed,
                               size_spread=tuple(args.size_spread), stats=stats)
    if not records:  # never replace a list with an empty one
        raise ValueError(f"no non-face crop found ({stats.summary()}); {args.out} was not written")
    write_list(args.out, records)
    print(f"wrote {len(records)} non-face crops to {args.out} ({stats.summary()})")
    if args.verify:
        print(f"drew them into {verify_crops(records[: args.verify], root, args.out.parent / 'verify_non_faces')}")


if __name__ == "__main__":
    sys.exit(main())
