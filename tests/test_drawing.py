"""facial_keypoints.draw: the faces on a copy of the caller's own image, of the kind it was given."""
import numpy as np
import pytest
from PIL import Image

import facial_keypoints
from facial_keypoints.runtime.photos import Face
from facial_keypoints.video.tracking import TrackedFace


def a_face(is_face=True, **extra):
    points = np.stack(np.meshgrid(np.linspace(40, 80, 7), np.linspace(40, 80, 3)), -1).reshape(-1, 2)
    face = Face(np.array([30.0, 30.0, 90.0, 90.0]), 0.9, points.astype(np.float32), 0.8,
                np.array([20.0, 20.0, 100.0, 100.0]), is_face)
    for name, value in extra.items():
        setattr(face, name, value)
    return face


def test_draw_on_an_rgb_array_gives_a_drawn_copy_and_leaves_the_array_alone():
    frame = np.zeros((120, 160, 3), np.uint8)
    drawn = facial_keypoints.draw(frame, [a_face()])
    assert isinstance(drawn, np.ndarray) and drawn.shape == frame.shape and drawn.dtype == np.uint8
    assert not frame.any()
    assert drawn[40, 40, 1] > 200 and drawn[40, 40, 0] < 100  # a point, green
    assert drawn[30, 60, 1] > 200  # the box's top edge


def test_draw_keeps_an_opencv_frames_channel_order():
    frame = np.zeros((120, 160, 3), np.uint8)
    rejected = a_face(is_face=False)
    rgb = facial_keypoints.draw(frame, [rejected])
    bgr = facial_keypoints.draw(frame, [rejected], bgr=True)
    assert rgb[30, 60, 0] > 200 and rgb[30, 60, 2] < 100  # red in RGB
    assert bgr[30, 60, 2] > 200 and bgr[30, 60, 0] < 100  # the same red, as BGR
    assert not facial_keypoints.draw(frame, [rejected], rejected=False).any()


def test_draw_on_a_pil_image_a_grey_array_or_json_records():
    face = a_face()
    drawn = facial_keypoints.draw(Image.new("L", (160, 120)), face)
    assert isinstance(drawn, Image.Image) and drawn.mode == "RGB" and drawn.size == (160, 120)
    from_record = facial_keypoints.draw(np.zeros((120, 160), np.uint8), [face.as_json()])
    assert from_record.shape == (120, 160, 3)
    assert np.array_equal(from_record, np.asarray(drawn))


def test_draw_writes_ids_and_refuses_what_is_not_an_image():
    frame = np.zeros((120, 160, 3), np.uint8)
    base = a_face()
    tracked = TrackedFace(base.box, base.score, base.keypoints, base.detector_score, base.crop_box, id=7)
    with_id = facial_keypoints.draw(frame, [tracked])
    without = facial_keypoints.draw(frame, [tracked], ids=False)
    assert with_id[:29].any() and not without[:29].any()  # the label sits above the box
    with pytest.raises(ValueError, match=r"\(4, 4, 2\)"):
        facial_keypoints.draw(np.zeros((4, 4, 2), np.uint8), [])


def test_draw_shows_the_pose_and_confidence_of_faces_and_of_their_json_records():
    frame = np.zeros((120, 160, 3), np.uint8)
    face = a_face(point_confidence=np.linspace(0, 1, 21, dtype=np.float32))
    face._pose = np.array([30.0, 0.0, 0.0], np.float32)  # as Face.pose works it out
    plain = facial_keypoints.draw(frame, [face], points=False, boxes=False)
    assert (facial_keypoints.draw(frame, [face], points=False, boxes=False, pose=True) != plain).any()
    record = {**face.as_json(), "quality": 0.5, "point_confidence": dict(zip(facial_keypoints.POINT_NAMES, [0.1] * 21)),
              "pose": {"yaw": 30.0, "pitch": None, "roll": 0.0}}
    drawn = facial_keypoints.draw(frame, [record], confidence=True, pose=True)
    assert drawn[40, 40, 0] > 150  # a point of low confidence, red
    unsure = facial_keypoints.draw(frame, [face], confidence=True)
    assert unsure[40, 40, 0] > 200 and unsure[80, 80, 1] > 200  # the first point doubtful, the last sure


@pytest.mark.parametrize("image", [np.zeros((0, 0, 3), np.uint8), np.zeros((10, 10, 3), np.float32),
                                   np.zeros((0, 10), np.uint8)])
def test_draw_refuses_empty_or_non_uint8_arrays_in_one_line(image):
    with pytest.raises(ValueError, match="uint8"):
        facial_keypoints.draw(image, [a_face()])


def test_draw_takes_faces_far_outside_the_image_and_refuses_what_is_no_face():
    frame = np.zeros((120, 160, 3), np.uint8)
    far = a_face()
    far.box, far.keypoints = far.box - 1e12, far.keypoints - 1e12
    assert not facial_keypoints.draw(frame, [far]).any()
    for bad in ({"keypoints": np.zeros((21, 2))}, {"box": [0, 0, 9, 9], "keypoints": np.zeros((5, 2))}, None):
        with pytest.raises(ValueError, match="face"):
            facial_keypoints.draw(frame, bad if bad is None else [bad])
