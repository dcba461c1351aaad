"""One inference pass over a dataset of crops, for ``evaluate`` and the benchmarks.

Training's loops (the epoch, validation with the loss's terms) are ``training.loop``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from .keypoints import NUM_POINTS


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


@torch.no_grad()
def run_inference(model, loader, device) -> dict:
    """Predict every sample of ``loader`` in order.

    Returns frame-pixel predictions (N, 21, 2), the targets, face masks and
    face probabilities (two-headed models).
    """
    model.eval()
    preds, targets, faces, probs, indices = [], [], [], [], []
    for batch in loader:
        images = batch["image"].to(device)
        keypoints, logits = model_outputs(model, images)
        preds.append(keypoints.float().cpu().numpy())
        targets.append(batch["keypoints"].numpy())
        faces.append(batch["face"].numpy())
        indices.append(np.asarray(batch["index"]))
        if logits is not None:
            probs.append(softmax_face_probability(logits.float().cpu().numpy()))
    return {
        "pred": np.concatenate(preds).reshape(-1, NUM_POINTS, 2),
        "target": np.concatenate(targets).reshape(-1, NUM_POINTS, 2),
        "face": np.concatenate(faces),
        "index": np.concatenate(indices),
        "face_prob": np.concatenate(probs) if probs else None,
    }


def select_device(no_cuda: bool = False) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and not no_cuda else "cpu")
