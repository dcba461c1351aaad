"""Stage 2 lists: the stage-1 lists, optionally with the offline colour copies in the training list.

A copy (``<photo>__aug<k>.jpg``, see data_augmentation.py) belongs to its
original photo: the split is made over original photos, so every copy lands on
its photo's side.  Copies of test photos are left out altogether, so the test
list holds original photos only and stays comparable with stage 1's.

    python stage2/gen_train_test.py --data-root ../shared/data [--augmented stage2/augmented]
"""
import argparse
import os
import re
import sys
from pathlib import Path

from facial_keypoints.data.lists import records_from_labels
from facial_keypoints.data.generate import add_list_arguments, generate_lists
from facial_keypoints.errors import run_reporting_errors
from facial_keypoints.data.lists import resolve_data_root

COPY = re.compile(r"__aug\d+$")


def photo_key(image: str) -> str:
    """'I/000007.jpg' and '../augmented/I/000007__aug0.jpg' are the same photo: 'I/000007'."""
    path = Path(image)
    return f"{path.parent.name}/{COPY.sub('', path.stem)}"


def is_copy(image: str) -> bool:
    return bool(COPY.search(Path(image).stem))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_list_arguments(parser, Path(__file__).resolve().parent)
    parser.add_argument("--augmented", type=Path, default=None,
                        help="folder written by data_augmentation.py; its copies join the training list")
    return run_reporting_errors(write_lists, parser.parse_args(argv))


def write_lists(args) -> None:
    copies = []
    if args.augmented:
        root = resolve_data_root(args.data_root)
        copies = records_from_labels(args.augmented, args.expand_ratio, skip_bad=args.skip_bad,
                                     negative=args.negative)
        for record in copies:  # paths relative to the data root, like every list path
            record.image = Path(os.path.relpath(args.augmented / record.image, root)).as_posix()
    generate_lists(args, photo_key=photo_key, extra_records=copies, drop_from_test=is_copy)


if __name__ == "__main__":
    sys.exit(main())
