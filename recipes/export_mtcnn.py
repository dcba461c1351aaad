"""MTCNN's three networks as ONNX files inside the package, so the face detector runs without torch.

    python recipes/export_mtcnn.py        # facial_keypoints/weights/mtcnn_{pnet,rnet,onet}.onnx

The weights are facenet-pytorch's (MIT licence, shipped inside its wheel; the [train] extra installs
it). Each network is exported once with a dynamic batch axis (PNet also dynamic height and width,
since it slides over every level of the image pyramid) and checked against PyTorch on a seeded
input. ``runtime/mtcnn.py`` runs them with ONNX Runtime and OpenCV.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facial_keypoints.atomic import atomic_output  # noqa: E402
from facial_keypoints.weights import WEIGHTS_DIR  # noqa: E402

NETWORKS = {  # name: (input shape for the export, output names in facenet-pytorch's order, dynamic axes)
    "pnet": ((1, 3, 37, 41), ["box_offsets", "face_probability"], {0: "batch", 2: "height", 3: "width"}),
    "rnet": ((2, 3, 24, 24), ["box_offsets", "face_probability"], {0: "batch"}),
    "onet": ((2, 3, 48, 48), ["box_offsets", "landmarks", "face_probability"], {0: "batch"}),
}


def main() -> int:
    import onnxruntime as ort
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
    nets = {"pnet": PNet(), "rnet": RNet(), "onet": ONet()}  # pretrained=True: the weights in the wheel
    for name, (shape, outputs, axes) in NETWORKS.items():
        net = nets[name].eval()
        example = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        path = WEIGHTS_DIR / f"mtcnn_{name}.onnx"
        with atomic_output(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, example, tmp, input_names=["image"], output_names=outputs, opset_version=17,
                              dynamic_axes={"image": axes, **{o: {0: "batch"} for o in outputs}}, dynamo=False)
        check = torch.randn(3, 3, *((53, 67) if name == "pnet" else shape[2:]), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = [t.numpy() for t in net(check)]
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": check.numpy()})
        worst = max(float(np.abs(e - g).max()) for e, g in zip(expected, got))
        print(f"{path.name}: {path.stat().st_size / 1e3:.0f} kB, ONNX Runtime vs torch max difference {worst:.1e}")
        assert worst < 1e-4, name
    return 0


if __name__ == "__main__":
    sys.exit(main())
