"""Stage 3: non-face sampling, face/non-face lists, the two-headed model's loss and test report."""
import json

import numpy as np
import pytest
import torch

from facial_keypoints.geometry import covered, iou
from facial_keypoints.data.labels import ParseStats, read_labels
from facial_keypoints.data.list_files import read_list
from facial_keypoints.evaluation.metrics import classification_metrics
from facial_keypoints.training.loss import TrainingLoss, total
from facial_keypoints.training.losses import KeypointLoss
from facial_keypoints.data.negatives import sample_non_faces

from conftest import load_script


def test_non_faces_stay_clear_of_every_face_and_are_seeded(synthetic_root):
    root, _ = synthetic_root
    faces = [(f.image, f.box) for f in read_labels(root)]
    stats = ParseStats()
    records = sample_non_faces(faces, root, per_photo=3, ratio=0.25, seed=7, stats=stats)
    assert len(records) == stats["non_faces"] > 0
    boxes = {}
    for image, box in faces:
        boxes.setdefault(image, []).append(box)
    for record in records:
        assert record.label == 0 and not record.is_face
        assert iou(record.face_box, np.stack(boxes[record.image])).max() < 0.3
        assert covered(record.face_box, np.stack(boxes[record.image])).max() <= 0.5
        assert record.box[0] >= 0 and record.box[1] >= 0
    again = sample_non_faces(faces, root, per_photo=3, ratio=0.25, seed=7)
    assert [r.box.tolist() for r in again] == [r.box.tolist() for r in records]


def test_loss_masks_keypoints_of_non_faces():
    loss = TrainingLoss("mse", kp_weight=1.0, cls_weight=2.0, class_weights=(1.0, 1.0))
    keypoints, target = torch.zeros(2, 42), torch.ones(2, 42)
    target[1] = 1000.0  # a non-face's keypoint "target" must not count
    logits = torch.tensor([[0.0, 3.0], [3.0, 0.0]])
    is_face = torch.tensor([1.0, 0.0])
    terms = loss(keypoints, logits, {"keypoints": target, "face": is_face, "image": torch.zeros(2, 1, 112, 112)})
    ce = torch.nn.functional.cross_entropy(logits, is_face.long())
    assert terms["face"].item() == pytest.approx(2.0 * ce.item())
    assert terms["keypoints"].item() == pytest.approx(KeypointLoss("mse")(keypoints[:1], target[:1]).item())
    assert total(terms).item() == pytest.approx(2.0 * ce.item() + 1.0)


def test_loss_leaves_faces_without_trusted_keypoints_out_of_the_keypoint_term_only():
    loss = TrainingLoss("mse", kp_weight=1.0, cls_weight=2.0)
    keypoints, target = torch.zeros(3, 42), torch.ones(3, 42)
    target[1] = 50.0  # a detector-framed face: its labelled points do not fit the crop's framing
    logits = torch.tensor([[0.0, 3.0], [0.0, 1.0], [3.0, 0.0]])
    is_face = torch.tensor([1.0, 1.0, 0.0])
    labelled = torch.tensor([1.0, 0.0, 1.0])
    batch = {"keypoints": target, "face": is_face, "keypoint_labelled": labelled, "image": torch.zeros(3, 1, 112, 112)}
    ce = torch.nn.functional.cross_entropy(logits, is_face.long())  # every crop, the unlabelled face too
    expected = 2.0 * ce + KeypointLoss("mse")(keypoints[:1], target[:1])
    assert total(loss(keypoints, logits, batch)).item() == pytest.approx(expected.item())
    del batch["keypoint_labelled"]
    assert total(loss(keypoints, logits, batch)).item() > expected.item() + 100  # without the flag it counts


def test_classification_metrics_count_over_the_whole_set():
    m = classification_metrics([1, 1, 1, 0, 0], [0.9, 0.2, 0.6, 0.1, 0.7])
    assert m == {"samples": 5, "accuracy": pytest.approx(60.0), "face_recall": pytest.approx(200 / 3),
                 "non_face_recall": pytest.approx(50.0)}


def test_stage3_lists_train_and_test(synthetic_root, tmp_path, capsys):
    """gen_train_test.py's face/non-face lists; stage3/detector.py trains on them; `facial-keypoints evaluate
    --list` tests its checkpoint (torch and, once exported, ONNX Runtime) with the classifier's figures."""
    from facial_keypoints.cli import main as command
    root, faces = synthetic_root
    lists = tmp_path / "lists"
    gen = load_script("stage3", "gen_train_test")
    assert gen.main(["--data-root", str(root), "--out-dir", str(lists), "--test-fraction", "0.3"]) == 0
    train, test = read_list(lists / "train.txt"), read_list(lists / "test.txt")
    assert {r.label for r in train} == {0, 1} and all((r.label == 1) == r.is_face for r in train + test)
    assert not {r.image for r in train} & {r.image for r in test}
    assert {r.label for r in test} == {0, 1}  # so the classifier's figures are reported

    stage3 = load_script("stage3", "detector")
    assert stage3.stage1.main(stage3.build_parser(), stage3.PHASES, [
        "--phase", "train", "--data-root", str(root), "--lists", str(lists), "--save-directory", str(tmp_path / "m"),
        "--arch", "stage1_bn", "--epochs", "1", "--batch-size", "4", "--log-interval", "0"]) == 0
    checkpoint = tmp_path / "m" / "best.pt"
    evaluate = ["evaluate", "--checkpoint", str(checkpoint), "--list", str(lists / "test.txt"), "--data", str(root),
                "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    capsys.readouterr()
    assert command([*evaluate, "--backend", "torch", "--out", str(tmp_path / "eval_torch")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["backend"] == "torch"
    assert report["faces"] == sum(r.is_face for r in test)
    assert report["classifier"]["samples"] == len(test)
    assert {"accuracy", "face_recall", "non_face_recall", "threshold"} <= set(report["classifier"])
    # --backend onnx: the same test through ONNX Runtime (as predict can run it) gives the same report,
    # once `export` has made the ONNX file (loading never exports).
    assert command([*evaluate, "--backend", "onnx", "--out", str(tmp_path / "eval_onnx")]) == 2
    assert "facial-keypoints export" in capsys.readouterr().err
    assert command(["export", "--checkpoint", str(checkpoint)]) == 0
    assert (tmp_path / "m" / "best.onnx").is_file()  # beside the checkpoint
    capsys.readouterr()
    assert command([*evaluate, "--backend", "onnx", "--out", str(tmp_path / "eval_onnx")]) == 0
    onnx_report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert onnx_report["backend"] == "onnx"
    assert onnx_report["nme_io"] == pytest.approx(report["nme_io"], abs=1e-3)
    assert onnx_report["classifier"]["samples"] == len(test)
    assert onnx_report["classifier"]["face_recall"] == pytest.approx(report["classifier"]["face_recall"], abs=1e-6)
    assert onnx_report["classifier"]["non_face_recall"] == pytest.approx(report["classifier"]["non_face_recall"],
                                                                         abs=1e-6)
    # Without --list, evaluate takes the two-headed checkpoint on every labelled face of the label files.
    assert command(["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "--backend", "torch",
                    "--out", str(tmp_path / "eval"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    whole = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert whole["faces"] == len(faces) and "classifier" not in whole  # faces only: no classifier figures


def test_a_face_box_of_one_flat_grey_value_is_no_face_line_but_still_keeps_non_faces_away(tmp_path, capsys):
    """A label inside a privacy blackout (I/000421.jpg) is left out of the face lines, named by its
    label line; the non-faces are cut exactly as before, clear of it too."""
    from PIL import Image

    from conftest import keypoints_in_box, label_line
    rng = np.random.default_rng(3)
    root = tmp_path / "data"
    (root / "I").mkdir(parents=True)
    lines = []
    for n in range(4):
        pixels = rng.integers(0, 256, (240, 320), dtype=np.uint8)  # texture everywhere: a face to see
        boxes = [(20.0, 40.0, 100.0, 120.0)]
        if n == 1:
            pixels[20:120, 140:240] = 0  # blacked out, box and all
            boxes.append((150.0, 30.0, 230.0, 110.0))
        Image.fromarray(pixels).save(root / "I" / f"p{n}.png")
        lines += [label_line(f"p{n}.png", box, keypoints_in_box(box, rng)) for box in boxes]
    (root / "I" / "label.txt").write_text("\n".join(lines) + "\n")
    gen = load_script("stage3", "gen_train_test")
    runs = {}
    for name, flags in (("left_out", []), ("kept", ["--keep-blank-faces"])):
        assert gen.main(["--data-root", str(root), "--out-dir", str(tmp_path / name), "--test-fraction", "0.25",
                         *flags]) == 0
        runs[name] = read_list(tmp_path / name / "train.txt") + read_list(tmp_path / name / "test.txt")
    out = capsys.readouterr().out
    assert "label.txt:3" in out and "one flat grey value" in out  # the blank face's line, named
    faces = {name: sorted((r.image, tuple(r.box)) for r in records if r.is_face) for name, records in runs.items()}
    assert len(faces["kept"]) == 5 and len(faces["left_out"]) == 4
    assert [f for f in faces["kept"] if f not in faces["left_out"]][0][0] == "I/p1.png"
    non_faces = {name: sorted((r.image, tuple(r.box)) for r in records if not r.is_face)
                 for name, records in runs.items()}
    assert non_faces["left_out"] == non_faces["kept"] and len(non_faces["kept"]) == 5
    summary = json.loads((tmp_path / "left_out" / "lists.json").read_text())
    assert summary["counts"]["blank_faces_left_out"] == 1


def test_a_photo_whose_pixels_cannot_be_decoded_is_named_or_skipped_with_all_its_lines(tmp_path, capsys):
    """The header reads (so the box checks pass) but the pixels do not: the blank-face check decodes
    every photo, so it names the label line, or with --skip-bad drops that photo's faces and non-faces."""
    import io

    from PIL import Image

    from conftest import keypoints_in_box, label_line
    rng = np.random.default_rng(4)
    root = tmp_path / "data"
    (root / "I").mkdir(parents=True)
    lines, box = [], (20.0, 40.0, 100.0, 120.0)
    for n in range(4):
        pixels = rng.integers(0, 256, (240, 320), dtype=np.uint8)
        if n == 2:  # a JPEG cut off after its first kilobytes
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
            (root / "I" / f"p{n}.jpg").write_bytes(buffer.getvalue()[:2000])
        else:
            Image.fromarray(pixels).save(root / "I" / f"p{n}.jpg", quality=95)
        lines.append(label_line(f"p{n}.jpg", box, keypoints_in_box(box, rng)))
    (root / "I" / "label.txt").write_text("\n".join(lines) + "\n")
    gen = load_script("stage3", "gen_train_test")
    out = ["--out-dir", str(tmp_path / "lists"), "--test-fraction", "0.25"]
    assert gen.main(["--data-root", str(root), *out]) == 2
    assert "label.txt:3" in capsys.readouterr().err
    assert gen.main(["--data-root", str(root), *out, "--skip-bad"]) == 0
    records = read_list(tmp_path / "lists" / "train.txt") + read_list(tmp_path / "lists" / "test.txt")
    assert {r.image for r in records} == {"I/p0.jpg", "I/p1.jpg", "I/p3.jpg"}  # no line of p2, face or not
    summary = json.loads((tmp_path / "lists" / "lists.json").read_text())
    assert summary["counts"]["skipped_image_or_box"] == 1


def test_face_detector_crops_crop_faces_from_the_detectors_boxes(synthetic_root):
    from collections import defaultdict
    from facial_keypoints.runtime.face_detectors import Detections
    module = load_script("stage3", "face_detector_crops")
    root, faces = synthetic_root
    labels = defaultdict(list)
    for face in read_labels(root):
        labels[face.image].append(face)
    image, box, points = faces[0]
    shifted = box + np.array([4, 4, 4, 4])  # IoU with the labelled box well above 0.5
    far = np.array([0, 0, 15, 15], float)   # off every face

    def detector(rgb):
        return Detections(np.stack([shifted, far]), np.array([0.99, 0.6]))

    records = [r for r in read_list_records(root) if r.image == image]
    found, non_faces = module.face_detector_crops(records, labels, root, detector, ratio=0.25, max_iou=0.3,
                                                progress=False)
    assert len(found) == 1 and len(non_faces) == 1
    face = found[0]
    assert face.label == 1 and non_faces[0].label == 0 and non_faces[0].keypoints is None
    np.testing.assert_allclose(face.absolute_keypoints(), points, atol=1e-3)  # labelled points (3 decimals), new crop
    side = shifted[2] - shifted[0]
    assert face.box[0] == np.floor(shifted[0] - 0.25 * side)


def test_faces_beyond_keeps_only_the_faces_the_other_list_lacks():
    """--faces-beyond: a face is 'held' when a face line of the same photo has its points (any crop box)."""
    from facial_keypoints.data.list_files import ListRecord
    module = load_script("stage3", "face_detector_crops")
    points = np.random.default_rng(0).uniform(20, 80, (3, 21, 2))

    def line(photo, face, box_at):  # the same labelled points, relative to a crop box at box_at
        box = np.array([box_at, box_at, box_at + 100, box_at + 100], float)
        return ListRecord(photo, box, points[face] - box[:2], 1)
    held = [line("a.jpg", 0, 5.0), line("b.jpg", 1, 0.0), ListRecord("a.jpg", np.zeros(4), None, 0)]
    found = [line("a.jpg", 0, 9.0),   # held, from another box: dropped
             line("a.jpg", 1, 0.0),   # b.jpg's points in another photo: new
             line("b.jpg", 2, 3.0)]   # new
    kept = module.faces_beyond(found, held)
    assert kept == [found[1], found[2]]
    moved = line("b.jpg", 1, 0.0)
    moved.keypoints = moved.keypoints + 2.0  # 2 px off every point: another face, not the held one
    assert module.faces_beyond([moved], held) == [moved]


def test_extra_list_adds_crops_of_training_photos_without_their_keypoints(synthetic_root, tmp_path):
    from facial_keypoints.data.list_files import write_list
    from facial_keypoints.data.lists import split_by_photo
    from facial_keypoints.training.command import new_model_config
    from facial_keypoints.training.flags import build_parser
    from facial_keypoints.training.data import training_sets
    from facial_keypoints.data.transforms import eval_transform
    root, _ = synthetic_root
    gen = load_script("stage3", "gen_train_test")
    assert gen.main(["--data-root", str(root), "--out-dir", str(tmp_path / "lists"), "--test-fraction", "0.3"]) == 0
    train_list = tmp_path / "lists" / "train.txt"
    records = read_list(train_list)
    train, val = split_by_photo(records, 0.3, 1)
    extra = [r for r in records if r.is_face]  # stand-ins for detector-framed faces, of both splits
    write_list(tmp_path / "extra.txt", extra)
    args = build_parser().parse_args(["--train-list", str(train_list), "--save-directory", str(tmp_path / "run"),
                                      "--extra-list", str(tmp_path / "extra.txt")])
    config = new_model_config(args)
    train_set, val_set = training_sets(train_list, root, config, val_fraction=0.3, split_seed=1,
                                       train_transform=eval_transform(config["normalize"]),
                                       cache_dir=tmp_path / "cache", extra_list=args.extra_list, progress=False)
    kept = [r for r in extra if r.image in {t.image for t in train}]
    assert 0 < len(kept) < len(extra)  # the validation photos' lines are dropped
    assert len(train_set) == len(train) + len(kept) and len(val_set) == len(val)
    flags = [train_set[n]["keypoint_labelled"] for n in range(len(train_set))]
    assert flags == [1.0] * len(train) + [0.0] * len(kept)
    assert all(val_set[n]["keypoint_labelled"] == 1.0 for n in range(len(val_set)))


def read_list_records(root):
    from facial_keypoints.data.lists import records_from_labels
    return records_from_labels(root, 0.25)


def test_the_validation_pool_draws_non_faces_like_the_lists_and_jitters_faces_inside_their_photos(synthetic_root):
    from collections import defaultdict

    from facial_keypoints.data.lists import records_from_labels
    from facial_keypoints.data.images import image_size
    from facial_keypoints.data.labels import read_labels
    from facial_keypoints.evaluation.validation_pool import classifier_pool
    root, faces = synthetic_root
    val = [r for r in records_from_labels(root, 0.25) if r.image.startswith("II/")]  # stand-in validation photos
    for record in val:
        record.label = 1
    labels_by_photo = defaultdict(list)
    for face in read_labels(root):
        labels_by_photo[face.image].append(face)
    pool = classifier_pool(val, labels_by_photo, root, 0.25, non_faces_per_face=3, jitters=4)
    again = classifier_pool(val, labels_by_photo, root, 0.25, non_faces_per_face=3, jitters=4)
    assert [r.box.tolist() for r in pool] == [r.box.tolist() for r in again]  # seeded
    non_faces, jittered = [r for r in pool if not r.is_face], [r for r in pool if r.is_face]
    assert {r.image for r in pool} == {r.image for r in val}  # the validation photos only
    assert len(non_faces) == 3 * len(val) and len(jittered) == 4 * len(val)
    for record in non_faces:
        assert iou(record.face_box, np.stack([f.box for f in labels_by_photo[record.image]])).max() < 0.3
    by_source = {r.source: r for r in val}
    for record in jittered:
        original = by_source[record.source.removeprefix("jittered ")]
        width, height = image_size(root / record.image)
        assert 0 <= record.box[0] and 0 <= record.box[1] and record.box[2] <= width and record.box[3] <= height
        np.testing.assert_allclose(record.absolute_keypoints(), original.absolute_keypoints())  # the points follow
        side = max(original.box[2] - original.box[0], original.box[3] - original.box[1])
        assert 0 < np.abs(record.box - original.box).max() <= 0.16 * side  # moved a little, not far
    hard = classifier_pool(val, labels_by_photo, root, 0.25, non_faces_per_face=3, jitters=4, shift=0.15, scale=0.25)
    assert [r.box.tolist() for r in hard if not r.is_face] == [r.box.tolist() for r in non_faces]  # shared
    assert len([r for r in hard if r.is_face]) == 4 * len(val)
