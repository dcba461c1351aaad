"""From a checkpoint to a runnable network: the one place that loads a model, for torch, ONNX and int8 alike.

A checkpoint (``NAME.pt``: weights and config, ``checkpoint.py``) may have ONNX files made from it:
``NAME.onnx`` by ``facial-keypoints export`` and ``NAME.int8.onnx`` by ``facial-keypoints quantize``.
Each records the SHA-256 of the checkpoint it was made from, so a stale one (the checkpoint was
retrained or replaced since) is never run.  They lie beside the checkpoint, or in the user cache
(``derived_path``) where the checkpoint is one of the models shipped inside the package, which no
command writes to.  Loading never exports: a missing file is an error that names the command that
makes it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from facial_keypoints.keypoints import POINT_NAMES
from facial_keypoints.outputs import InferenceOutput
from facial_keypoints.weights import DEFAULT_CHECKPOINT, WEIGHTS_DIR

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
SUFFIXES = {"onnx": ".onnx", "onnx-int8": ".int8.onnx"}
MAKERS = {"onnx": "export", "onnx-int8": "quantize"}
SOURCE_KEY = "checkpoint_sha256"  # ONNX metadata: which checkpoint the file was made from
OPSETS = (11, 23)  # the ONNX opsets export offers: torch's exporter stops at 23, and 11 has every op our nets use


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def is_shipped(checkpoint) -> bool:
    """Whether ``checkpoint`` is one of the models inside the package (read-only to every command)."""
    return Path(checkpoint).resolve().parent == WEIGHTS_DIR


def derived_path(checkpoint, backend: str) -> Path:
    """Where ``export`` (backend ``onnx``) or ``quantize`` (``onnx-int8``) writes by default: beside the
    checkpoint, or for a shipped model in the user cache, under the checkpoint's hash."""
    checkpoint = Path(checkpoint)
    name = checkpoint.stem + SUFFIXES[backend]
    if is_shipped(checkpoint):
        from facial_keypoints.data.crop_cache import default_cache_dir
        return default_cache_dir() / "models" / file_sha256(checkpoint)[:16] / name
    return checkpoint.with_name(name)


CONFIG_KEY = "config"  # ONNX metadata: the checkpoint's settings as JSON, so no torch is needed to run it
POINTS_KEY = "point_names"  # ONNX metadata: the 21 points' names, in the output's order


def onnx_metadata(onnx_path) -> dict | None:
    """The ONNX file's metadata ({key: text}), read through ONNX Runtime; None (and a warning naming the
    file) where the file is not a readable ONNX model."""
    import sys

    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # only the header is wanted
    try:
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ONNX Runtime's own errors: not a model of ours
        print(f"warning: {onnx_path} is not a readable ONNX model ({type(error).__name__}); not used",
              file=sys.stderr)
        return None
    return dict(session.get_modelmeta().custom_metadata_map)


def made_from(onnx_path, checkpoint) -> bool:
    """Whether the ONNX file records ``checkpoint``'s SHA-256 (``export.stamp_source`` wrote it)."""
    metadata = onnx_metadata(onnx_path)
    return metadata is not None and metadata.get(SOURCE_KEY) == file_sha256(checkpoint)


def find_onnx(checkpoint, backend: str) -> Path | None:
    """The ``backend`` file of ``checkpoint`` (beside it, then in the user cache) made from this very checkpoint."""
    checkpoint = Path(checkpoint)
    for path in dict.fromkeys([checkpoint.with_name(checkpoint.stem + SUFFIXES[backend]),
                               derived_path(checkpoint, backend)]):
        if path.is_file() and made_from(path, checkpoint):
            return path
    return None


def resolve_backend(checkpoint, backend: str = "auto") -> str:
    """``auto``: the int8 model when one made from the checkpoint exists (the shipped model has one),
    else the float ONNX model when one exists, else torch.  A named backend is returned as it is."""
    return _resolve(checkpoint, backend)[0]


def _resolve(checkpoint, backend: str) -> tuple[str, Path | None]:
    """(the backend, its ONNX file if found): each candidate file is looked at once."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "torch":
        return backend, None
    for candidate in ("onnx-int8", "onnx") if backend == "auto" else (backend,):
        path = find_onnx(checkpoint, candidate)
        if path is not None:
            return candidate, path
    return ("torch" if backend == "auto" else backend), None


DEVICES = ("cpu", "cuda")


def onnx_providers(device: str) -> list[str]:
    """ONNX Runtime's execution providers for ``device``; a ValueError in one line where CUDA is asked for
    and this ONNX Runtime has none (the onnxruntime-gpu package replaces onnxruntime; they do not mix)."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    import onnxruntime as ort
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ValueError("device cuda needs ONNX Runtime's CUDA build: pip uninstall onnxruntime && pip install "
                         "onnxruntime-gpu (this one offers " + ", ".join(ort.get_available_providers()) + ")")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class OnnxModel:
    """Callable like the torch model on a (N, 1, H, W) tensor, backed by ONNX Runtime; ``run_arrays`` for NumPy."""

    def __init__(self, path, threads: int | None = None, device: str = "cpu"):
        import onnxruntime as ort
        options = ort.SessionOptions()
        # No busy-waiting between runs: in whole-photo predict the torch face detector
        # runs between our calls, and spinning ORT threads would take its cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=onnx_providers(device))
        self.outputs = [o.name for o in self.session.get_outputs()]
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.config: dict | None = json.loads(metadata[CONFIG_KEY]) if CONFIG_KEY in metadata else None
        self.point_names: list | None = json.loads(metadata[POINTS_KEY]) if POINTS_KEY in metadata else None

    def eval(self):
        return self

    def to(self, device):
        return self

    def __call__(self, images):
        import torch
        return InferenceOutput(*(None if value is None else torch.from_numpy(value)
                                for value in self.run_arrays(images.detach().cpu().numpy())))

    def run_arrays(self, images: np.ndarray) -> InferenceOutput:
        """The outputs for an (N, 1, H, W) float32 array, as arrays, by name."""
        values = self.session.run(self.outputs, {"image": np.ascontiguousarray(images, dtype=np.float32)})
        return InferenceOutput.from_named(dict(zip(self.outputs, values)))


def load(checkpoint=None, backend: str = "auto", threads: int | None = None, device: str = "cpu"):
    """``(network, payload, backend)`` for ``checkpoint`` (default: the shipped model).

    ``network`` is a torch module in eval mode or an ``OnnxModel``; ``payload`` the checkpoint, or for an
    ONNX file that records them only its settings (``{"config": ...}``: architecture, input size, crop
    expansion, face threshold), so that the shipped model runs without torch; ``backend`` the one
    ``auto`` resolved to.
    """
    checkpoint = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    if not checkpoint.is_file():
        from facial_keypoints.errors import CheckpointError
        raise CheckpointError(f"{checkpoint} is not a regular file" if checkpoint.exists()
                              else f"checkpoint not found: {checkpoint}")
    backend, path = _resolve(checkpoint, backend)
    if backend == "torch":
        from facial_keypoints.errors import require_train
        require_train(f"{checkpoint} on the torch backend")
        import torch

        from facial_keypoints.models.checkpoint import load_checkpoint, model_from_checkpoint
        payload = load_checkpoint(checkpoint)
        if threads:
            torch.set_num_threads(threads)
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda: torch finds no CUDA device here")
        from facial_keypoints.models.two_heads import for_inference
        return for_inference(model_from_checkpoint(payload, checkpoint)).eval().to(device), payload, backend
    if path is None:
        raise FileNotFoundError(
            f"no {backend} model made from {checkpoint} (beside it, or in the user cache): make one with "
            f"facial-keypoints {MAKERS[backend]} --checkpoint {checkpoint}"
            + (" --list LIST" if backend == "onnx-int8" else ""))
    model = OnnxModel(path, threads, device)
    if model.point_names is not None and list(model.point_names) != list(POINT_NAMES):
        from facial_keypoints.errors import CheckpointError
        raise CheckpointError(f"{path} names other points than this library's 21 ({model.point_names[:3]} ...)")
    if model.config is not None:
        return model, {"config": model.config}, backend
    from facial_keypoints.models.checkpoint import load_checkpoint  # a file made before settings were recorded
    return model, load_checkpoint(checkpoint), backend
