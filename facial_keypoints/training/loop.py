"""The training loop: one epoch, validation, and ``fit`` over epochs.

``fit`` takes everything it uses as arguments (the model, both datasets, the loss, the
optimizer and the optional schedule, weight average, process group and run folder) and
returns the history; it reads no command line.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field

import torch

from facial_keypoints.evaluation.engine import make_loader
from facial_keypoints.outputs import KeypointOutput
from facial_keypoints.training.distributed import Distributed
from facial_keypoints.training.loss import TrainingLoss, labels_total, total

log = logging.getLogger("facial_keypoints")


class NonFiniteLossError(RuntimeError):
    """The loss of one batch was nan or inf; ``indices`` are that batch's samples in the dataset."""

    def __init__(self, message: str, indices=()):
        super().__init__(message)
        self.indices = [int(i) for i in indices]


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def train_one_epoch(model, loader, optimizer, loss: TrainingLoss, device, epoch: int, *, log_interval: int = 20,
                    after_step=None, clip_grad: float = 0.0) -> dict:
    """One pass over ``loader``: the summed loss, its gradient, an optimizer step per batch.

    A non-finite loss stops training at once with the batch that produced it.
    Returns the loss summed over samples, the sample count and the seconds spent waiting for data.
    """
    model.train()
    summed, count, wait = 0.0, 0, 0.0
    tick = time.perf_counter()
    for step, batch in enumerate(loader):
        wait += time.perf_counter() - tick
        batch = to_device(batch, device)
        optimizer.zero_grad(set_to_none=True)
        keypoints, logits = KeypointOutput.of(model(batch["image"]))
        value = total(loss(keypoints, logits, batch))
        if not math.isfinite(value.item()):
            raise NonFiniteLossError(f"epoch {epoch}, batch {step}: the loss became {value.item()}; training "
                                     "stopped, the last good checkpoint is kept", batch.get("index", ()))
        value.backward()
        if clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        if after_step is not None:  # the schedule's step, the weight average's update
            after_step()
        n = batch["image"].shape[0]
        summed += value.item() * n
        count += n
        if log_interval and step % log_interval == 0:
            log.info("train epoch %d [%d/%d] loss %.4f", epoch, count, len(loader.dataset), value.item())
        tick = time.perf_counter()
    return {"summed_loss": summed, "samples": count, "wait_seconds": wait}


@torch.no_grad()
def validate(model, loader, loss: TrainingLoss, device) -> dict:
    """Mean over samples of the whole loss (``loss``) and of its label terms alone (``labels_loss``)."""
    model.eval()
    sums, count = {"loss": 0.0, "labels_loss": 0.0}, 0
    for batch in loader:
        batch = to_device(batch, device)
        keypoints, logits = KeypointOutput.of(model(batch["image"]))
        terms = loss(keypoints, logits, batch)
        n = batch["image"].shape[0]
        sums["loss"] += total(terms).item() * n
        sums["labels_loss"] += labels_total(terms).item() * n
        count += n
    return {name: value / max(count, 1) for name, value in sums.items()}


def selection_loss(entry: dict) -> float:
    """The validation figure best.pt is picked on: the label terms alone where a teacher's terms
    were trained (``val_labels_loss``), else the validation loss."""
    return entry.get("val_labels_loss", entry["val_loss"])


@dataclass
class Progress:
    """Where a run stands: what ``--resume`` restores and ``fit`` carries on from."""
    history: list = field(default_factory=list)
    start_epoch: int = 1

    @property
    def best(self) -> float:
        return min((selection_loss(h) for h in self.history), default=float("inf"))


def naming_the_lines(error: NonFiniteLossError, train_set) -> str:
    """The error's message with the list lines of its batch, and where to look first."""
    lines = ", ".join(train_set.records[i].source or f"sample {i}" for i in error.indices[:8])
    return (f"{error}. The batch's list lines: {lines}{' ...' if len(error.indices) > 8 else ''}. "
            "Look at those labels first (gen_train_test.py checks them against their photos); if they "
            "are right, a lower --lr or --clip-grad keeps the steps smaller")


def epoch_entry(epoch: int, train_loss: float, val: dict, optimizer, seconds: float, stats: dict,
                teacher: bool) -> dict:
    """One row of the loss history (with a teacher, also the validation loss of the label terms alone)."""
    entry = {"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"]}
    if teacher:
        entry["val_labels_loss"] = val["labels_loss"]
    entry.update(lr=optimizer.param_groups[0]["lr"], seconds=seconds, loader_wait_seconds=stats["wait_seconds"])
    return entry


def fit(model, train_set, val_set, loss: TrainingLoss, optimizer, *, epochs: int, batch_size: int, device,
        seed: int = 1, scheduler=None, average=None, run=None, progress: Progress | None = None,
        dist: Distributed | None = None, clip_grad: float = 0.0, log_interval: int = 20, workers: int = 0,
        val_batch_size: int = 256) -> list[dict]:
    """Train ``model`` for ``epochs`` (from ``progress.start_epoch``), validating after each.

    ``run`` (a ``run_folder.RunFolder``) writes the history, the loss curve and the checkpoints;
    ``average`` (a ``WeightAverage``) is what validation and checkpoints see; under torchrun
    (``dist``) ``model`` is the network itself, wrapped here in DistributedDataParallel, and only
    rank 0 validates and writes.  Returns the history, one dict per epoch.
    """
    dist = dist or Distributed()
    progress = progress or Progress()
    net = model.to(device)  # what checkpoints, the weight average, validation and the loss's taps see
    trained = dist.wrap(net, device)  # what takes the training steps
    loss.watch(net)
    history, best = list(progress.history), progress.best

    def after_step():
        if scheduler is not None:
            scheduler.step()
        if average is not None:
            average.update(net)

    val_loader = make_loader(val_set, val_batch_size, shuffle=False)
    generator = torch.Generator()
    # Under torchrun each process takes every N-th sample of the permutation one process would draw.
    sampler = dist.sampler(train_set, seed=seed * 100003) if dist.enabled else None
    for epoch in range(progress.start_epoch, epochs + 1):
        # Seeded per epoch, so a resumed run shuffles (and augments) like an uninterrupted one.
        generator.manual_seed(seed * 100003 + epoch)
        torch.manual_seed(seed * 100003 + epoch + 1_000_003 * dist.rank)  # each process augments anew
        if sampler is not None:
            sampler.set_epoch(epoch)
        loader = make_loader(train_set, batch_size, shuffle=True, workers=workers, generator=generator,
                             sampler=sampler)
        started = time.perf_counter()
        try:
            stats = train_one_epoch(trained, loader, optimizer, loss, device, epoch, log_interval=log_interval,
                                    clip_grad=clip_grad, after_step=after_step)
        except NonFiniteLossError as error:
            raise NonFiniteLossError(naming_the_lines(error, train_set)) from None
        train_loss = dist.mean(stats["summed_loss"], stats["samples"])
        if not dist.is_main:
            continue  # rank 0 validates and writes; the others go on to the next epoch's first step
        with average.applied_to(net) if average else contextlib.nullcontext() as own_weights:
            val = validate(net, val_loader, loss, device)
            entry = epoch_entry(epoch, train_loss, val, optimizer, time.perf_counter() - started, stats,
                                loss.has_teacher)
            history.append(entry)
            log.info("epoch %d: train loss %.4f, validation loss %.4f%s%s (%.1fs)", epoch, train_loss, val["loss"],
                     f" (labels alone {val['labels_loss']:.4f})" if loss.has_teacher else "",
                     " (weight average)" if average else "", entry["seconds"])
            is_best = selection_loss(entry) < best
            best = min(best, selection_loss(entry))
            if run is not None:
                run.end_of_epoch(net, history, optimizer=optimizer, scheduler=scheduler, average=average,
                                 own_weights=own_weights, is_best=is_best)
    dist.barrier()  # every process ends after rank 0's last checkpoint
    return history
