"""8-bit ONNX models for the CPU: the convolutional trunk in int8, its two ends in float.

Static quantization (ONNX Runtime, QDQ, per-channel weights) calibrated on real
training crops.  Quantizing the whole network costs the compact heatmap model a
third of its accuracy (test nme_io 3.44 % -> 4.62 %): the soft-argmax turns
small errors in the heatmap logits into large coordinate errors.  So the last
convolution and everything after it (the decoding, and the classifier's fully
connected layers) stay in float.  So does the first convolution: it reads the
standardised image itself, which loses its fine gradations in 8 bits, and with
one input channel it is too small for int8 to pay off.  Keeping it in float
cut the int8-vs-float keypoint shift on the calibration faces from 0.090 to
0.055 px and the time per face from 0.40 to 0.34 ms (stage3/README.md).
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np

from .atomic import atomic_output
from .transforms import crops_to_batch


def float_nodes(model_path) -> list[str]:
    """Names of the nodes to keep in float: the first Conv, the last Conv and all after it, every Gemm/MatMul."""
    import onnx
    nodes = onnx.load(str(model_path)).graph.node
    names = [n.name for n in nodes]
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    keep = names[convs[-1]:] + [names[convs[0]]] if convs else []
    return keep + [n.name for n in nodes if n.op_type in ("Gemm", "MatMul") and n.name not in keep]


def quantize_onnx(float_path, out_path, crops: np.ndarray, normalize: bool = True, batch: int = 16) -> Path:
    """Write an int8 copy of ``float_path`` calibrated on ``crops`` ((N, H, W) uint8, a few hundred suffice)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(crops) == 0:
        raise ValueError("quantization needs calibration crops")

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"image": crops_to_batch(crops[i:i + batch], normalize).numpy()}
                                 for i in range(0, len(crops), batch)])

        def get_next(self):
            return next(self.batches, None)

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        staged = Path(tmp) / "int8.onnx"
        quantize_static(str(prepared), str(staged), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=float_nodes(prepared))
        with atomic_output(out_path) as partial:  # a reader never sees half a model
            partial.write_bytes(staged.read_bytes())
    return out_path


def int8_path(checkpoint) -> Path:
    """Where the int8 model of ``checkpoint`` lives: beside it, ``NAME.int8.onnx``."""
    return Path(checkpoint).with_suffix(".int8.onnx")


# The int8 model records which checkpoint it was made from, so --backend auto never runs a stale one
# (a checkpoint retrained after its int8 model was made, or copied over another).
SOURCE_KEY = "checkpoint_sha256"


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def stamp_source(onnx_path, checkpoint) -> None:
    """Record ``checkpoint``'s SHA-256 in the ONNX model's metadata (the graph is untouched)."""
    import onnx
    model = onnx.load(str(onnx_path))
    kept = [p for p in model.metadata_props if p.key != SOURCE_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=SOURCE_KEY, value=file_sha256(checkpoint))
    with atomic_output(Path(onnx_path)) as partial:
        onnx.save(model, str(partial))


def int8_model_of(checkpoint) -> Path | None:
    """``int8_path(checkpoint)`` when it exists and was made from this very checkpoint, else None."""
    path = int8_path(checkpoint)
    if not path.is_file():
        return None
    import onnx
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return path if props.get(SOURCE_KEY) == file_sha256(checkpoint) else None
