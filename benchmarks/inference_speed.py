"""Inference speed of every registered model: PyTorch eager vs ONNX Runtime, on this CPU.

    python benchmarks/inference_speed.py                 # all models, writes benchmarks/results/inference_speed.md
    python benchmarks/inference_speed.py --models stage1 compact_heatmap --runs 100

The shipped models (facial_keypoints/weights) get rows of their own, with their
int8 ONNX model where one ships (python -m facial_keypoints quantize).

Per model: median milliseconds per face at batch 1 on 1 thread (after warm-up),
and faces per second at batch 64 on all cores; 112-px crops, or the shipped
model's own input size.  Weights are random (speed does
not depend on them).  The rows take turns (``--rounds``: each row runs
``--runs / --rounds`` times per turn), so a slow spell of a shared machine
slows every row alike and the rows of one table compare (timed one model after
another, one network can read a third slower in one row than in another).
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

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)

from facial_keypoints.runtime.export import export_onnx  # noqa: E402
from facial_keypoints.models.checkpoint import load_model  # noqa: E402
from facial_keypoints.models.networks import MODELS, count_parameters, create_model  # noqa: E402
from facial_keypoints.runtime.loading import OnnxModel, find_onnx  # noqa: E402
from facial_keypoints.weights import WEIGHTS_DIR  # noqa: E402


def interleaved_medians(timers: dict, runs: int, warmup: int, rounds: int) -> dict:
    """Median seconds per call of each of ``timers`` (name -> callable), the timers taking turns.

    Every timer is warmed up first; then ``rounds`` turns in which each runs ``runs // rounds``
    times (at least once) before the next takes over.
    """
    for fn in timers.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in timers}
    for _ in range(rounds):
        for name, fn in timers.items():
            for _ in range(max(1, runs // rounds)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=sorted(MODELS))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=10, help="turns the rows take (see above)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "inference_speed.md")
    args = parser.parse_args(argv)
    runs64 = max(5, args.runs // 20)
    one, batch = {}, {}  # per input size: the batch-1 and batch-64 inputs every row shares

    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        rows = {}  # label -> (model, {backend: ONNX path}, input size)
        for name in args.models:
            model = create_model(name).eval()
            rows[name] = (model, {"onnx": export_onnx(model, Path(tmp) / f"{name}.onnx")}, 112)
        for checkpoint in sorted(WEIGHTS_DIR.glob("*.pt")):
            model, payload = load_model(checkpoint)
            size = payload["config"]["input_size"]
            label = f"shipped {checkpoint.name} ({payload['config']['model_kwargs'].get('backbone', '')}, {size} px)"
            paths = {"onnx": export_onnx(model, Path(tmp) / f"{checkpoint.stem}.onnx", size)}
            if find_onnx(checkpoint, "onnx-int8"):
                paths["int8"] = find_onnx(checkpoint, "onnx-int8")
            rows[label] = (model, paths, size)
        for _, _, size in rows.values():
            one.setdefault(size, torch.randn(1, 1, size, size))
            batch.setdefault(size, torch.randn(64, 1, size, size))

        def timers(threads: int, inputs: dict) -> dict:
            """(label, backend) -> a call of that row's network on ``inputs`` of its size."""
            calls = {}
            for label, (model, paths, size) in rows.items():
                calls[label, "torch"] = lambda m=model, x=inputs[size]: m(x)
                for kind, path in paths.items():
                    session = OnnxModel(path, threads=threads)
                    calls[label, kind] = lambda s=session, x=inputs[size]: s(x)
            return calls

        torch.set_num_threads(1)
        b1 = interleaved_medians(timers(1, one), args.runs, 20, args.rounds)
        torch.set_num_threads(args.threads)
        b64 = interleaved_medians(timers(args.threads, batch), runs64, 3, min(args.rounds, runs64))
    results = []
    for label, (model, paths, _) in rows.items():
        row = {"model": label, "params": count_parameters(model)}
        for kind in ("torch", *paths):
            row[f"{kind}_b1_ms"] = b1[label, kind] * 1000
            row[f"{kind}_b64_fps"] = 64 / b64[label, kind]
        results.append(row)
        print(row, flush=True)
    lines = [f"Machine: {machine()}; batch 1 on 1 thread (median of {args.runs} runs after 20 warm-up runs); "
             f"batch 64 on {args.threads} threads; the rows taking turns in {args.rounds} rounds.", "",
             "| model | params | ms/face b1: torch | ONNX Runtime | ORT int8 | faces/s b64: torch | ONNX Runtime "
             "| ORT int8 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        int8 = (f"{r['int8_b1_ms']:.2f}", f"{r['int8_b64_fps']:.0f}") if "int8_b1_ms" in r else ("", "")
        lines.append(f"| {r['model']} | {r['params']:,} | {r['torch_b1_ms']:.2f} | {r['onnx_b1_ms']:.2f} | {int8[0]} | "
                     f"{r['torch_b64_fps']:.0f} | {r['onnx_b64_fps']:.0f} | {int8[1]} |")
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
