"""Stage-2 ablation: every change against stage 1, trained and tested on one split with one protocol.

    python benchmarks/stage2_ablation.py --data-root ../shared/data            # all rows (~50 min on 2 cores)
    python benchmarks/stage2_ablation.py --only stage1 augment --epochs 2      # a quick look

Each row trains with ``facial-keypoints train`` (one-headed networks by ``--arch``).
Rows already in OUT/results.csv are skipped, so an interrupted run resumes.
Writes OUT/results.csv, OUT/table.md (the table in stage2/README.md) and
OUT/ced.png, and prints the table.  Test metrics are on the stage-1 test
list; checkpoints are chosen on the validation split, never on the test list.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

from common import append_row, machine, ms_per_face, read_rows  # noqa: E402  (benchmarks/common.py, beside this file)

from facial_keypoints.models.checkpoint import load_checkpoint, load_model  # noqa: E402
from facial_keypoints.data.list_files import attach_face_boxes  # noqa: E402
from facial_keypoints.evaluation.evaluate import face_metrics, predict_records  # noqa: E402
from facial_keypoints.data.generate import add_list_arguments, generate_lists  # noqa: E402
from facial_keypoints.data.list_files import read_list  # noqa: E402
from facial_keypoints.models.networks import count_parameters  # noqa: E402
from facial_keypoints.evaluation.plots import plot_ced  # noqa: E402

SGD = ["--optimizer", "sgd", "--lr", "3e-3", "--scheduler", "none", "--warmup-epochs", "0", "--weight-decay", "0"]
ADAM = ["--optimizer", "adam", "--lr", "2e-3", "--scheduler", "cosine", "--warmup-epochs", "1",
        "--weight-decay", "1e-4"]

# (key, what changes, flags).  Each row adds one change to the row above, until the backbones.
VARIANTS = [
    ("stage1", "stage 1: small CNN, SGD, MSE, no augmentation", ["--arch", "stage1", *SGD, "--loss", "mse", "--no-augment"]),
    ("augment", "+ augmentation (flip+swap, ±30° rotation, ±25% scale, shift, brightness/contrast)",
     ["--arch", "stage1", *SGD, "--loss", "mse"]),
    ("adam", "+ Adam, cosine schedule with warm-up", ["--arch", "stage1", *ADAM, "--loss", "mse"]),
    ("bn", "+ batch normalisation", ["--arch", "stage1_bn", *ADAM, "--loss", "mse"]),
    ("wing", "+ Wing loss", ["--arch", "stage1_bn", *ADAM, "--loss", "wing"]),
    ("compact_resnet", "compact ResNet backbone (regression)", ["--arch", "compact_resnet", *ADAM, "--loss", "wing"]),
    ("compact_heatmap", "compact ResNet + heatmap head, soft-argmax", ["--arch", "compact_heatmap", *ADAM, "--loss", "wing"]),
    ("mobilenet_v3", "MobileNetV3-small backbone (regression)", ["--arch", "mobilenet_v3", *ADAM, "--loss", "wing"]),
    ("resnet18", "ResNet-18 from scratch (regression)", ["--arch", "resnet18", *ADAM, "--loss", "wing"]),
    # the same run as compact_heatmap (same seed, same batches); only what is validated and kept differs
    ("ema", "compact heatmap + weight average (--ema 0.999)",
     ["--arch", "compact_heatmap", *ADAM, "--loss", "wing", "--ema", "0.999"]),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_list_arguments(parser, REPO / "benchmarks" / "results" / "stage2_ablation")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--epochs-for", nargs="*", default=["resnet18=12"], metavar="KEY=N",
                        help="per-row epoch budgets (ResNet-18 costs ~65 s an epoch on 2 cores)")
    parser.add_argument("--only", nargs="*", default=None, help="row keys to run")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--rescore", action="store_true",
                        help="train nothing: re-evaluate every trained row (e.g. to time inference on an idle machine)")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lists = out / "lists"
    args.out_dir = lists
    if not (lists / "test.txt").is_file():
        generate_lists(args)
    budgets = {k: int(v) for k, v in (item.split("=") for item in args.epochs_for)}
    results = out / "results.csv"
    done = {row["key"] for row in read_rows(results)}
    torch.set_num_threads(2)
    print(f"machine: {machine()}")
    if args.rescore:
        rows = [evaluate(key, what, out / "models" / key, lists, args) for key, what, _ in VARIANTS
                if (out / "models" / key / "last.pt").is_file() and (not args.only or key in args.only)]
        results.unlink(missing_ok=True)
        for row in rows:
            append_row(results, row)
        write_table(out)
        return 0
    for key, what, flags in VARIANTS:
        if (args.only and key not in args.only) or key in done:
            continue
        epochs = budgets.get(key, args.epochs)
        save = out / "models" / key
        common = [*(["--data-root", args.data_root] if args.data_root else []), "--train-list", lists / "train.txt",
                  "--save-directory", save, "--epochs", epochs,
                  "--batch-size", 32, "--seed", args.seed, "--log-interval", 0, "--no-progress"]
        if args.cache_dir:
            common += ["--cache-dir", args.cache_dir]
        argv = [str(a) for a in [*flags, *common]]
        print(f"== {key}: {what} ({epochs} epochs)", flush=True)
        # the product's trainer: it has the weight average (--ema) and the crop cache the course scripts leave out
        if subprocess.run([sys.executable, "-m", "facial_keypoints", "train", *argv]).returncode:
            raise SystemExit(f"training {key} failed")
        row = evaluate(key, what, save, lists, args)
        append_row(results, row)
        print(json.dumps(row), flush=True)
    write_table(out)
    return 0


def evaluate(key, what, save, lists, args) -> dict:
    from facial_keypoints.data.lists import resolve_data_root
    root = resolve_data_root(args.data_root)
    model, payload = load_model(save / "best.pt")
    history = load_checkpoint(save / "last.pt")["history"]  # the whole run; best.pt stops at its epoch
    records = read_list(lists / "test.txt")
    attach_face_boxes(records, root)
    result = predict_records(model, payload["config"], records, root, "cpu", cache_dir=args.cache_dir,
                             progress=False)
    metrics = face_metrics(records, result)
    np.save(save / "test_nme_io.npy", metrics["nme_io_per_face"])
    return {
        "key": key, "change": what, "arch": payload["config"]["arch"],
        "optimizer": payload["args"]["optimizer"], "loss": payload["args"]["loss"],
        "augment": not payload["args"].get("no_augment", False), "epochs": len(history),
        "best_epoch": payload["epoch"],
        "nme_io": round(metrics["nme_io"], 3), "nme_io_median": round(metrics["nme_io_median"], 3),
        "nme_box": round(metrics["nme_box"], 3),
        "fr_10": round(metrics["fr_10"], 2), "auc_10": round(metrics["auc_10"], 2),
        "params": count_parameters(model), "ms_per_face_b1_1thread": round(ms_per_face(model), 3),
        "train_minutes": round(sum(h["seconds"] for h in history) / 60, 1),
        "val_loss": round(min(h["val_loss"] for h in history), 4),
    }


def write_table(out: Path) -> None:
    rows = read_rows(out / "results.csv")
    if not rows:
        return
    base = float(rows[0]["nme_io"]) if rows[0]["key"] == "stage1" else None
    lines = ["| change | model | nme_io % | vs stage 1 | median nme_io % | nme_box % | fr_10 % | auc_10 % | params | ms/face (b1, 1 thread) | train min (epochs) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        delta = f"{(float(r['nme_io']) / base - 1) * 100:+.0f}%" if base else ""
        lines.append(f"| {r['change']} | {r['arch']} | {float(r['nme_io']):.2f} | {delta} | "
                     f"{float(r['nme_io_median']):.2f} | {float(r['nme_box']):.2f} | "
                     f"{float(r['fr_10']):.1f} | {float(r['auc_10']):.1f} | {int(r['params']):,} | "
                     f"{float(r['ms_per_face_b1_1thread']):.2f} | {r['train_minutes']} ({r['epochs']}) |")
    table = "\n".join(lines)
    (out / "table.md").write_text(f"Machine: {machine()}\n\n{table}\n")
    curves = {}
    for r in rows:
        path = out / "models" / r["key"] / "test_nme_io.npy"
        if path.is_file():
            curves[r["key"]] = np.load(path)
    if curves:
        plot_ced(curves, out / "ced.png")
    print(table)


if __name__ == "__main__":
    sys.exit(main())
