"""``python -m facial_keypoints COMMAND``: commands that work with any checkpoint of this project."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .checkpoint import load_model
from .errors import run_reporting_errors
from .export import export_onnx, load_backend
from .engine import select_device
from .evaluation import face_metrics, predict_records, records_from_labels
from .labels import ParseStats
from .metrics import json_summary, summary_table
from .plots import plot_ced


def evaluate(args) -> int:
    model, payload = load_backend(args.checkpoint, args.backend)
    device = select_device(args.no_cuda or args.backend == "onnx")
    model.to(device)
    config = payload["config"]
    stats = ParseStats()
    records = records_from_labels(args.data, config["expand_ratio"], skip_bad=args.skip_bad,
                                  negative=args.negative, stats=stats)
    if not records:
        raise ValueError(f"no usable faces under {args.data} ({stats.summary()})")
    result = predict_records(model, config, records, args.data, device, batch_size=args.batch_size,
                             cache_dir=args.cache_dir, progress=not args.no_progress)
    metrics = face_metrics(records, result)
    out = args.out or Path(args.checkpoint).parent
    out.mkdir(parents=True, exist_ok=True)
    ced = plot_ced({f"{config['arch']} on {args.data}": metrics["nme_io_per_face"]}, out / "ced.png")
    print(summary_table(metrics, f"{args.checkpoint} on {args.data} ({stats.summary()})"))
    print(f"cumulative error curve: {ced}")
    print(json.dumps(json_summary(metrics, checkpoint=str(args.checkpoint), data=str(args.data),
                                  label_counts=dict(stats.counts))))
    return 0


def export(args) -> int:
    model, payload = load_model(args.checkpoint)
    path = export_onnx(model, args.out, payload["config"]["input_size"], args.opset)
    if not args.no_check:
        import numpy as np
        import torch
        from .export import OnnxModel
        images = torch.randn(8, 1, payload["config"]["input_size"], payload["config"]["input_size"])
        with torch.no_grad():
            expected = model(images)
        got = OnnxModel(path)(images)
        pairs = zip(expected, got) if isinstance(expected, tuple) else [(expected, got)]
        worst = max(float(np.abs(e.numpy() - g.numpy()).max()) for e, g in pairs)
        print(f"onnxruntime vs torch on a batch of 8: max abs difference {worst:.2e}")
        if worst > 1e-4:
            raise ValueError(f"{path}: ONNX Runtime differs from PyTorch by {worst:.2e} (> 1e-4)")
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facial_keypoints")
    commands = parser.add_subparsers(dest="command", required=True)
    ev = commands.add_parser("evaluate", help="SPEC section-5 metrics of a checkpoint on a folder of label.txt files")
    ev.add_argument("--checkpoint", required=True, type=Path)
    ev.add_argument("--data", required=True, type=Path, help="a folder with label.txt files (searched recursively)")
    ev.add_argument("--out", type=Path, default=None, help="where ced.png goes (default: beside the checkpoint)")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--negative", choices=("clamp", "drop"), default="clamp")
    ev.add_argument("--skip-bad", action="store_true", help="count and skip bad lines/images instead of stopping")
    ev.add_argument("--cache-dir", type=Path, default=None)
    ev.add_argument("--no-cuda", action="store_true")
    ev.add_argument("--no-progress", action="store_true")
    ev.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                    help="onnx: run with ONNX Runtime (exports CHECKPOINT.onnx beside it when missing)")
    ev.set_defaults(func=evaluate)

    ex = commands.add_parser("export", help="a checkpoint as ONNX (dynamic batch), checked against PyTorch")
    ex.add_argument("--checkpoint", required=True, type=Path)
    ex.add_argument("--out", required=True, type=Path)
    ex.add_argument("--opset", type=int, default=17)
    ex.add_argument("--no-check", action="store_true", help="skip the onnxruntime parity check")
    ex.set_defaults(func=export)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_reporting_errors(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
