"""Inference speed of every registered model: PyTorch eager vs ONNX Runtime, on this CPU.

    python benchmarks/inference_speed.py                 # all models, writes benchmarks/results/inference_speed.md
    python benchmarks/inference_speed.py --models stage1 compact_heatmap --runs 100

The shipped models (facial_keypoints/weights) get rows of their own, with their
int8 ONNX model where one ships (python -m facial_keypoints quantize).

Per model: median milliseconds per face at batch 1 on 1 thread (after warm-up),
and faces per second at batch 64 on all cores; 112-px crops, or the shipped
model's own input size.  Weights are random (speed does
not depend on them).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_table  # noqa: E402

from facial_keypoints.export import OnnxModel, export_onnx  # noqa: E402
from facial_keypoints.checkpoint import load_model  # noqa: E402
from facial_keypoints.models import MODELS, count_parameters, create_model  # noqa: E402
from facial_keypoints.quantize import int8_path  # noqa: E402
from facial_keypoints.weights import WEIGHTS_DIR  # noqa: E402


def median_seconds(fn, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=sorted(MODELS))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "inference_speed.md")
    args = parser.parse_args(argv)
    rows = []
    runs64 = max(5, args.runs // 20)

    def measure(label, model, onnx_path, int8=None, size=112):
        one, batch = torch.randn(1, 1, size, size), torch.randn(64, 1, size, size)
        row = {"model": label, "params": count_parameters(model)}
        torch.set_num_threads(1)
        row["torch_b1_ms"] = median_seconds(lambda: model(one), args.runs, 20) * 1000
        paths = {"onnx": onnx_path, **({"int8": int8} if int8 else {})}
        for kind, path in paths.items():
            ort1 = OnnxModel(path, threads=1)
            row[f"{kind}_b1_ms"] = median_seconds(lambda: ort1(one), args.runs, 20) * 1000
        torch.set_num_threads(args.threads)
        row["torch_b64_fps"] = 64 / median_seconds(lambda: model(batch), runs64, 3)
        for kind, path in paths.items():
            ortn = OnnxModel(path, threads=args.threads)
            row[f"{kind}_b64_fps"] = 64 / median_seconds(lambda: ortn(batch), runs64, 3)
        rows.append(row)
        print(row, flush=True)

    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for name in args.models:
            model = create_model(name).eval()
            measure(name, model, export_onnx(model, Path(tmp) / f"{name}.onnx"))
        for checkpoint in sorted(WEIGHTS_DIR.glob("*.pt")):
            model, payload = load_model(checkpoint)
            size = payload["config"]["input_size"]
            label = f"shipped {checkpoint.name} ({payload['config']['model_kwargs'].get('backbone', '')}, {size} px)"
            int8 = int8_path(checkpoint)
            measure(label, model, export_onnx(model, Path(tmp) / f"{checkpoint.stem}.onnx", size),
                    int8 if int8.is_file() else None, size)
    lines = [f"Machine: {machine()}; batch 1 on 1 thread (median of {args.runs} runs after 20 warm-up runs); "
             f"batch 64 on {args.threads} threads.", "",
             "| model | params | ms/face b1: torch | ONNX Runtime | ORT int8 | faces/s b64: torch | ONNX Runtime "
             "| ORT int8 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        int8 = (f"{r['int8_b1_ms']:.2f}", f"{r['int8_b64_fps']:.0f}") if "int8_b1_ms" in r else ("", "")
        lines.append(f"| {r['model']} | {r['params']:,} | {r['torch_b1_ms']:.2f} | {r['onnx_b1_ms']:.2f} | {int8[0]} | "
                     f"{r['torch_b64_fps']:.0f} | {r['onnx_b64_fps']:.0f} | {int8[1]} |")
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
