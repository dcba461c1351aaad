"""ONNX export of every registered model, and ONNX Runtime parity with PyTorch."""
import numpy as np
import pytest
import torch

from facial_keypoints.models.two_heads import for_inference
from facial_keypoints.outputs import InferenceOutput
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
            expected = InferenceOutput.of(for_inference(model)(images))
        got = onnx_model(images)  # outputs by name, as the torch model's
        assert got.keypoints.shape == (batch, 42) and got.names() == expected.names()
        for e, g in zip(expected, got):
            if e is not None:
                np.testing.assert_allclose(g.numpy(), e.numpy(), atol=1e-4, rtol=0)


def test_the_point_spread_is_the_heatmaps_own_spread():
    from facial_keypoints.models.heatmap import pixel_grid, soft_argmax_and_spread
    maps = torch.full((1, 2, 28, 28), -1e4)
    maps[0, 0, 10, 20] = 0.0  # all its probability in one cell: no spread
    maps[0, 1] = 0.0          # uniform over the frame
    keypoints, spread = soft_argmax_and_spread(maps, 112)
    assert torch.allclose(keypoints[0, :2], torch.tensor([82.0, 42.0]))  # the cell's centre, x then y
    grid = pixel_grid(28, 28, 112)
    uniform = (grid - grid.mean(0)).pow(2).sum(1).mean().sqrt()
    assert spread[0, 0] < 1e-3 and torch.isclose(spread[0, 1], uniform, rtol=1e-4)
