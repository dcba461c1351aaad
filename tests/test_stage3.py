"""Stage 3: non-face sampling, face/non-face lists, the two-headed model's loss and test report."""
import json

import numpy as np
import pytest
import torch

from facial_keypoints.geometry import covered, iou
from facial_keypoints.data.labels import ParseStats, read_labels
from facial_keypoints.data.list_files import read_list
from facial_keypoints.evaluation.metrics import classification_metrics
from facial_keypoints.training.loss import TrainingLoss, labels_total, total
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


def test_detector_examples_crop_faces_from_the_detectors_boxes(synthetic_root):
    from collections import defaultdict
    from facial_keypoints.runtime.face_detectors import Detections
    module = load_script("stage3", "detector_examples")
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
    found, non_faces = module.detector_examples(records, labels, root, detector, ratio=0.25, max_iou=0.3,
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
    module = load_script("stage3", "detector_examples")
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
    from facial_keypoints.training.command import build_parser, new_model_config
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


def test_change_backbone_keeps_the_shared_weights_and_loads_strictly(tmp_path):
    from facial_keypoints.models.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
    from facial_keypoints.models.networks import create_model
    change = load_script("recipes", "change_backbone")
    torch.manual_seed(0)
    source = create_model("face_keypoints", input_size=112, backbone="compact_heatmap")
    config = {"arch": "face_keypoints", "model_kwargs": {"backbone": "compact_heatmap"}, "input_size": 112,
              "expand_ratio": 0.25, "normalize": True, "face_threshold": 0.4,
              "referee": {"checkpoint": "referee.pt", "band": [0.01, 0.99]}}  # as older checkpoints named one
    save_checkpoint(make_checkpoint(source, config), tmp_path / "big.pt")
    assert change.main([str(tmp_path / "big.pt"), str(tmp_path / "lean.pt"), "--backbone", "test_lean_heatmap"]) == 0
    payload = load_checkpoint(tmp_path / "lean.pt")
    lean = model_from_checkpoint(payload, tmp_path / "lean.pt")  # strict: every weight present
    assert payload["config"]["model_kwargs"]["backbone"] == "test_lean_heatmap"
    assert payload["config"]["face_threshold"] == 0.4  # the rest of the config travels
    assert "referee" not in payload["config"]  # a pairing that no longer exists is dropped
    kept = source.state_dict()
    for name, value in lean.state_dict().items():
        assert torch.equal(value, kept[name]), name  # nothing shared starts fresh
    assert not any(k.startswith("body.trunk.layer1.1.") for k in lean.state_dict())
    assert any(k.startswith("body.trunk.layer1.1.") for k in kept)
    with pytest.raises(SystemExit, match="unknown backbone"):
        change.main([str(tmp_path / "big.pt"), str(tmp_path / "x.pt"), "--backbone", "no_such_model"])


def randomized_batch_norms(model):
    """Gives every batch norm of ``model`` random trained-looking statistics; returns (name, module) of each."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for _, module in found:
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.2, 0.2)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return found


def narrowed_copy(wide, backbone: str, tmp_path):
    """``wide`` (a compact_heatmap face_keypoints model) saved, moved by change_backbone.py --narrow onto
    ``backbone``, and loaded back strictly, in eval mode."""
    from facial_keypoints.models.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
    config = {"arch": "face_keypoints", "model_kwargs": {"backbone": "compact_heatmap"}, "input_size": 112,
              "expand_ratio": 0.25, "normalize": True}
    save_checkpoint(make_checkpoint(wide, config), tmp_path / "wide.pt")
    out = tmp_path / f"{backbone}.pt"
    assert load_script("recipes", "change_backbone").main(
        [str(tmp_path / "wide.pt"), str(out), "--backbone", backbone, "--narrow"]) == 0
    return model_from_checkpoint(load_checkpoint(out), out).eval()


def test_change_backbone_narrow_keeps_the_strongest_channels_as_a_pruned_copy(tmp_path):
    """A wide model whose dropped 28x28 channels are dead (zero batch-norm scale and shift) computes
    exactly what its --narrow copy on slim_heatmap computes: the same channel subset was kept in every
    layer, and it is the subset with the largest batch-norm scales."""
    from facial_keypoints.models.checkpoint import load_checkpoint, model_from_checkpoint
    from facial_keypoints.models.networks import create_model
    change = load_script("recipes", "change_backbone")
    torch.manual_seed(0)
    wide = create_model("face_keypoints", input_size=112, backbone="compact_heatmap").eval()
    narrow_shapes = create_model("face_keypoints", input_size=112, backbone="test_slim_heatmap").state_dict()
    keep = torch.sort(torch.randperm(32)[:16]).values
    drop = torch.tensor([c for c in range(32) if c not in keep])
    batch_norms = randomized_batch_norms(wide)
    with torch.no_grad():
        for name, module in batch_norms:
            if narrow_shapes[f"{name}.weight"].shape != module.weight.shape:  # a layer slim narrows
                module.weight[drop] = 0
                module.bias[drop] = 0
        wide.body.lateral1.weight[drop] = 0  # its bias would revive the dead channels
        wide.body.lateral1.bias[drop] = 0
    slim = narrowed_copy(wide, "test_slim_heatmap", tmp_path)
    stem_bn = "body.trunk.stem.1.1.weight"
    assert torch.equal(slim.state_dict()[stem_bn], wide.state_dict()[stem_bn][keep])
    images = torch.rand(3, 1, 112, 112)
    with torch.no_grad():
        (wide_points, wide_logits), (slim_points, slim_logits) = wide(images), slim(images)
    assert torch.allclose(slim_points, wide_points, atol=1e-4) and torch.allclose(slim_logits, wide_logits, atol=1e-5)
    # without --narrow the narrower layers start fresh, and the output differs
    assert change.main([str(tmp_path / "wide.pt"), str(tmp_path / "fresh.pt"), "--backbone", "test_slim_heatmap"]) == 0
    fresh = model_from_checkpoint(load_checkpoint(tmp_path / "fresh.pt"), tmp_path / "fresh.pt").eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(images)[0], wide_points, atol=1e-2)


def test_change_backbone_narrow_thins_each_block_by_its_own_strongest_channels(tmp_path):
    """A wide model whose residual blocks each have their own dead inner channels (zero batch-norm
    scale and shift: ReLU(0) feeds the second convolution nothing) computes exactly what its --narrow
    copy on thin_heatmap computes, although no two blocks share the subset they keep."""
    from facial_keypoints.models.networks import create_model
    torch.manual_seed(1)
    wide = create_model("face_keypoints", input_size=112, backbone="compact_heatmap").eval()
    thin_shapes = create_model("face_keypoints", input_size=112, backbone="test_thin_heatmap").state_dict()
    kept = {}
    batch_norms = randomized_batch_norms(wide)
    with torch.no_grad():
        for name, module in batch_norms:
            narrow = thin_shapes[f"{name}.weight"].shape[0]
            if narrow != module.weight.shape[0]:  # a block's inside that thin_heatmap halves
                keep = torch.sort(torch.randperm(module.weight.shape[0])[:narrow]).values
                dead = torch.ones(module.weight.shape[0], dtype=torch.bool)
                dead[keep] = False
                module.weight[dead], module.bias[dead] = 0, 0
                kept[name] = keep
    assert len(kept) == 4 and len({tuple(k.tolist()) for k in kept.values() if len(k) == 16}) == 2
    thin = narrowed_copy(wide, "test_thin_heatmap", tmp_path)
    for name, keep in kept.items():
        assert torch.equal(thin.state_dict()[f"{name}.bias"], wide.state_dict()[f"{name}.bias"][keep])
    images = torch.rand(3, 1, 112, 112)
    with torch.no_grad():
        (wide_points, wide_logits), (thin_points, thin_logits) = wide(images), thin(images)
    assert torch.allclose(thin_points, wide_points, atol=1e-4) and torch.allclose(thin_logits, wide_logits, atol=1e-5)


def teacher_term_only(backbone: str, seed: int, **weights):
    """(teacher, images, is_face, TeacherLoss with only the ``weights`` terms), after checking that
    the loss refuses to run before it has been shown a student."""
    from facial_keypoints.training.losses import TeacherLoss
    from facial_keypoints.models.networks import create_model
    torch.manual_seed(seed)
    teacher = create_model("face_keypoints", input_size=32, backbone=backbone).eval()
    images, is_face = torch.randn(4, 1, 32, 32), torch.tensor([1.0, 0.0, 0.0, 1.0])
    loss = TeacherLoss(teacher, "wing", weight=0.0, **weights)
    with pytest.raises(RuntimeError, match="watch"):
        loss(*teacher(images), images, is_face)
    return teacher, images, is_face, loss


def test_feature_distillation_matches_the_trunk_maps_and_trains_only_the_trunk():
    from facial_keypoints.models.networks import create_model
    teacher, images, is_face, loss = teacher_term_only("compact_heatmap", 6, feature_weight=1.0)
    twin = create_model("face_keypoints", input_size=32, backbone="compact_heatmap").eval()
    twin.load_state_dict(teacher.state_dict())
    loss.watch(twin)
    assert total(loss(*twin(images), images, is_face)).item() == 0.0  # the teacher's own maps: nothing to learn
    student = create_model("face_keypoints", input_size=32, backbone="test_thin_heatmap")
    loss.watch(student)
    terms = loss(*student(images), images, is_face)
    assert set(terms) == {"teacher", "feature"} and terms["teacher"].item() == 0.0
    value = total(terms)  # weight 0: only the feature term is left
    with torch.no_grad():
        levels = zip(student.body.trunk(images), teacher.body.trunk(images))
        expected = np.mean([float(((s - t) ** 2).mean() / (t ** 2).mean()) for s, t in levels])
    assert value.item() == pytest.approx(expected, rel=1e-5) and value.item() > 0
    value.backward()
    assert student.body.trunk.layer1[0].body[0][0].weight.grad.abs().sum() > 0  # into the trunk
    head_grad = student.body.heatmaps.weight.grad  # not through the heads the trunk feeds
    assert head_grad is None or float(head_grad.abs().sum()) == 0.0
    slim = create_model("face_keypoints", input_size=32, backbone="test_slim_heatmap")
    loss.watch(slim)
    with pytest.raises(ValueError, match="map shapes"):
        loss(*slim(images), images, is_face)


def test_teacher_loss_is_zero_for_the_teacher_itself_and_trains_only_the_student(tmp_path):
    from facial_keypoints.models.checkpoint import make_checkpoint, save_checkpoint
    from facial_keypoints.training.losses import TeacherLoss
    from facial_keypoints.models.networks import create_model
    torch.manual_seed(0)
    teacher = create_model("face_keypoints", input_size=32, backbone="test_small_heatmap").eval()
    images = torch.randn(4, 1, 32, 32)
    is_face = torch.tensor([1.0, 1.0, 0.0, 1.0])
    loss = TeacherLoss(teacher, "wing", weight=2.0)
    with torch.no_grad():
        same = loss(*teacher(images), images, is_face)
    assert list(same) == ["teacher"] and float(total(same)) == pytest.approx(0.0, abs=1e-5)
    student = create_model("face_keypoints", input_size=32, backbone="test_tiny_heatmap")
    value = total(loss(*student(images), images, is_face))
    value.backward()
    assert value.item() > 0 and all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())

    config = {"arch": "face_keypoints", "model_kwargs": {"backbone": "test_small_heatmap"}, "input_size": 32,
              "expand_ratio": 0.25, "normalize": True}
    save_checkpoint(make_checkpoint(teacher, config), tmp_path / "teacher.pt")
    from facial_keypoints.training.command import build_parser, make_loss

    def training_loss(*flags, arch="face_keypoints"):  # the loss `facial-keypoints train` builds from its flags
        args = build_parser().parse_args(["--train-list", "train.txt", "--save-directory", "run", *flags])
        return make_loss(args, {"arch": arch})

    teacher_flags = ["--teacher", str(tmp_path / "teacher.pt")]
    batch = {"image": images, "keypoints": torch.full((4, 42), 16.0), "face": is_face}
    with torch.no_grad():
        keypoints, logits = student(images)
    plain = training_loss()(keypoints, logits, batch)
    distilled = training_loss(*teacher_flags)(keypoints, logits, batch)
    assert list(plain) == ["keypoints", "face"] and list(distilled) == ["keypoints", "face", "teacher"]
    assert float(total(distilled)) > float(total(plain))  # the teacher's term is added
    # what best.pt is picked on, the labels alone, is the teacher-free loss
    assert float(labels_total(distilled)) == pytest.approx(float(total(plain)))
    # the loss curve's axis names what was summed, not just the keypoint loss
    assert training_loss().describe() == "5·cross entropy + 1·wing loss"
    assert training_loss(*teacher_flags).describe() == "5·cross entropy + 1·wing loss + teacher terms"
    assert training_loss("--loss", "smoothl1", arch="stage1").describe() == "1·smoothl1 loss"  # one head: no CE
    with pytest.raises(ValueError, match="32-px"):
        small = torch.randn(2, 1, 16, 16)
        training_loss(*teacher_flags)(torch.zeros(2, 42), torch.zeros(2, 2), {"image": small,
                                                                             "keypoints": torch.zeros(2, 42),
                                                                             "face": torch.ones(2)})


def test_heatmap_distillation_matches_maps_on_faces_and_trains_the_student():
    from facial_keypoints.training.losses import TeacherLoss, heatmap_kl
    from facial_keypoints.models.networks import create_model
    torch.manual_seed(1)
    teacher = create_model("face_keypoints", input_size=32, backbone="test_small_heatmap").eval()
    images = torch.randn(3, 1, 32, 32)
    is_face = torch.tensor([1.0, 0.0, 1.0])
    maps = torch.randn(3, 21, 8, 8)
    assert float(heatmap_kl(maps, maps, is_face)) == pytest.approx(0.0, abs=1e-6)
    other = maps.clone()
    other[1] += torch.randn(21, 8, 8) * 3  # a non-face's maps do not count
    assert float(heatmap_kl(other, maps, is_face)) == pytest.approx(0.0, abs=1e-6)
    assert float(heatmap_kl(maps + torch.randn_like(maps), maps, is_face)) > 0.01

    loss = TeacherLoss(teacher, "wing", weight=0.0, heatmap_weight=1.0)
    with pytest.raises(RuntimeError, match="watch"):
        loss(*teacher(images), images, is_face)
    loss.watch(teacher)  # the teacher as its own student: nothing to learn
    with torch.no_grad():
        assert float(total(loss(*teacher(images), images, is_face))) == pytest.approx(0.0, abs=1e-5)
    student = create_model("face_keypoints", input_size=32, backbone="test_tiny_heatmap")
    loss.watch(student)
    terms = loss(*student(images), images, is_face)
    assert set(terms) == {"teacher", "heatmap"} and terms["teacher"].item() == 0.0
    value = total(terms)  # weight 0: only the heatmap term is left
    value.backward()
    assert value.item() > 0 and all(p.grad is None for p in teacher.parameters())
    assert student.body.heatmaps.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="heatmaps"):
        TeacherLoss(create_model("face_keypoints", input_size=32, backbone="compact_resnet"), heatmap_weight=1.0)


def test_teacher_temperature_tells_a_sure_teacher_from_a_surer_student():
    from facial_keypoints.training.losses import TeacherLoss

    class Fixed(torch.nn.Module):  # a "teacher" whose face logits are (0, 8) for every crop
        def forward(self, images):
            n = images.shape[0]
            return torch.zeros(n, 42), torch.tensor([[0.0, 8.0]]).repeat(n, 1)

    images, is_face = torch.zeros(2, 1, 8, 8), torch.ones(2)
    student_logits = torch.tensor([[0.0, 16.0], [0.0, 16.0]])  # the same call, twice as sure
    plain = total(TeacherLoss(Fixed(), "wing", weight=1.0)(torch.zeros(2, 42), student_logits, images, is_face))
    soft = total(TeacherLoss(Fixed(), "wing", weight=1.0, temperature=4.0)(torch.zeros(2, 42), student_logits, images,
                                                                           is_face))
    assert float(soft) > 100 * float(plain) > 0  # near-certain at t=1, a clear difference at t=4
    same = total(TeacherLoss(Fixed(), "wing", weight=1.0, temperature=4.0)(
        torch.zeros(2, 42), torch.tensor([[0.0, 8.0], [0.0, 8.0]]), images, is_face))
    assert float(same) == pytest.approx(0.0, abs=1e-6)


def test_heatmap_kl_pools_a_finer_teacher_onto_the_student_grid():
    from facial_keypoints.training.losses import heatmap_kl
    torch.manual_seed(2)
    teacher = torch.randn(2, 21, 8, 8)
    probs = torch.softmax(teacher.reshape(2, 21, -1), -1).reshape(2, 21, 8, 8)
    pooled = torch.nn.functional.avg_pool2d(probs, 2) * 4  # each student cell holds its 4 teacher cells
    student = pooled.clamp(min=1e-12).log()
    assert float(heatmap_kl(student, teacher, torch.ones(2))) == pytest.approx(0.0, abs=1e-5)
    assert float(heatmap_kl(torch.zeros(2, 21, 4, 4), teacher, torch.ones(2))) > 0.01
    with pytest.raises(ValueError, match="pool"):
        heatmap_kl(torch.zeros(2, 21, 3, 3), teacher, torch.ones(2))


def test_embedding_distillation_matches_what_the_classifier_reads():
    from facial_keypoints.training.losses import TeacherLoss
    from facial_keypoints.models.networks import create_model
    teacher, images, is_face, loss = teacher_term_only("test_small_heatmap", 5, embedding_weight=1.0)
    student = create_model("face_keypoints", input_size=32, backbone="test_tiny_heatmap")
    loss.watch(student)
    terms = loss(*student(images), images, is_face)
    assert set(terms) == {"teacher", "embedding"} and terms["teacher"].item() == 0.0
    value = total(terms)  # weight 0: only the embedding term is left
    with torch.no_grad():
        expected = torch.nn.functional.mse_loss(student.body.forward_with_embedding(images)[1],
                                                teacher.body.forward_with_embedding(images)[1])
    assert value.item() == pytest.approx(expected.item(), rel=1e-5) and value.item() > 0
    value.backward()
    assert student.body.trunk.layer3[0].body[0][0].weight.grad.abs().sum() > 0  # into the trunk
    head_grad = student.classifier[1].weight.grad  # not through the head it feeds
    assert head_grad is None or float(head_grad.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="two-headed"):
        TeacherLoss(create_model("test_small_heatmap", input_size=32), embedding_weight=1.0)


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


def test_the_keypoint_only_loss_of_one_headed_models_also_skips_unlabelled_faces():
    loss = TrainingLoss("mse")  # what `facial-keypoints train` uses for stage1, stage1_bn, ... (no face term)
    keypoints = torch.zeros(2, 42)
    batch = {"keypoints": torch.stack([torch.ones(42), torch.full((42,), 50.0)]), "face": torch.tensor([1.0, 1.0]),
             "image": torch.zeros(2, 1, 112, 112)}
    assert list(loss(keypoints, None, batch)) == ["keypoints"]
    assert total(loss(keypoints, None, batch)).item() > 1000  # both faces count without the flag
    batch["keypoint_labelled"] = torch.tensor([1.0, 0.0])
    assert total(loss(keypoints, None, batch)).item() == pytest.approx(1.0)


def test_a_distilled_run_picks_best_pt_on_the_labels_alone(synthetic_root, tmp_path):
    """With --teacher, validation reports the labels' loss beside the training objective, and
    best.pt is the epoch where the labels' loss (not the one with the teacher's terms) was lowest."""
    import csv

    from facial_keypoints.models.checkpoint import load_checkpoint, model_from_checkpoint
    from facial_keypoints.evaluation.engine import make_loader
    from facial_keypoints.training.command import build_parser, main as train, make_loss
    from facial_keypoints.training.data import training_sets
    from facial_keypoints.training.loop import validate
    from facial_keypoints.data.transforms import eval_transform
    root, _ = synthetic_root
    gen = load_script("stage3", "gen_train_test")
    assert gen.main(["--data-root", str(root), "--out-dir", str(tmp_path / "lists"), "--test-fraction", "0.3"]) == 0
    train_list = tmp_path / "lists" / "train.txt"
    common = ["--data-root", str(root), "--train-list", str(train_list), "--val-fraction", "0.3",
              "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--batch-size", "4", "--log-interval", "0",
              "--backbone", "stage1_bn"]  # two heads (--arch face_keypoints), stage 3's defaults
    assert train([*common, "--epochs", "1", "--save-directory", str(tmp_path / "teacher")]) == 0
    assert train([*common, "--epochs", "3", "--lr", "3e-3", "--teacher", str(tmp_path / "teacher" / "best.pt"),
                  "--teacher-embedding-weight", "50", "--save-directory", str(tmp_path / "student")]) == 0
    last = load_checkpoint(tmp_path / "student" / "last.pt")
    history = last["history"]
    assert all(h["val_labels_loss"] < h["val_loss"] for h in history)  # the teacher's terms are positive here
    best = load_checkpoint(tmp_path / "student" / "best.pt")
    assert best["epoch"] == min(history, key=lambda h: h["val_labels_loss"])["epoch"]
    # the two rules disagree in this run (the teacher's terms grow as the student leaves it), so this tells them apart
    assert best["epoch"] != min(history, key=lambda h: h["val_loss"])["epoch"]
    assert best["metrics"]["val_labels_loss"] == min(h["val_labels_loss"] for h in history)
    # the labels' loss is the teacher-free loss (a·CE + b·wing) on the validation crops
    config = last["config"]
    _, val_set = training_sets(train_list, root, config, val_fraction=0.3, split_seed=1,
                               train_transform=eval_transform(config["normalize"]), cache_dir=tmp_path / "cache",
                               progress=False)
    plain = make_loss(build_parser().parse_args([*common, "--save-directory", str(tmp_path / "student")]), config)
    assert not plain.has_teacher
    model = model_from_checkpoint(last, "last.pt")
    recomputed = validate(model, make_loader(val_set, 256, shuffle=False), plain, torch.device("cpu"))
    assert recomputed["loss"] == pytest.approx(history[-1]["val_labels_loss"], rel=1e-5)
    with open(tmp_path / "student" / "loss_history.csv") as handle:
        assert "val_labels_loss" in next(csv.reader(handle))
