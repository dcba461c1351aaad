"""What each face carries beyond its points, at the public API: per-point confidence and quality, and
aligned crops on the ArcFace template."""
import numpy as np
import pytest
from PIL import Image

import facial_keypoints
from facial_keypoints.alignment import TEMPLATE_112, TEMPLATE_POINTS, alignment_matrix
from facial_keypoints.api import FaceLandmarker
from facial_keypoints.geometry import box_from_keypoints, iou
from facial_keypoints.runtime.confidence import edge_factor


@pytest.fixture(scope="module")
def landmarker():
    return FaceLandmarker(threads=2)


@pytest.fixture(scope="module")
def labelled(real_root):
    """(photo path, its labelled faces) for the first 12 photos of folder II with faces."""
    from facial_keypoints.data.labels import read_labels
    by_photo = {}
    for face in read_labels(real_root / "II"):
        by_photo.setdefault(face.image, []).append(face)
    return [(real_root / "II" / name, faces) for name, faces in sorted(by_photo.items())[:12]]


def similar(points, angle=0.3, scale=2.5, shift=(40.0, -7.0)):
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ (scale * rotation).T + shift


def test_align_undoes_any_similarity_exactly_and_keeps_the_kind_of_image():
    face = {"keypoints": np.zeros((21, 2))}
    face["keypoints"][list(TEMPLATE_POINTS)] = similar(TEMPLATE_112)
    matrix = alignment_matrix(face)
    five = face["keypoints"][list(TEMPLATE_POINTS)]
    assert np.allclose(five @ matrix[:, :2].T + matrix[:, 2], TEMPLATE_112, atol=1e-6)
    assert np.allclose(alignment_matrix(five, size=224)[:, 2], 2 * matrix[:, 2])  # other sizes scale the template
    frame = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    crop = facial_keypoints.align(frame, face)
    assert isinstance(crop, np.ndarray) and crop.shape == (112, 112, 3)
    pil = facial_keypoints.align(Image.fromarray(frame), face, size=150)
    assert isinstance(pil, Image.Image) and pil.size == (150, 150)
    assert len(facial_keypoints.align(frame, [face, face])) == 2
    with pytest.raises(ValueError, match="finite"):
        facial_keypoints.align(frame, {"keypoints": np.full((21, 2), np.nan)})


def test_aligned_crops_put_real_faces_on_the_template(landmarker, labelled):
    residuals = []
    for path, _ in labelled:
        image = Image.open(path).convert("RGB")
        for face in landmarker.detect(image):
            matrix = alignment_matrix(face)
            five = face.keypoints[list(TEMPLATE_POINTS)].astype(np.float64)
            residuals += list(np.linalg.norm(five @ matrix[:, :2].T + matrix[:, 2] - TEMPLATE_112, axis=1))
            assert facial_keypoints.align(image, face).size == (112, 112)
    assert len(residuals) >= 50 and np.median(residuals) <= 3.0


def test_each_point_has_a_confidence_and_the_face_a_quality(landmarker, labelled):
    face = landmarker.detect(Image.open(labelled[0][0]))[0]
    assert face.point_confidence.shape == (21,) and face.point_confidence.dtype == np.float32
    assert ((face.point_confidence >= 0) & (face.point_confidence <= 1)).all()
    assert face.quality == pytest.approx(float(face.point_confidence.mean()))
    record = face.as_json()
    assert list(record["point_confidence"]) == list(facial_keypoints.POINT_NAMES)
    assert record["quality"] == pytest.approx(face.quality, abs=1e-3)


def test_points_cut_off_by_the_photos_edge_score_low(landmarker, labelled):
    """Each photo cut through the middle of its first face: the points that fall outside score low."""
    outside, inside = [], []
    for path, faces in labelled:
        image = Image.open(path).convert("RGB")
        truth = faces[0].keypoints
        x1, _, x2, _ = box_from_keypoints(truth)
        cut = image.crop((int((x1 + x2) / 2), 0, image.width, image.height))
        shifted = truth - [int((x1 + x2) / 2), 0]
        found = landmarker.detect(cut)
        if not found:
            continue
        overlaps = iou(box_from_keypoints(shifted), np.array([box_from_keypoints(f.keypoints) for f in found]))
        if overlaps.max() < 0.3:
            continue
        confidence = found[int(np.argmax(overlaps))].point_confidence
        outside += list(confidence[shifted[:, 0] < 0])
        inside += list(confidence[shifted[:, 0] >= 0])
    assert len(outside) >= 20
    assert np.median(outside) < 0.2 and np.median(inside) > np.median(outside)


def test_the_edge_factor_is_zero_outside_the_photo_and_one_well_inside():
    points = np.stack(np.meshgrid(np.linspace(100, 200, 7), np.linspace(100, 200, 3)), -1).reshape(1, 21, 2)
    assert np.allclose(edge_factor(points, 400, 400), 1.0)
    moved = points - [150, 0]  # the left half is now outside
    factor = edge_factor(moved, 400, 400)
    assert (factor[moved[..., 0] <= 0] == 0).all() and factor.max() == 1.0
    assert (edge_factor(np.full((1, 21, 2), np.nan), 400, 400) == 0).all()


def test_predict_aligned_writes_each_faces_crop_and_refuses_an_input_folder(real_root, tmp_path, capsys):
    import json

    from facial_keypoints.cli import main as cli
    photos = tmp_path / "photos"
    photos.mkdir()
    for source in sorted((real_root / "II").glob("*.jpg"))[:2]:
        (photos / source.name).write_bytes(source.read_bytes())
    out, aligned = tmp_path / "out", tmp_path / "aligned"
    assert cli(["predict", str(photos), "--out", str(out), "--aligned", str(aligned), "--no-progress"]) == 0
    expected = sorted(f"{p.stem}_{k}.jpg" for p in out.glob("*.json")
                      for k in range(len(json.loads(p.read_text())["faces"])))
    assert expected and sorted(p.name for p in aligned.iterdir()) == expected
    assert all(Image.open(p).size == (112, 112) for p in aligned.iterdir())
    capsys.readouterr()
    assert cli(["predict", str(photos), "--out", str(out), "--aligned", str(photos / "crops")]) != 0
    assert "--aligned" in capsys.readouterr().err and not (photos / "crops").exists()


def test_align_refuses_coinciding_points_and_takes_a_list_of_points():
    frame = np.zeros((200, 200, 3), np.uint8)
    with pytest.raises(ValueError, match="coincide"):
        facial_keypoints.align(frame, np.full((5, 2), 100.0))
    crop = facial_keypoints.align(frame, similar(TEMPLATE_112).tolist())  # one face's points, as a list
    assert isinstance(crop, np.ndarray) and crop.shape == (112, 112, 3)
    with pytest.raises(ValueError, match="uint8"):
        facial_keypoints.align(np.zeros((0, 0, 3), np.uint8), similar(TEMPLATE_112))


def test_aligned_crops_never_replace_a_file_of_the_users(real_root, tmp_path, capsys):
    from facial_keypoints.cli import main as cli
    photo = tmp_path / "in" / "face.jpg"
    photo.parent.mkdir()
    photo.write_bytes(sorted((real_root / "II").glob("*.jpg"))[0].read_bytes())
    crops = tmp_path / "crops"
    crops.mkdir()
    (crops / "face_0.jpg").write_text("mine")
    out = tmp_path / "out"
    assert cli(["predict", str(photo), "--out", str(out), "--aligned", str(crops), "--no-progress"]) == 0
    assert (crops / "face_0.jpg").read_text() == "mine" and Image.open(crops / "face_0_.jpg").size == (112, 112)
    assert cli(["predict", str(photo), "--out", str(out), "--aligned", str(crops), "--no-progress"]) == 0
    assert sorted(p.name for p in crops.iterdir()) == ["face_0.jpg", "face_0_.jpg"]  # a rerun replaces its own
    for folder in (out, photo.parent):  # --out itself, the folder of an input photo
        capsys.readouterr()
        assert cli(["predict", str(photo), "--out", str(out), "--aligned", str(folder)]) != 0
        assert "--aligned" in capsys.readouterr().err
