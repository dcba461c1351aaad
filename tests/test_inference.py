"""The shared per-face inference path: the fast crop, the runner over torch and ONNX models."""
import numpy as np
import pytest
import torch
from PIL import Image

from facial_keypoints.runtime.export import export_onnx
from facial_keypoints.data.images import _halved_region, crop_resized, crop_warped
from facial_keypoints.outputs import face_probability as softmax_face_probability
from facial_keypoints.runtime.keypoint_runner import KeypointRunner
from facial_keypoints.models.networks import create_model
from facial_keypoints.runtime.loading import OnnxModel
from facial_keypoints.data.transforms import crops_to_batch

CONFIG = {"input_size": 32, "expand_ratio": 0.25, "normalize": True}


def smooth_photo(height=90, width=120):
    ys, xs = np.mgrid[0:height, 0:width]
    return (127 + 60 * np.sin(xs / 9.0) + 50 * np.cos(ys / 7.0)).astype(np.uint8)


@pytest.mark.parametrize("box", [(10.0, 12.0, 26.0, 28.0), (5.5, 7.25, 45.5, 47.25), (30.0, 20.0, 70.0, 60.0)])
def test_warped_crop_matches_the_pil_crop_where_no_antialiasing_is_needed(box):
    gray = smooth_photo()
    fast = crop_warped(gray, box, 32).astype(int)
    reference = crop_resized(Image.fromarray(gray), box, 32).astype(int)
    assert fast.shape == reference.shape == (32, 32) and fast.dtype.kind == "i"
    assert np.abs(fast - reference).mean() < 1.5 and np.abs(fast - reference).max() <= 4


def test_warped_crop_puts_a_dot_where_the_geometry_says():
    gray = np.zeros((100, 100), np.uint8)
    gray[40:42, 60:62] = 255  # a 2x2 dot centred on continuous (61, 41)
    box = (50.0, 30.0, 82.0, 62.0)  # 32 px wide: 1 crop pixel per photo pixel
    crop = crop_warped(gray, box, 64).astype(float)  # 2 crop pixels per photo pixel
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    centre = ((xs * crop).sum() / crop.sum(), (ys * crop).sum() / crop.sum())
    np.testing.assert_allclose(centre, ((61 - 50) * 2, (41 - 30) * 2), atol=0.05)
    outside = crop_warped(gray, (-20.0, -20.0, 12.0, 12.0), 32)
    assert outside[:16, :16].max() == 0  # outside the photo is black


def test_face_probability_is_the_two_class_softmax():
    logits = np.array([[0.0, 0.0], [3.0, -2.0], [-800.0, 800.0]], np.float32)
    expected = torch.softmax(torch.from_numpy(logits).double(), dim=1)[:, 1].numpy()
    np.testing.assert_allclose(softmax_face_probability(logits), expected, atol=1e-12)


def test_runner_gives_the_same_points_with_torch_and_onnx(tmp_path):
    torch.manual_seed(0)
    model = create_model("face_keypoints", input_size=32, backbone="test_small_heatmap").eval()
    gray = smooth_photo()
    boxes = np.array([[10.0, 12.0, 50.0, 52.0], [40.5, 20.25, 100.5, 80.25]])
    torch_points, torch_prob = KeypointRunner(model, CONFIG)(gray, boxes)
    onnx_model = OnnxModel(export_onnx(model, tmp_path / "m.onnx", 32))
    onnx_points, onnx_prob = KeypointRunner(onnx_model, CONFIG)(gray, boxes)
    assert torch_points.shape == (2, 21, 2) and torch_prob.shape == (2,)
    np.testing.assert_allclose(onnx_points, torch_points, atol=1e-3)
    np.testing.assert_allclose(onnx_prob, torch_prob, atol=1e-5)
    # the points are the network's frame outputs mapped through each box
    with torch.no_grad():
        frame, logits = model(crops_to_batch(np.stack([crop_warped(gray, b, 32) for b in boxes])))
    scale = (boxes[:, 2:] - boxes[:, :2]) / 32
    np.testing.assert_allclose(torch_points, frame.numpy().reshape(2, 21, 2) * scale[:, None] + boxes[:, None, :2],
                               atol=1e-4)
    np.testing.assert_allclose(torch_prob, torch.softmax(logits, 1)[:, 1].numpy(), atol=1e-6)
    empty_points, empty_prob = KeypointRunner(model, CONFIG)(gray, np.zeros((0, 4)))
    assert empty_points.shape == (0, 21, 2) and empty_prob is None


def test_runner_of_a_keypoint_only_model_has_no_face_probability():
    model = create_model("test_small_heatmap", input_size=32).eval()
    points, prob = KeypointRunner(model, CONFIG)(smooth_photo(), [[10.0, 12.0, 50.0, 52.0]])
    assert points.shape == (1, 21, 2) and prob is None and np.isfinite(points).all()


def test_warped_crop_antialiases_a_large_reduction_like_pil():
    # fine stripes (period 2 px) seen through a box 6x the crop: PIL averages them to grey,
    # a bare bilinear warp would pick whole stripes and alias
    gray = np.zeros((400, 400), np.uint8)
    gray[:, ::2] = 255
    box = (10.0, 10.0, 202.0, 202.0)
    fast = crop_warped(gray, box, 32).astype(float)
    reference = crop_resized(Image.fromarray(gray), box, 32).astype(float)
    assert abs(fast.mean() - 127.5) < 3 and fast.std() < 10
    assert np.abs(fast - reference).mean() < 3
    ys, xs = np.mgrid[0:400, 0:400]
    gray = (127 + 100 * np.sin(xs / 25.0) * np.cos(ys / 31.0)).astype(np.uint8)  # smooth: geometry check
    for box in [(10.0, 10.0, 202.0, 202.0), (33.3, 17.7, 301.1, 285.5), (200.0, 205.0, 399.0, 400.0)]:
        fast = crop_warped(gray, box, 32).astype(float)
        reference = crop_resized(Image.fromarray(gray), box, 32).astype(float)
        assert np.abs(fast - reference).mean() < 2.0, box  # (PIL refuses boxes beyond the photo)


def test_warped_crop_averages_stripes_away_at_every_reduction_from_2_to_7():
    gray = np.zeros((500, 500), np.uint8)
    gray[:, ::2] = 255  # period-2 stripes: any reduction >= 2 must average them to grey
    for factor in (2.0, 2.6, 3.0, 3.7, 5.0, 7.2):
        box = (11.0, 13.0, 11.0 + 32 * factor, 13.0 + 32 * factor)
        crop = crop_warped(gray, box, 32).astype(float)
        assert abs(crop.mean() - 127.5) < 3 and crop.std() < 12, factor


def test_halved_region_is_the_block_mean_of_the_photo_and_reaches_past_the_box():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (120, 160), dtype=np.uint8)
    box = (10.4, 6.7, 50.2, 47.9)  # 41 x 42 photo pixels from (10, 6): 11 blocks of 4 each way
    region, (x0, y0, x1, y1) = _halved_region(gray, box, 2)
    assert region.shape == (11, 11)
    blocks = gray[6:50, 10:54].reshape(11, 4, 11, 4).mean(axis=(1, 3))  # photo pixels, not repeated edges
    assert np.abs(region.astype(float) - blocks).max() <= 1.0  # two rounded halvings
    np.testing.assert_allclose((x0, y0, x1, y1), (0.1, 0.175, 10.05, 10.475))
    # at the photo's edge the last block repeats the edge pixels
    region, _ = _halved_region(gray, (141.0, 101.0, 159.0, 119.5), 1)  # 19 px to the edge: one short
    assert region.shape == (10, 10)
    assert region[-1, -1] == gray[119, 159]  # a block of the corner pixel and its three copies
