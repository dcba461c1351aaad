"""``facial-keypoints COMMAND`` (or ``python -m facial_keypoints COMMAND``): predict, evaluate, export, quantize,
pack and train.

Every command works with the shipped model (no ``--checkpoint``) or any checkpoint this
project trains.  ``predict`` is a thin layer over ``FaceLandmarker``; ``export`` and
``quantize`` only write files, which ``runtime`` then finds beside the checkpoint (or,
for the shipped model, in the user cache: nothing is ever written into the package).
"""
from __future__ import annotations

import sys

from facial_keypoints.errors import run_reporting_errors


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv[:1] == ["train"]:
        from facial_keypoints.errors import MissingExtra, require_train
        try:
            require_train("facial-keypoints train")
        except MissingExtra as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        from facial_keypoints.training.command import main as train
        return train(argv[1:])
    from facial_keypoints.cli.parser import build_parser
    args = build_parser().parse_args(argv)
    return run_reporting_errors(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
