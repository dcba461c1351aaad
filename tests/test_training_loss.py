"""facial-keypoints train's loss: each named term on a fixed batch equals its formula, and the sums."""
import argparse

import pytest
import torch
from torch.nn import functional as F

from facial_keypoints.models.checkpoint import make_checkpoint, save_checkpoint
from facial_keypoints.models.networks import create_model
from facial_keypoints.training.command import make_loss
from facial_keypoints.training.loss import TrainingLoss, labels_total, total
from facial_keypoints.training.losses import KeypointLoss, feature_mse, heatmap_kl


def fixed_batch():
    torch.manual_seed(0)
    return {"image": torch.randn(6, 1, 112, 112), "keypoints": torch.rand(6, 42) * 112,
            "face": torch.tensor([1., 1., 0., 1., 0., 1.]), "keypoint_labelled": torch.tensor([1., 0., 1., 1., 1., 1.])}


def test_a_one_headed_model_has_the_masked_keypoint_term_alone():
    batch = fixed_batch()
    keypoints = torch.rand(6, 42) * 112
    terms = TrainingLoss("mse", kp_weight=2.0)(keypoints, None, batch)
    assert list(terms) == ["keypoints"]
    mask = batch["face"] * batch["keypoint_labelled"]  # faces whose labels are trained
    expected = 2.0 * (((keypoints - batch["keypoints"]) ** 2).mean(1) * mask).sum() / mask.sum()
    torch.testing.assert_close(terms["keypoints"], expected)


def test_every_term_of_a_distilled_two_headed_model_equals_its_formula(tmp_path):
    batch = fixed_batch()
    torch.manual_seed(1)
    teacher = create_model("face_keypoints", backbone="compact_heatmap").eval()
    save_checkpoint(make_checkpoint(teacher, {"arch": "face_keypoints", "model_kwargs": {"backbone": "compact_heatmap"},
                                              "input_size": 112}), tmp_path / "teacher.pt")
    student = create_model("face_keypoints", backbone="thin_deep48_heatmap").eval()
    flags = argparse.Namespace(loss="wing", cls_weight=5.0, kp_weight=1.5, class_weights=(1.0, 2.0),
                               teacher=tmp_path / "teacher.pt", teacher_weight=3.0, teacher_heatmap_weight=20.0,
                               teacher_embedding_weight=200.0, teacher_feature_weight=10.0, teacher_temperature=2.0)
    loss = make_loss(flags, {"arch": "face_keypoints"})
    loss.watch(student)
    keypoints, logits = student(batch["image"])
    terms = loss(keypoints, logits, batch)
    assert list(terms) == ["keypoints", "face", "teacher", "heatmap", "embedding", "feature"]

    # the same quantities, taken from the two networks directly
    maps, features, trunk = {}, {}, {}
    student.body.heatmaps.register_forward_hook(lambda m, i, o: maps.__setitem__("s", o))
    teacher.body.heatmaps.register_forward_hook(lambda m, i, o: maps.__setitem__("t", o))
    student.classifier.register_forward_pre_hook(lambda m, i: features.__setitem__("s", i[0]))
    teacher.classifier.register_forward_pre_hook(lambda m, i: features.__setitem__("t", i[0]))
    student.body.trunk.register_forward_hook(lambda m, i, o: trunk.__setitem__("s", o))
    teacher.body.trunk.register_forward_hook(lambda m, i, o: trunk.__setitem__("t", o))
    with torch.no_grad():
        keypoints, logits = student(batch["image"])
        teacher_keypoints, teacher_logits = teacher(batch["image"])
    wing = KeypointLoss("wing")
    labelled = batch["face"] * batch["keypoint_labelled"]
    t = 2.0
    kl = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher_logits / t, 1), reduction="batchmean") * t * t
    expected = {
        "keypoints": 1.5 * wing(keypoints, batch["keypoints"], labelled),
        "face": 5.0 * F.cross_entropy(logits, batch["face"].long(), weight=torch.tensor([1.0, 2.0])),
        "teacher": 3.0 * (wing(keypoints, teacher_keypoints, batch["face"]) + kl),
        "heatmap": 20.0 * heatmap_kl(maps["s"], maps["t"], batch["face"]),
        "embedding": 200.0 * F.mse_loss(features["s"], features["t"]),
        "feature": 10.0 * feature_mse(trunk["s"], trunk["t"]),
    }
    for name, value in expected.items():
        torch.testing.assert_close(terms[name].detach(), value, rtol=1e-5, atol=1e-6, msg=name)
    assert total(terms).item() == pytest.approx(sum(v.item() for v in expected.values()), rel=1e-5)
    assert labels_total(terms).item() == pytest.approx((expected["keypoints"] + expected["face"]).item(), rel=1e-5)
    assert "teacher terms" in loss.describe()


def test_the_face_term_needs_a_two_headed_model():
    with pytest.raises(ValueError, match="two-headed"):
        TrainingLoss("wing", cls_weight=5.0)(torch.zeros(6, 42), None, fixed_batch())


def test_the_keypoint_only_loss_of_one_headed_models_also_skips_unlabelled_faces():
    loss = TrainingLoss("mse")  # what `facial-keypoints train` uses for stage1, stage1_bn, ... (no face term)
    keypoints = torch.zeros(2, 42)
    batch = {"keypoints": torch.stack([torch.ones(42), torch.full((42,), 50.0)]), "face": torch.tensor([1.0, 1.0]),
             "image": torch.zeros(2, 1, 112, 112)}
    assert list(loss(keypoints, None, batch)) == ["keypoints"]
    assert total(loss(keypoints, None, batch)).item() > 1000  # both faces count without the flag
    batch["keypoint_labelled"] = torch.tensor([1.0, 0.0])
    assert total(loss(keypoints, None, batch)).item() == pytest.approx(1.0)
