"""Stage 1, step 1: train/test lists from the labels.

Reads every label.txt under the data root, expands each face box by
--expand-ratio of its size on every side (clipped to the photo), makes the 21
points relative to that box and splits by photo (never by face) into
train.txt / test.txt:

    IMAGE_PATH bx1 by1 bx2 by2 x0 y0 ... x20 y20      (points relative to the box)

    python stage1/gen_train_test.py --data-root ../shared/data --verify 16
"""
import argparse
import sys
from pathlib import Path

from facial_keypoints.errors import run_reporting_errors
from facial_keypoints.data.generate import add_list_arguments, generate_lists


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_list_arguments(parser, Path(__file__).resolve().parent)
    return run_reporting_errors(generate_lists, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
