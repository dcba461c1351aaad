"""Give a student checkpoint a referee for its face decision (``facial_keypoints.referee``).

    python scripts/attach_referee.py C9.pt results/c9r/C9R.pt      # referee: facial_keypoints/weights/referee.pt
    python scripts/attach_referee.py C9.pt results/c9r/C9R.pt --referee OTHER.pt --band 0.01 0.99

Writes OUT (the student's checkpoint, its config naming ``referee.pt`` and the band) and copies
the referee checkpoint and its int8 model (where one was made from it) beside OUT as
``referee.pt`` / ``referee.int8.onnx``.  The int8 model records the SHA-256 of the checkpoint it
was made from, so byte copies keep the pair valid.  OUT's own int8 model and threshold come after:
``python -m facial_keypoints quantize`` and ``scripts/calibrate_face_threshold.py --write``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facial_keypoints.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint  # noqa: E402
from facial_keypoints.quantize import int8_model_of, int8_path  # noqa: E402
from facial_keypoints.referee import REFEREE_BAND, checked_band  # noqa: E402
from facial_keypoints.weights import REFEREE_CHECKPOINT  # noqa: E402

REFEREE_NAME = "referee.pt"


def attach_referee(student: Path, out: Path, referee: Path = REFEREE_CHECKPOINT, band=REFEREE_BAND) -> Path:
    low, high = checked_band(band)
    payload = load_checkpoint(student)
    model_from_checkpoint(payload, student)  # a student that does not load is refused before anything is written
    judge = load_checkpoint(referee)
    model_from_checkpoint(judge, referee)
    if judge["config"].get("referee"):  # one referee, not a chain: the band is read on the student's probability
        raise ValueError(f"{referee} names a referee of its own; give the model that decides alone "
                         f"(the shipped one: {REFEREE_CHECKPOINT})")
    if payload["config"].get("referee"):
        raise ValueError(f"{student} already names the referee {payload['config']['referee']['checkpoint']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    target = out.parent / REFEREE_NAME
    if Path(referee).resolve() != target.resolve():
        shutil.copyfile(referee, target)
    twin = int8_model_of(referee)
    if twin is not None and twin.resolve() != int8_path(target).resolve():
        shutil.copyfile(twin, int8_path(target))
    payload["config"]["referee"] = {"checkpoint": REFEREE_NAME, "band": [low, high]}
    return save_checkpoint(payload, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("student", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--referee", type=Path, default=REFEREE_CHECKPOINT)
    parser.add_argument("--band", type=float, nargs=2, default=list(REFEREE_BAND), metavar=("LOW", "HIGH"))
    args = parser.parse_args(argv)
    try:
        attach_referee(args.student, args.out, args.referee, args.band)
    except ValueError as error:
        parser.error(str(error))
    twin = "and its int8 model " if int8_path(args.out.parent / REFEREE_NAME).is_file() else ""
    print(f"wrote {args.out}: {args.student} with {args.referee} {twin}as {args.out.parent / REFEREE_NAME}, "
          f"band {tuple(args.band)}; next: quantize {args.out}, then calibrate its threshold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
