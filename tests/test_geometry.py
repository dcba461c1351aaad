import numpy as np
import pytest

from facial_keypoints.geometry import BoxError, expand_box, frame_to_image, iou, to_frame


def test_expand_box_by_a_quarter_on_every_side():
    np.testing.assert_array_equal(expand_box((100, 100, 200, 180), 0.25, 1000, 1000), [75, 80, 225, 200])


def test_expand_box_rounds_outwards_and_clips_to_the_image():
    np.testing.assert_array_equal(expand_box((10.5, 5, 90.2, 95), 0.25, 100, 100), [0, 0, 100, 100])
    np.testing.assert_array_equal(expand_box((30.5, 40, 50.5, 60), 0.1, 100, 100), [28, 38, 53, 62])


@pytest.mark.parametrize("box", [(120, 10, 150, 40), (-50, 10, -5, 40), (10, 10, 10, 40)])
def test_boxes_outside_the_image_or_empty_are_refused(box):
    with pytest.raises(BoxError):
        expand_box(box, 0.25, 100, 100)


def test_relative_frame_image_round_trip():
    rng = np.random.default_rng(1)
    boxes = np.array([[10, 20, 130, 200], [0, 0, 56, 56]], float)
    points = rng.uniform(0, 1, (2, 21, 2)) * (boxes[:, None, 2:] - boxes[:, None, :2]) + boxes[:, None, :2]
    frame = np.stack([to_frame(points[i] - boxes[i, :2], boxes[i], 112) for i in range(2)])
    assert frame.min() >= 0 and frame.max() <= 112
    np.testing.assert_allclose(frame_to_image(frame, boxes, 112), points, atol=1e-9)
    # A box twice the frame's size halves the coordinates.
    np.testing.assert_allclose(to_frame([[224, 112]], (0, 0, 224, 224), 112), [[112, 56]])


def test_iou():
    np.testing.assert_allclose(iou(np.array([0, 0, 10, 10]), [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]),
                               [1, 1 / 3, 0])
