"""Make a trained checkpoint a shipped model: weights and config only, no machine's paths.

    python recipes/ship_model.py results/student/best.pt results/default.pt

Drops the optimizer and scheduler state (most of a checkpoint's size) and, for an
``--ema`` run, the trained weights beside their average (``model`` is the average).
Keeps the config, the training arguments, the epoch and the metrics, so the shipped
file still says how it was made; arguments that name files keep only the file's name,
so no path of the machine that trained it travels with the model.
"""
import argparse
import sys
from pathlib import Path

from facial_keypoints.models.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint

PATH_ARGS = ("data_root", "train_list", "test_list", "save_directory", "checkpoint", "crops", "extra_list",
             "extra_crops", "teacher", "predict_dir", "cache_dir")


def shippable(payload: dict) -> dict:
    """``payload`` without training state, its path arguments cut to file names."""
    args = dict(payload.get("args", {}))
    for key in PATH_ARGS:
        if isinstance(args.get(key), str):
            args[key] = Path(args[key]).name
    config = dict(payload["config"])
    return {**payload, "config": config, "args": args, "optimizer": None, "scheduler": None,
            "history": payload.get("history", [])[-1:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a trained checkpoint (best.pt)")
    parser.add_argument("out", type=Path, help="the shipped file to write")
    args = parser.parse_args(argv)
    payload = load_checkpoint(args.checkpoint)
    model_from_checkpoint(payload, args.checkpoint)  # refuse to ship weights that do not load
    shipped = shippable(payload)
    shipped.pop("raw_model", None)
    save_checkpoint(shipped, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.2f} MiB) from {args.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
