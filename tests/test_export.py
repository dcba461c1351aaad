"""ONNX export of every registered model, and ONNX Runtime parity with PyTorch."""
import numpy as np
import pytest
import torch

from facial_keypoints.outputs import KeypointOutput
from facial_keypoints.runtime.export import export_onnx
from facial_keypoints.runtime.loading import OnnxModel
from facial_keypoints.models.networks import MODELS, create_model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_runtime_matches_torch(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    onnx_model = OnnxModel(path, threads=1)
    for batch in (1, 5):  # the batch axis is dynamic
        images = torch.randn(batch, 1, 112, 112)
        with torch.no_grad():
            expected = KeypointOutput.of(model(images))
        got = onnx_model(images)  # outputs by name, as the torch model's
        assert got.keypoints.shape == (batch, 42) and got.names() == expected.names()
        for e, g in zip(expected, got):
            if e is not None:
                np.testing.assert_allclose(g.numpy(), e.numpy(), atol=1e-4, rtol=0)
