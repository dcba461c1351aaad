"""8-bit ONNX models for the CPU: the convolutional trunk in int8, its two ends in float.

Static quantization (ONNX Runtime, QDQ, per-channel weights) calibrated on real
training crops.  The soft-argmax turns small errors in the heatmap logits into
large coordinate errors, so the last convolution and everything after it (the
decoding, and the classifier's fully connected layers) stay in float.  So does
the first convolution: it reads the standardised image itself, which loses its
fine gradations in 8 bits, and with one input channel it is too small for int8
to pay off.  This module only writes files; ``runtime`` loads them.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from facial_keypoints.atomic import atomic_output
from facial_keypoints.data.transforms import crops_to_batch


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
