"""A student's keypoints with a referee's face decision on the crops the student is unsure of."""
import numpy as np
import pytest
import torch

from facial_keypoints.checkpoint import make_checkpoint, save_checkpoint
from facial_keypoints.export import load_backend
from facial_keypoints.inference import KeypointRunner
from facial_keypoints.models import create_model
from facial_keypoints.referee import Refereed

from conftest import load_script


def logits_for(probabilities):
    """(N, 2) logits whose face probability is ``probabilities``."""
    p = torch.tensor(probabilities, dtype=torch.float32)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], dim=1)


class Fixed:
    """A stand-in network: fixed keypoints and face probabilities, and the batches it was given."""

    def __init__(self, probabilities, keypoint_value):
        self.probabilities, self.keypoint_value, self.seen = probabilities, keypoint_value, []

    def __call__(self, images):
        self.seen.append(images[:, 0, 0, 0].tolist())  # which rows came (each image is filled with its row index)
        rows = [int(v) for v in images[:, 0, 0, 0]]
        return (torch.full((len(rows), 42), float(self.keypoint_value)),
                logits_for([self.probabilities[r] for r in rows]))

    def run_arrays(self, images):
        keypoints, logits = self(torch.from_numpy(images))
        return [keypoints.numpy(), logits.numpy()]


def rows_batch(n):
    return torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()


@pytest.mark.parametrize("path", ["torch", "arrays"])
def test_only_the_unsure_rows_go_to_the_referee_and_the_keypoints_stay_the_students(path):
    student = Fixed([0.05, 0.5, 0.95, 0.3, 0.92], keypoint_value=1.0)
    referee = Fixed([0.99, 0.8, 0.01, 0.02, 0.5], keypoint_value=2.0)
    model = Refereed(student, referee, band=(0.1, 0.9))
    batch = rows_batch(5)
    if path == "torch":
        keypoints, logits = (t.numpy() for t in model(batch))
    else:
        keypoints, logits = model.run_arrays(batch.numpy())
    probability = 1 / (1 + np.exp(logits[:, 0] - logits[:, 1]))
    np.testing.assert_allclose(probability, [0.05, 0.8, 0.95, 0.02, 0.92], atol=1e-6)  # sure rows kept
    assert referee.seen == [[1.0, 3.0]] and model.asked == 2
    assert (keypoints == 1.0).all()


def test_a_band_outside_the_probabilities_is_refused():
    with pytest.raises(ValueError, match="referee band"):
        Refereed(Fixed([0.5], keypoint_value=1.0), Fixed([0.5], keypoint_value=2.0), band=(0.9, 0.1))


def test_a_sure_batch_never_calls_the_referee():
    referee = Fixed([0.5] * 3, keypoint_value=2.0)
    model = Refereed(Fixed([0.001, 0.999, 0.005], keypoint_value=1.0), referee)  # outside the default band
    model(rows_batch(3))
    assert referee.seen == [] and model.asked == 0


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_load_backend_brings_the_referee_a_checkpoint_names(tmp_path, backend):
    torch.manual_seed(0)
    config = {"arch": "face_keypoints", "model_kwargs": {"backbone": "fast_heatmap"}, "input_size": 112,
              "expand_ratio": 0.25, "normalize": True}
    student = create_model("face_keypoints", input_size=112, backbone="fast_heatmap").eval()
    referee = create_model("face_keypoints", input_size=112, backbone="fast_heatmap").eval()
    (tmp_path / "weights").mkdir()
    save_checkpoint(make_checkpoint(referee, config), tmp_path / "weights" / "referee.pt")
    # band (0, 1): every crop is the referee's to decide, so its logits must come back whole
    save_checkpoint(make_checkpoint(student, {**config, "referee": {"checkpoint": "referee.pt", "band": [0.0, 1.0]}}),
                    tmp_path / "weights" / "student.pt")
    model, payload = load_backend(tmp_path / "weights" / "student.pt", backend, threads=1)
    assert isinstance(model, Refereed) and payload["config"]["referee"]["checkpoint"] == "referee.pt"
    images = torch.randn(3, 1, 112, 112)
    with torch.no_grad():
        keypoints, logits = model(images)
        expected_points, _ = student(images)
        _, expected_logits = referee(images)
    np.testing.assert_allclose(keypoints.numpy(), expected_points.numpy(), atol=1e-4)
    np.testing.assert_allclose(logits.numpy(), expected_logits.numpy(), atol=1e-4)
    runner = KeypointRunner(model, payload["config"], mirror_band=None)  # the NumPy path for ONNX
    gray = (np.random.default_rng(0).random((200, 200)) * 255).astype(np.uint8)
    points, face_prob = runner(gray, [[20, 20, 150, 150]])
    assert points.shape == (1, 21, 2) and face_prob.shape == (1,)
    if backend == "onnx":
        assert (runner.run_arrays is not None) and model.asked >= 4


def test_a_student_ships_only_beside_the_referee_it_names(tmp_path, monkeypatch):
    import sys

    from conftest import load_script
    from facial_keypoints.checkpoint import load_checkpoint
    ship = load_script("scripts", "ship_model")
    config = {"arch": "face_keypoints", "model_kwargs": {"backbone": "fast_heatmap"}, "input_size": 112,
              "expand_ratio": 0.25, "normalize": True, "referee": {"checkpoint": "referee.pt", "band": [0.1, 0.9]}}
    model = create_model("face_keypoints", input_size=112, backbone="fast_heatmap")
    save_checkpoint(make_checkpoint(model, config), tmp_path / "student.pt")
    (tmp_path / "package").mkdir()
    monkeypatch.setattr(sys, "argv", ["ship_model.py", str(tmp_path / "student.pt"), str(tmp_path / "package" / "a.pt")])
    with pytest.raises(SystemExit, match="names the referee referee.pt"):
        ship.main()
    assert not (tmp_path / "package" / "a.pt").exists()
    save_checkpoint(make_checkpoint(model, {k: v for k, v in config.items() if k != "referee"}),
                    tmp_path / "package" / "referee.pt")
    assert ship.main() == 0
    assert load_checkpoint(tmp_path / "package" / "a.pt")["config"]["referee"]["checkpoint"] == "referee.pt"


def test_exporting_a_refereed_student_says_the_file_holds_the_student_only(tmp_path, capsys):
    from facial_keypoints.__main__ import main as cli
    config = {"arch": "face_keypoints", "model_kwargs": {"backbone": "fast_heatmap"}, "input_size": 112,
              "expand_ratio": 0.25, "normalize": True}
    model = create_model("face_keypoints", input_size=112, backbone="fast_heatmap")
    save_checkpoint(make_checkpoint(model, config), tmp_path / "plain.pt")
    save_checkpoint(make_checkpoint(model, {**config, "referee": {"checkpoint": "referee.pt", "band": [0.1, 0.9]}}),
                    tmp_path / "student.pt")
    assert cli(["export", "--checkpoint", str(tmp_path / "plain.pt"), "--out", str(tmp_path / "plain.onnx")]) == 0
    assert "holds the student only" not in capsys.readouterr().out
    assert cli(["export", "--checkpoint", str(tmp_path / "student.pt"), "--out", str(tmp_path / "s.onnx")]) == 0
    assert "holds the student only" in capsys.readouterr().out and (tmp_path / "s.onnx").is_file()


def test_referee_band_counts_the_crops_a_cascade_decides_otherwise_than_its_referee():
    band_script = load_script("scripts", "referee_band")
    is_face = [1, 1, 1, 0, 0, 0]
    referee = [1, 1, 0, 0, 0, 1]   # right, right, wrong (a missed face), right, right, wrong (a false face)
    cascade = [1, 0, 1, 0, 1, 1]   # right, wrong, right, right, wrong, wrong
    assert band_script.decision_changes(referee, cascade, is_face) == {
        "lost_faces": 1, "won_faces": 1, "lost_non_faces": 1, "won_non_faces": 0}
    assert band_script.referred([0.0, 0.005, 0.02, 0.5, 0.98, 0.995, 1.0], (0.01, 0.99)).tolist() == [
        False, False, True, True, True, False, False]
    with pytest.raises(Exception, match="LOW,HIGH"):
        band_script.parse_band("0.9,0.1")


def test_attach_referee_writes_the_pair_that_load_backend_reads(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from facial_keypoints.checkpoint import load_checkpoint
    from facial_keypoints.quantize import int8_model_of, stamp_source
    attach = load_script("scripts", "attach_referee")
    config = {"arch": "face_keypoints", "model_kwargs": {"backbone": "fast_heatmap"}, "input_size": 112,
              "expand_ratio": 0.25, "normalize": True}
    for name in ("student", "teacher"):
        save_checkpoint(make_checkpoint(create_model("face_keypoints", input_size=112, backbone="fast_heatmap"),
                                        config), tmp_path / f"{name}.pt")
    # a stand-in int8 twin of the teacher: any ONNX file stamped with the teacher's SHA-256
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "teacher.int8.onnx"))
    stamp_source(tmp_path / "teacher.int8.onnx", tmp_path / "teacher.pt")

    out = tmp_path / "cascade" / "S.pt"
    attach.attach_referee(tmp_path / "student.pt", out, tmp_path / "teacher.pt", (0.02, 0.98))
    assert load_checkpoint(out)["config"]["referee"] == {"checkpoint": "referee.pt", "band": [0.02, 0.98]}
    assert int8_model_of(tmp_path / "cascade" / "referee.pt") is not None  # the copied twin still matches
    model, _ = load_backend(out, "torch")
    assert isinstance(model, Refereed) and model.band == (0.02, 0.98)
    with pytest.raises(ValueError, match="already names the referee"):
        attach.attach_referee(out, tmp_path / "again" / "S.pt", tmp_path / "teacher.pt")
    with pytest.raises(ValueError, match="band"):
        attach.attach_referee(tmp_path / "student.pt", tmp_path / "bad" / "S.pt", tmp_path / "teacher.pt", (0.9, 0.1))
    with pytest.raises(ValueError, match="names a referee of its own"):  # one referee, not a chain
        attach.attach_referee(tmp_path / "student.pt", tmp_path / "chain" / "S.pt", out)
    assert not any((tmp_path / d).exists() for d in ("again", "bad", "chain"))  # refused before writing


def test_the_shipped_default_comes_with_its_referee_and_both_int8_models():
    """default.pt names referee.pt; predict's --backend auto must find both int8 twins in the package."""
    from facial_keypoints.checkpoint import load_checkpoint
    from facial_keypoints.export import resolve_backend
    from facial_keypoints.referee import checked_band
    from facial_keypoints.weights import DEFAULT_CHECKPOINT, REFEREE_CHECKPOINT
    pairing = load_checkpoint(DEFAULT_CHECKPOINT)["config"]["referee"]
    assert DEFAULT_CHECKPOINT.parent / pairing["checkpoint"] == REFEREE_CHECKPOINT
    checked_band(pairing["band"])
    assert "referee" not in load_checkpoint(REFEREE_CHECKPOINT)["config"]  # it decides alone
    assert resolve_backend(DEFAULT_CHECKPOINT, "auto") == resolve_backend(REFEREE_CHECKPOINT, "auto") == "onnx-int8"
    model, _ = load_backend(DEFAULT_CHECKPOINT, "auto", threads=1)
    assert isinstance(model, Refereed)
    assert type(model.student).__name__ == type(model.referee).__name__ != "Refereed"
