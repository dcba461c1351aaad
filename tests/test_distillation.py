"""Distillation: each teacher term (points, face KL, heatmaps, embedding, trunk maps) is zero for the
teacher itself, trains only the student, and best.pt is picked on the labels alone."""
import numpy as np
import pytest
import torch

from facial_keypoints.training.loss import labels_total, total

from conftest import load_script


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
    from facial_keypoints.training.command import make_loss
    from facial_keypoints.training.flags import build_parser

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


def test_a_distilled_run_picks_best_pt_on_the_labels_alone(synthetic_root, tmp_path):
    """With --teacher, validation reports the labels' loss beside the training objective, and
    best.pt is the epoch where the labels' loss (not the one with the teacher's terms) was lowest."""
    import csv

    from facial_keypoints.models.checkpoint import load_checkpoint, model_from_checkpoint
    from facial_keypoints.evaluation.engine import make_loader
    from facial_keypoints.training.command import main as train, make_loss
    from facial_keypoints.training.flags import build_parser
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
