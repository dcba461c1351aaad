"""Learning-rate schedules, stepped once per batch: linear warm-up, then step, cosine or constant."""
from __future__ import annotations

import math

import torch


def lr_factor(step: int, *, kind: str, steps_per_epoch: int, epochs: int, warmup_epochs: float = 0.0,
              step_size: int = 10, gamma: float = 0.1) -> float:
    warmup = int(warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    if kind == "none":
        return 1.0
    if kind == "step":
        return gamma ** ((step // steps_per_epoch) // step_size)
    if kind == "cosine":
        total = max(epochs * steps_per_epoch - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total) / total))
    raise KeyError(f"unknown schedule {kind!r}; choose step, cosine or none")


def make_scheduler(args, optimizer, steps_per_epoch: int):
    """A LambdaLR over batches built from --scheduler/--warmup-epochs/--step-size/--gamma/--epochs."""
    def factor(step):
        return lr_factor(step, kind=args.scheduler, steps_per_epoch=steps_per_epoch, epochs=args.epochs,
                         warmup_epochs=args.warmup_epochs, step_size=args.step_size, gamma=args.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def add_schedule_arguments(parser, default: str = "cosine") -> None:
    parser.add_argument("--scheduler", choices=("step", "cosine", "none"), default=default,
                        help="learning-rate schedule after the warm-up, stepped every batch (none: constant)")
    parser.add_argument("--warmup-epochs", type=float, default=1.0,
                        help="linear warm-up from 0, whatever the schedule (0: none)")
    parser.add_argument("--step-size", type=int, default=10, help="step schedule: epochs between decays")
    parser.add_argument("--gamma", type=float, default=0.1, help="step schedule: decay factor")
