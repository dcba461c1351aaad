"""Does data loading starve training?  Loader alone vs one training epoch, stage-2 default augmentation.

    python benchmarks/loader_throughput.py --data-root ../shared/data --arch compact_heatmap

Prints faces/s of the DataLoader alone (augmentation + Normalize + ToTensor
from the cached crops), faces/s of training, and the share of training time
spent waiting for batches.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
from common import machine  # noqa: E402  (benchmarks/common.py, beside this file)

from facial_keypoints.evaluation import engine  # noqa: E402
from facial_keypoints.training.augment import add_augmentation_arguments, train_transform  # noqa: E402
from facial_keypoints.data.dataset import FaceCrops  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root  # noqa: E402
from facial_keypoints.models.networks import create_model  # noqa: E402
from facial_keypoints.training.loop import train_one_epoch  # noqa: E402
from facial_keypoints.training.loss import TrainingLoss  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--list", type=Path, default=REPO / "stage2" / "train.txt")
    parser.add_argument("--arch", default="compact_heatmap")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    add_augmentation_arguments(parser)
    args = parser.parse_args(argv)
    dataset = FaceCrops.from_list(args.list, resolve_data_root(args.data_root),
                                  transform=train_transform(args, {"normalize": True}), progress=False)
    generator = torch.Generator().manual_seed(0)
    loader = engine.make_loader(dataset, args.batch_size, shuffle=True, workers=args.workers, generator=generator)
    start = time.perf_counter()
    count = sum(batch["image"].shape[0] for batch in loader)
    loader_fps = count / (time.perf_counter() - start)

    model = create_model(args.arch)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    start = time.perf_counter()
    stats = train_one_epoch(model, loader, optimizer, TrainingLoss("wing"), torch.device("cpu"), 1, log_interval=0)
    seconds = time.perf_counter() - start
    train_fps = stats["samples"] / seconds
    busy = 1 - stats["wait_seconds"] / seconds
    print(f"machine: {machine()}; {args.workers} loader workers; batch {args.batch_size}; {len(dataset)} faces")
    print(f"loader alone:          {loader_fps:8.0f} faces/s")
    print(f"training ({args.arch}): {train_fps:8.0f} faces/s")
    print(f"model busy:            {busy * 100:8.1f} % of the epoch (the rest waits for batches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
