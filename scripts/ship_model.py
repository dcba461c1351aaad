"""Copy a trained checkpoint into the package as a shipped model: weights and config only.

    python scripts/ship_model.py stage3/trained_models/best.pt facial_keypoints/weights/default.pt

Drops the optimizer and scheduler state (most of a checkpoint's size) and, for an
``--ema`` run, the trained weights beside their average (``model`` is the average); keeps
the config, the training arguments, the epoch and the metrics, so the shipped
file still says how it was made.  A checkpoint whose config names a referee
(``facial_keypoints.referee``) ships only where that file already lies beside OUT.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facial_keypoints.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    payload = load_checkpoint(args.checkpoint)
    model_from_checkpoint(payload, args.checkpoint)  # refuse to ship weights that do not load
    referee = payload["config"].get("referee")
    if referee and not (args.out.parent / referee["checkpoint"]).is_file():
        sys.exit(f"{args.checkpoint} names the referee {referee['checkpoint']}: put that checkpoint (and its int8 "
                 f"model) in {args.out.parent} first")
    payload.update(optimizer=None, scheduler=None)
    payload.pop("raw_model", None)
    payload["history"] = payload.get("history", [])[-1:]
    save_checkpoint(payload, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.2f} MiB) from {args.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
