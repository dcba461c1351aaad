"""ONNX files of a checkpoint: the float export, stamped with the checkpoint it was made from.

This module only writes files; ``runtime`` loads them.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from facial_keypoints.atomic import atomic_output
from facial_keypoints.outputs import InferenceOutput
from facial_keypoints.keypoints import POINT_NAMES
from facial_keypoints.runtime.loading import CONFIG_KEY, POINTS_KEY, SOURCE_KEY, file_sha256


def export_onnx(model: torch.nn.Module, path, input_size: int = 112, opset: int = 17) -> Path:
    """Write ``model`` as ONNX with a dynamic batch axis (outputs: keypoints, and face logits and each point's
    spread where the model has them)."""
    from facial_keypoints.models.two_heads import for_inference
    model = for_inference(model.eval().cpu())
    example = torch.zeros(2, 1, input_size, input_size)
    with torch.no_grad():
        outputs = InferenceOutput.of(model(example)).names()  # the graph's outputs are named as its fields
    path = Path(path)
    with atomic_output(path) as tmp, warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export, which needs onnxscript;
        # it still exports these convolutional nets exactly (checked by tests/test_export.py).
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, tmp, input_names=["image"], output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in ["image", *outputs]},
                          opset_version=opset, dynamo=False)
    return path


def stamp_source(onnx_path, checkpoint) -> None:
    """Record ``checkpoint``'s SHA-256, its settings (the config) and the point names in the ONNX model's metadata
    (the graph is untouched): the loader (``loading.find_onnx``) runs it only for that very checkpoint,
    and without torch."""
    import json

    import onnx

    from facial_keypoints.models.checkpoint import json_safe, load_checkpoint
    model = onnx.load(str(onnx_path))
    stamps = {SOURCE_KEY: file_sha256(checkpoint),
              CONFIG_KEY: json.dumps(json_safe(load_checkpoint(checkpoint)["config"])),
              POINTS_KEY: json.dumps(POINT_NAMES)}
    kept = [p for p in model.metadata_props if p.key not in stamps]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in stamps.items():
        model.metadata_props.add(key=key, value=value)
    with atomic_output(Path(onnx_path)) as partial:
        onnx.save(model, str(partial))
