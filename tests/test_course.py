"""The course's stage scripts: the networks they write out are the library's, each stage trains and its
checkpoint is read by `facial-keypoints evaluate`, stage 1 imports nothing of the product, the flag
budgets hold, and stage 2's augmentation moves the points with the pixels."""
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch

from facial_keypoints import cli
from facial_keypoints.models.checkpoint import load_checkpoint, load_model
from facial_keypoints.keypoints import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from facial_keypoints.models.networks import create_model

from conftest import REPO, load_script


def shapes(model):
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def test_stage1_net_holds_the_registry_stage1_weights():
    net = load_script("stage1", "detector").Net()
    assert shapes(net) == shapes(create_model("stage1"))
    assert sum(p.numel() for p in net.parameters()) == 235_851


@pytest.mark.parametrize("backbone", ["compact_heatmap", "thin_deep48_heatmap", "stage1_bn"])
def test_stage3_net_holds_the_registry_two_headed_weights(backbone):
    net = load_script("stage3", "detector").FaceKeypointNet(backbone)
    assert shapes(net) == shapes(create_model("face_keypoints", backbone=backbone))


def test_importing_stage1_loads_no_video_face_detection_onnx_photo_or_training_module():
    code = ("import runpy, sys; runpy.run_path(sys.argv[1]); "
            "print('\\n'.join(m for m in sys.modules if m.startswith(('facial_keypoints', 'onnx', 'ray', 'facenet', "
            "'yuface'))))")
    loaded = subprocess.run([sys.executable, "-c", code, str(REPO / "stage1" / "detector.py")], capture_output=True,
                            text=True, check=True, cwd=REPO).stdout.split()
    forbidden = [m for m in loaded if m.startswith(("onnx", "ray", "facenet", "yuface", "facial_keypoints.training"))
                 or m in ("facial_keypoints.video.annotate", "facial_keypoints.video.tracking", "facial_keypoints.runtime.face_detectors",
                          "facial_keypoints.runtime.photos", "facial_keypoints.runtime.loading", "facial_keypoints.api",
                          "facial_keypoints.runtime.keypoint_runner")]
    assert "facial_keypoints.models.checkpoint" in loaded and not forbidden


@pytest.mark.parametrize("stage, budget", [("stage1", 15), ("stage2", 25), ("stage3", 30)])
def test_each_stage_keeps_its_flag_budget(stage, budget):
    parser = load_script(stage, "detector").build_parser()
    flags = [action.dest for action in parser._actions if action.dest != "help"]  # --save-model/--no-... is one
    assert 8 <= len(flags) <= budget, flags


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def run_stage(stage, *argv) -> str:
    module = load_script(stage, "detector")
    main = module.main if stage == "stage1" else module.stage1.main  # stages 2 and 3 run stage 1's main
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(module.build_parser(), module.PHASES, [str(a) for a in argv]) == 0
    return out.getvalue()


@pytest.fixture
def stage1_lists(synthetic_root, tmp_path):
    root, _ = synthetic_root
    assert load_script("stage1", "gen_train_test").main(["--data-root", str(root), "--out-dir",
                                                         str(tmp_path / "lists")]) == 0
    return root, tmp_path / "lists"


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_a_stage_trains_and_the_library_evaluates_its_checkpoint_alike(stage1_lists, tmp_path, stage):
    root, lists = stage1_lists
    common = ["--data-root", root, "--lists", lists, "--save-directory", tmp_path / "run", "--batch-size", 4]
    run_stage(stage, "--phase", "train", "--epochs", 1, "--log-interval", 0, *common)
    assert {"best.pt", "last.pt", "loss_curve.png"} <= {p.name for p in (tmp_path / "run").iterdir()}
    course = last_json(run_stage(stage, "--phase", "test", *common))
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["evaluate", "--checkpoint", tmp_path / "run" / "best.pt", "--list", lists / "test.txt",
                         "--data", root, "--out", tmp_path / "ev", "--cache-dir", tmp_path / "cache",
                         "--no-progress", "--backend", "torch"]) == 0
    library = last_json(out.getvalue())
    assert library["faces"] == course["faces"] > 0
    assert library["nme_io"] == pytest.approx(course["nme_io"], rel=1e-4)  # the same crops, network and metric


def test_stage1_finetune_leaves_frozen_layers_as_they_were(stage1_lists, tmp_path):
    root, lists = stage1_lists
    common = ["--data-root", root, "--lists", lists, "--save-directory", tmp_path / "run", "--batch-size", 4,
              "--log-interval", 0, "--epochs", 1]
    run_stage("stage1", "--phase", "train", *common)
    run_stage("stage1", "--phase", "finetune", "--freeze", "conv1_1", "ip1", *common)
    before = load_checkpoint(tmp_path / "run" / "best.pt")["model"]
    after = load_checkpoint(tmp_path / "run" / "finetune" / "last.pt")["model"]
    for name in ("features.conv1_1.weight", "features.conv1_1.bias", "head.ip1.weight"):
        assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before["head.ip3.weight"], after["head.ip3.weight"])
    model, _ = load_model(tmp_path / "run" / "finetune" / "last.pt")  # the library rebuilds it as "stage1"
    assert type(model).__name__ == "Stage1Net"


def test_a_stage_under_torchrun_refuses_in_one_line_naming_the_product_trainer():
    result = subprocess.run([sys.executable, REPO / "stage2" / "detector.py", "--phase", "train"], capture_output=True,
                            text=True, env=dict(os.environ, WORLD_SIZE="2"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "facial-keypoints train" in result.stderr


# ---- stage 2's augmentation --------------------------------------------------------------------------
def marked_face(size=112):
    """Dark crop, a 3x3 bright mark on each of 21 spread points (continuous coordinates at the marks' centres)."""
    image = np.zeros((size, size), np.uint8)
    points = []
    for i in range(21):
        cx, cy = 24 + (i % 7) * 11, 30 + (i // 7) * 22
        image[cy - 1:cy + 2, cx - 1:cx + 2] = 255
        points.append((cx + 0.5, cy + 0.5))
    return {"image": image, "keypoints": np.array(points, np.float32)}


def brightness_centre(image, point, radius=5):
    x0, y0 = int(point[0]), int(point[1])
    patch = image[max(y0 - radius, 0):y0 + radius + 1, max(x0 - radius, 0):x0 + radius + 1].astype(float)
    ys, xs = np.mgrid[max(y0 - radius, 0):y0 + radius + 1, max(x0 - radius, 0):x0 + radius + 1]
    return np.array([(xs * patch).sum() / patch.sum() + 0.5, (ys * patch).sum() / patch.sum() + 0.5])


def test_stage2_flip_mirrors_and_swaps_left_and_right():
    data = load_script("stage2", "data")
    sample = marked_face()
    flipped = data.RandomFlip(p=1.0)(dict(sample, keypoints=sample["keypoints"].copy()))
    # the image-left outer eye corner after a flip is the mirror of the original right one
    np.testing.assert_allclose(flipped["keypoints"][LEFT_EYE_OUTER],
                               [112 - sample["keypoints"][RIGHT_EYE_OUTER][0], sample["keypoints"][RIGHT_EYE_OUTER][1]])
    for point in flipped["keypoints"]:
        np.testing.assert_allclose(brightness_centre(flipped["image"], point), point, atol=0.6)


def test_stage2_rotation_scale_and_shift_keep_marks_on_their_points():
    data = load_script("stage2", "data")
    torch.manual_seed(3)
    for _ in range(5):
        moved = data.RandomAffine(degrees=30, scale=0.2, translate=0.05)(marked_face())
        inside = [p for p in moved["keypoints"] if (p > 6).all() and (p < 106).all()]
        assert len(inside) >= 15
        for point in inside:
            np.testing.assert_allclose(brightness_centre(moved["image"], point), point, atol=1.0)


def test_the_stage1_readme_points_at_the_lines_that_answer_the_course_questions():
    """Each question's link goes to a line of detector.py that shows the thing (in the README's order)."""
    import re
    shown = ["N x C x H x W", "nn.Conv2d(", "nn.PReLU()", "nn.AvgPool2d(", "nn.Linear(", ".view(", "zero_grad()",
             "backward()", "optimizer.step()", "model.eval()", "model.train()", "torch.no_grad()", "state_dict()",
             "load_state_dict(", "requires_grad = False", "torch.optim.SGD(freeze("]
    lines = (REPO / "stage1" / "detector.py").read_text().splitlines()
    readme = (REPO / "stage1" / "README.md").read_text()
    linked = [int(n) for n in re.findall(r"\]\(detector\.py#L(\d+)\)", readme)]
    assert len(linked) == len(shown)
    for number, text in zip(linked, shown):
        assert text in lines[number - 1], f"README's link to line {number} should show {text!r}"
