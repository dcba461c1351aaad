"""ONNX export, and an ONNX Runtime model that the inference loop can use in place of the torch one."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_output
from .checkpoint import load_model


def export_onnx(model: torch.nn.Module, path, input_size: int = 112, opset: int = 17) -> Path:
    """Write ``model`` as ONNX with a dynamic batch axis (outputs: keypoints, and face logits if present)."""
    model = model.eval().cpu()
    example = torch.zeros(2, 1, input_size, input_size)
    with torch.no_grad():
        out = model(example)
    outputs = ["keypoints", "face_logits"] if isinstance(out, (tuple, list)) else ["keypoints"]
    path = Path(path)
    with atomic_output(path) as tmp, warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export, which needs onnxscript;
        # it still exports these convolutional nets exactly (checked by tests/test_export.py).
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, tmp, input_names=["image"], output_names=outputs,
                          dynamic_axes={name: {0: "batch"} for name in ["image", *outputs]},
                          opset_version=opset, dynamo=False)
    return path


class OnnxModel:
    """Callable like the torch model on a (N, 1, H, W) tensor, backed by ONNX Runtime."""

    def __init__(self, path, threads: int | None = None):
        import onnxruntime as ort
        options = ort.SessionOptions()
        # No busy-waiting between runs: in whole-photo predict the torch face detector
        # runs between our calls, and spinning ORT threads would take its cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def eval(self):
        return self

    def to(self, device):
        return self

    def __call__(self, images: torch.Tensor):
        results = [torch.from_numpy(r) for r in self.run_arrays(images.detach().cpu().numpy())]
        return results[0] if len(results) == 1 else tuple(results)

    def run_arrays(self, images: np.ndarray) -> list[np.ndarray]:
        """The outputs for an (N, 1, H, W) float32 array, as arrays (inference.KeypointRunner's fast path)."""
        return self.session.run(self.outputs, {"image": np.ascontiguousarray(images, dtype=np.float32)})


BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


def resolve_backend(checkpoint, backend: str) -> str:
    """``auto``: onnx-int8 when the checkpoint's int8 model lies beside it and was made from it
    (``quantize.int8_model_of``; the shipped model has one), else torch."""
    if backend != "auto":
        return backend
    from .quantize import int8_model_of
    return "onnx-int8" if int8_model_of(checkpoint) is not None else "torch"


def load_backend(checkpoint, backend: str = "torch", onnx_path=None, threads: int | None = None):
    """(model, payload) for --backend auto|torch|onnx|onnx-int8; the ONNX file is exported beside
    the checkpoint if missing.  A checkpoint whose config names a referee (``referee.Refereed``)
    comes with it, loaded with the same backend."""
    model, payload = _load_one_backend(checkpoint, backend, onnx_path, threads)
    referee = payload["config"].get("referee")
    if referee:
        from .referee import REFEREE_BAND, Refereed
        referee_model, _ = load_backend(Path(checkpoint).parent / referee["checkpoint"],
                                        resolve_backend(checkpoint, backend), threads=threads)
        model = Refereed(model, referee_model, referee.get("band", REFEREE_BAND))
    return model, payload


def _load_one_backend(checkpoint, backend: str, onnx_path=None, threads: int | None = None):
    model, payload = load_model(checkpoint)
    backend = resolve_backend(checkpoint, backend)
    if backend == "torch":
        return model, payload
    if backend == "onnx-int8":
        from .quantize import int8_path
        path = Path(onnx_path) if onnx_path else int8_path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"no int8 model {path} for {checkpoint}: make one with "
                                    f"python -m facial_keypoints quantize --checkpoint {checkpoint} --list LIST")
        return OnnxModel(path, threads), payload
    if backend != "onnx":
        raise ValueError(f"unknown backend {backend!r}; choose torch, onnx or onnx-int8")
    onnx_path = Path(onnx_path) if onnx_path else Path(checkpoint).with_suffix(".onnx")
    if not os.access(onnx_path.parent, os.W_OK):  # e.g. the shipped model inside a read-only install
        from .cache import default_cache_dir
        onnx_path = default_cache_dir() / "onnx" / f"{Path(checkpoint).stem}-{Path(checkpoint).stat().st_size}.onnx"
    if not onnx_path.is_file() or onnx_path.stat().st_mtime < Path(checkpoint).stat().st_mtime:
        export_onnx(model, onnx_path, payload["config"]["input_size"])
    return OnnxModel(onnx_path, threads), payload
