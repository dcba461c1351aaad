"""Figures: loss curves, cumulative error curves and faces with their points drawn."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from facial_keypoints.drawing import draw_points, grid

os.environ.setdefault("MPLBACKEND", "Agg")  # no display on servers and CI


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_loss_curves(history: list[dict], path, title: str = "loss") -> Path:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    if all("val_labels_loss" in h for h in history):  # distillation: what best.pt is picked on
        ax.plot(epochs, [h["val_labels_loss"] for h in history], "--", label="validation, labels alone (best.pt)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("\n".join(textwrap.wrap(title, 34)))  # stage 3's names every term it sums: wrap, don't clip
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_ced(curves: dict[str, np.ndarray], path, threshold: float = 10.0) -> Path:
    """Cumulative error distribution: fraction of faces with nme_io <= x, one line per name."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = np.linspace(0, threshold, 201)
    for name, errors in curves.items():
        errors = np.sort(np.asarray(errors))
        ys = np.searchsorted(errors, xs, side="right") / max(len(errors), 1)
        ax.plot(xs, ys * 100, label=name)
    ax.set_xlabel("nme_io (%)")
    ax.set_ylabel("faces (%)")
    ax.set_xlim(0, threshold)
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def prediction_sheet(records, predicted, data_root, path, count: int = 16, size: int = 224) -> Path:
    """The first ``count`` crops of list ``records`` in colour, ``size`` px: true points red (faces),
    ``predicted`` (N, 21, 2 in the photos' pixels) green; saved as one sheet at ``path``."""
    tiles = []
    for record, points in list(zip(records, predicted))[:count]:
        scale = size / (record.box[2:] - record.box[:2])
        with Image.open(Path(data_root) / record.image) as photo:
            tile = photo.convert("RGB").crop(tuple(int(v) for v in record.box)).resize((size, size))
        if record.is_face:
            tile = draw_points(tile, record.keypoints * scale, color=(255, 40, 40), skeleton=False)
        tiles.append(draw_points(tile, (np.asarray(points) - record.box[:2]) * scale, color=(40, 255, 40)))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    grid(tiles).save(path)
    return Path(path)
