"""One inference pass over a dataset of crops, for ``evaluate`` and the benchmarks.

Training's loops (the epoch, validation with the loss's terms) are ``training.loop``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from facial_keypoints.keypoints import NUM_POINTS
from facial_keypoints.outputs import KeypointOutput, face_probability


def make_loader(dataset, batch_size: int, *, shuffle: bool, workers: int = 0, generator=None,
                sampler=None) -> DataLoader:
    """Batches of ``dataset``; a ``sampler`` (a process's share under torchrun) replaces the shuffling.

    A shuffled (training) loader drops a last batch of one sample: batch norm cannot train on it.
    """
    one_left = shuffle and len(sampler if sampler is not None else dataset) % batch_size == 1
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=workers, generator=generator, persistent_workers=False, drop_last=one_left)


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
        out = KeypointOutput.of(model(images))
        preds.append(out.keypoints.float().cpu().numpy())
        targets.append(batch["keypoints"].numpy())
        faces.append(batch["face"].numpy())
        indices.append(np.asarray(batch["index"]))
        if out.face_logits is not None:
            probs.append(face_probability(out.face_logits.float().cpu().numpy()))
    return {
        "pred": np.concatenate(preds).reshape(-1, NUM_POINTS, 2),
        "target": np.concatenate(targets).reshape(-1, NUM_POINTS, 2),
        "face": np.concatenate(faces),
        "index": np.concatenate(indices),
        "face_prob": np.concatenate(probs) if probs else None,
    }


def select_device(no_cuda: bool = False) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and not no_cuda else "cpu")
