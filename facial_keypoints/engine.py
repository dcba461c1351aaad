"""The two loops every stage uses: one training epoch, and one inference pass.

Validation, test, predict and evaluate all call ``run_inference``; there is no
second copy of it.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from .keypoints import NUM_POINTS


class NonFiniteLossError(RuntimeError):
    """The loss of one batch was nan or inf; ``indices`` are that batch's samples in the dataset."""

    def __init__(self, message: str, indices=()):
        super().__init__(message)
        self.indices = [int(i) for i in indices]


def make_loader(dataset, batch_size: int, *, shuffle: bool, workers: int = 0, generator=None,
                sampler=None) -> DataLoader:
    """Batches of ``dataset``; a ``sampler`` (a process's share under torchrun) replaces the shuffling.

    A shuffled (training) loader drops a last batch of one sample: batch norm cannot train on it.
    """
    one_left = shuffle and len(sampler if sampler is not None else dataset) % batch_size == 1
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=workers, generator=generator, persistent_workers=False, drop_last=one_left)


def softmax_face_probability(logits) -> np.ndarray:
    """(N, 2) face/non-face logits -> (N,) probability of "face" (a stable two-class softmax)."""
    logits = np.asarray(logits, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))


def model_outputs(model, images):
    """Keypoints (N, 42) and, for two-headed models, face logits; one place knows both shapes."""
    out = model(images)
    if isinstance(out, (tuple, list)):
        return out[0], out[1]
    return out, None


def train_one_epoch(model, loader, optimizer, loss_fn, device, epoch: int, *, log=print,
                    log_interval: int = 20, after_step=None, clip_grad: float = 0.0) -> dict:
    """One pass over ``loader``; returns mean loss and timing.

    ``loss_fn(keypoints, logits, batch)`` returns the loss tensor.  A
    non-finite loss stops training at once with the batch that produced it.
    """
    model.train()
    total, count = 0.0, 0
    wait = compute = 0.0
    tick = time.perf_counter()
    for step, batch in enumerate(loader):
        started = time.perf_counter()
        wait += started - tick
        images = batch["image"].to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        keypoints, logits = model_outputs(model, images)
        loss = loss_fn(keypoints, logits, {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()})
        if not math.isfinite(loss.item()):
            raise NonFiniteLossError(f"epoch {epoch}, batch {step}: the loss became {loss.item()}; training "
                                     "stopped, the last good checkpoint is kept", batch.get("index", ()))
        loss.backward()
        if clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        if after_step is not None:  # the schedule's step, the weight average's update
            after_step()
        n = images.shape[0]
        total += loss.item() * n
        count += n
        if log_interval and step % log_interval == 0:
            log(f"train epoch {epoch} [{count}/{len(loader.dataset)}] loss {loss.item():.4f}")
        tick = time.perf_counter()
        compute += tick - started
    return {"loss": total / max(count, 1), "seconds": wait + compute, "wait_seconds": wait,
            "faces": count}


@torch.no_grad()
def run_inference(model, loader, device, loss_fn=None, extra_losses=None) -> dict:
    """Predict every sample of ``loader`` in order.

    Returns frame-pixel predictions (N, 21, 2), the targets, face masks,
    face probabilities (two-headed models) and, with ``loss_fn``, the mean loss
    over samples.
    ``extra_losses`` ({name: loss function}) adds each one's mean as ``NAME_loss`` (with ``loss_fn``).
    """
    model.eval()
    preds, targets, faces, probs, indices = [], [], [], [], []
    total, count = 0.0, 0
    extra_losses = dict(extra_losses or {})
    extra_totals = dict.fromkeys(extra_losses, 0.0)
    for batch in loader:
        images = batch["image"].to(device)
        keypoints, logits = model_outputs(model, images)
        if loss_fn is not None:
            on_device = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            total += loss_fn(keypoints, logits, on_device).item() * images.shape[0]
            count += images.shape[0]
            for name, extra in extra_losses.items():
                extra_totals[name] += extra(keypoints, logits, on_device).item() * images.shape[0]
        preds.append(keypoints.float().cpu().numpy())
        targets.append(batch["keypoints"].numpy())
        faces.append(batch["face"].numpy())
        indices.append(np.asarray(batch["index"]))
        if logits is not None:
            probs.append(softmax_face_probability(logits.float().cpu().numpy()))
    result = {
        "pred": np.concatenate(preds).reshape(-1, NUM_POINTS, 2),
        "target": np.concatenate(targets).reshape(-1, NUM_POINTS, 2),
        "face": np.concatenate(faces),
        "index": np.concatenate(indices),
        "face_prob": np.concatenate(probs) if probs else None,
    }
    if loss_fn is not None:
        result["loss"] = total / max(count, 1)
        result.update({f"{name}_loss": value / max(count, 1) for name, value in extra_totals.items()})
    return result


def select_device(no_cuda: bool = False) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and not no_cuda else "cpu")
