"""Checkpoints: plain dicts of tensors and numbers, saved atomically, loaded with weights_only=True.

A checkpoint holds what is needed to rebuild the model without the code that
trained it (``config``: architecture name and arguments, input size, crop
expansion, normalisation) and what is needed to resume training (optimizer,
scheduler, epoch, history; the RNG needs no saving because training
re-seeds it at the start of every epoch).  Never a pickled model object.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch

from facial_keypoints.atomic import atomic_output
from facial_keypoints.errors import CheckpointError
from facial_keypoints.models.networks import MODELS, create_model

FORMAT = "facial_keypoints/checkpoint"
VERSION = 1


def json_safe(value):
    """Arguments as plain types (weights_only loading accepts nothing else)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def on_cpu(value):
    """Every tensor of a nested state (an optimizer's) moved to the CPU: a checkpoint written on a
    GPU then loads anywhere, and ``load_state_dict`` moves the state back onto the parameters' device."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: on_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(v) for v in value)
    return value


def make_checkpoint(model, config: dict, *, optimizer=None, scheduler=None, args=None, epoch: int = 0,
                    metrics=None, history=None) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "config": json_safe(config),
        "model": on_cpu(model.state_dict()),
        "optimizer": on_cpu(optimizer.state_dict()) if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "args": json_safe(args or {}),
        "epoch": int(epoch),
        "metrics": json_safe(metrics or {}),
        "history": json_safe(history or []),
    }


def save_checkpoint(payload: dict, path) -> Path:
    """Write to a unique temporary file in the same folder, then rename over ``path``.

    A crash leaves the old file intact, and two runs saving into one folder
    never interleave their bytes in one file.
    """
    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def refusal(error: Exception) -> str:
    """One line in our words for a file ``torch.load(weights_only=True)`` refused; torch's own text
    (which suggests ``weights_only=False``, the one thing never to do with a file one does not trust)
    is not repeated."""
    text = str(error)
    wanted = re.search(r"unsupported GLOBAL (\S+)", text) or re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if wanted:
        return (f"not a facial_keypoints checkpoint: it asks to run {wanted.group(1)} when loaded; refused "
                "(it was not run)")
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    if first.startswith("Weights only load failed"):
        first = "it holds objects other than tensors and plain values"
    return f"not a readable checkpoint (corrupt, truncated, or not saved by this project): {first}"


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # a corrupt file gets our one-line error, not torch's protocol warning too
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - arbitrary bytes make the unpickler fail in arbitrary ways
        # (UnpicklingError, EOFError, but also IndexError, KeyError, UnicodeDecodeError ...)
        raise CheckpointError(f"{path}: {refusal(error)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a facial_keypoints checkpoint (no '{FORMAT}' marker); "
                              "train one with facial-keypoints train or stageN/detector.py --phase train")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer version ({payload['version']}) of this project")
    return payload


def model_from_checkpoint(payload: dict, path="checkpoint") -> torch.nn.Module:
    """Rebuild the model a checkpoint describes and load its weights (strictly)."""
    config = payload["config"]
    arch = config.get("arch")
    if arch not in MODELS:
        raise CheckpointError(f"{path}: unknown architecture {arch!r}; registered: {', '.join(sorted(MODELS))}")
    model = create_model(arch, input_size=config.get("input_size", 112), **config.get("model_kwargs", {}))
    weights = payload["model"]
    expected = model.state_dict().keys()
    # Checkpoints of regression models can hold their last layer a second time, as "output_layer"
    # (an alias that models now expose as a property): that copy is the same tensor.
    weights = {k: v for k, v in weights.items() if k in expected or k.split(".")[-2] != "output_layer"}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        detail = str(error).splitlines()[0]
        raise CheckpointError(f"{path}: the weights do not fit architecture {arch!r}: {detail}") from None
    return model


def load_model(path, map_location="cpu") -> tuple[torch.nn.Module, dict]:
    payload = load_checkpoint(path, map_location)
    model = model_from_checkpoint(payload, path)
    model.eval()
    return model, payload
