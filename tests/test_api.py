"""The Python API: FaceLandmarker on paths, PIL images and arrays; the CLI is a thin layer over it."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facial_keypoints import POINT_NAMES
from facial_keypoints.api import FaceLandmarker, to_rgb_image
from facial_keypoints.cli import main as cli

from conftest import REPO

PHOTO = "I/000010.jpg"  # two labelled faces


@pytest.fixture(scope="module")
def landmarker():
    return FaceLandmarker(threads=2)


def test_importing_the_package_does_not_import_torch():
    code = "import sys, facial_keypoints; print(sorted(m for m in ('torch', 'onnxruntime', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "[]"
    from facial_keypoints import FaceLandmarker as exported
    assert exported is FaceLandmarker


def test_arrays_are_read_as_rgb_gray_or_bgr():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    assert to_rgb_image(rgb).getpixel((0, 0)) == (200, 0, 0)
    assert to_rgb_image(rgb, bgr=True).getpixel((0, 0)) == (0, 0, 200)
    assert to_rgb_image(np.full((4, 5), 7, np.uint8)).getpixel((0, 0)) == (7, 7, 7)
    rgba = np.zeros((4, 5, 4), np.uint8)  # fully transparent: laid on white
    assert to_rgb_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ValueError, match="uint8"):
        to_rgb_image(np.zeros((4, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        to_rgb_image(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(TypeError, match="a path, a PIL image or a numpy array"):
        to_rgb_image(42)


def test_detect_gives_the_same_faces_for_a_path_a_pil_image_and_arrays(real_root, landmarker):
    path = real_root / PHOTO
    faces = landmarker.detect(path)
    assert len(faces) >= 2
    face = faces[0]
    assert face.box.shape == (4,) and face.keypoints.shape == (len(POINT_NAMES), 2)
    assert face.keypoints.dtype == np.float32 and 0.0 <= face.score <= 1.0 and face.score >= landmarker.face_threshold
    x1, y1, x2, y2 = face.box
    inside = (face.keypoints[:, 0] > x1 - 0.2 * (x2 - x1)) & (face.keypoints[:, 0] < x2 + 0.2 * (x2 - x1))
    assert inside.all()  # the points lie on the face they belong to
    image = Image.open(path).convert("RGB")
    rgb = np.asarray(image)
    for other in (landmarker.detect(str(path)), landmarker.detect(image), landmarker.detect(rgb),
                  landmarker.detect(np.ascontiguousarray(rgb[..., ::-1]), bgr=True)):
        assert [f.as_json() for f in other] == [f.as_json() for f in faces]
    assert [len(r) for r in landmarker.detect([path, image])] == [len(faces)] * 2  # a list in, a list out


def test_landmarks_on_given_boxes_are_detect_without_the_second_crop(real_root):
    single = FaceLandmarker(refine=False, threads=2)
    image = Image.open(real_root / PHOTO).convert("RGB")
    faces = single.detect(image)
    points = single.landmarks(image, [f.box for f in faces])
    assert points.shape == (len(faces), len(POINT_NAMES), 2) and points.dtype == np.float32
    np.testing.assert_allclose(points, np.stack([f.keypoints for f in faces]), atol=1e-4)
    assert single.landmarks(image, np.zeros((0, 4))).shape == (0, len(POINT_NAMES), 2)


def test_the_cli_writes_what_the_api_returns(real_root, landmarker, tmp_path, capsys):
    assert cli(["predict", str(real_root / PHOTO), "--out", str(tmp_path), "--threads", "2"]) == 0
    record = json.loads((tmp_path / "000010.json").read_text())
    assert record["faces"] == [f.as_json() for f in landmarker.detect(real_root / PHOTO)]
    assert set(record["faces"][0]["keypoints"]) == set(POINT_NAMES)


def test_a_bad_thread_count_is_refused_in_one_line(capsys):
    with pytest.raises(ValueError, match="threads"):
        FaceLandmarker(threads=0)
    with pytest.raises(SystemExit):
        cli(["predict", "x.jpg", "--threads", "-1"])
    assert "must be at least 1" in capsys.readouterr().err


def test_a_photo_smaller_than_the_smallest_face_has_no_faces(landmarker):
    assert landmarker.detect(np.full((30, 50, 3), 128, np.uint8)) == []


def test_auto_picks_yunet_where_its_wheel_is_installed_and_both_find_the_faces(real_root):
    from facial_keypoints.runtime.face_detectors import create_face_detector, default_face_detector
    from facial_keypoints.geometry import match_boxes
    from facial_keypoints.data.labels import read_labels
    assert default_face_detector() == "yunet"  # requirements.txt installs yuface
    labelled = np.array([f.box for f in read_labels(real_root / "I") if f.image == PHOTO.split("/")[1]])
    rgb = np.asarray(Image.open(real_root / PHOTO).convert("RGB"))
    for name in ("yunet", "mtcnn"):
        detector = create_face_detector(name)
        assert detector.name == name
        assert len(match_boxes(detector(rgb).boxes, labelled)) == len(labelled) == 2  # mapped to the labels' boxes
    assert create_face_detector("yunet", min_face=40)(rgb[:30, :50]).boxes.shape == (0, 4)  # nothing that small


@pytest.mark.parametrize("boxes, needle", [([[10, 10, 60, 60, 0.9]], "shape"), ([10, 10, 60], "shape"),
                                           ([[10, 10, float("nan"), 60]], "finite")])
def test_landmarks_refuses_boxes_of_another_shape_or_not_finite(landmarker, boxes, needle):
    with pytest.raises(ValueError, match=needle):
        landmarker.landmarks(np.zeros((80, 80, 3), np.uint8), boxes)
    assert landmarker.landmarks(np.zeros((80, 80, 3), np.uint8), []).shape == (0, 21, 2)


def test_a_device_that_is_not_there_is_refused_in_one_line():
    import onnxruntime
    with pytest.raises(ValueError, match="unknown device"):
        FaceLandmarker(device="tpu")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():  # CPU machines, CI among them
        with pytest.raises(ValueError, match="onnxruntime-gpu"):
            FaceLandmarker(device="cuda")
