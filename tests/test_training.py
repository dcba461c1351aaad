"""The train phase on synthetic faces: resume reproduces an uninterrupted run; saves are atomic."""
import multiprocessing
import sys

import pytest
import torch

from facial_keypoints.augment import add_augmentation_arguments, train_transform
from facial_keypoints.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from facial_keypoints.detector_cli import Detector
from facial_keypoints.evaluation import records_from_labels
from facial_keypoints.labels import write_list
from facial_keypoints.models import create_model

from conftest import REPO


@pytest.fixture
def lists(synthetic_root, tmp_path):
    root, _ = synthetic_root
    write_list(tmp_path / "train.txt", records_from_labels(root, 0.25))
    return root, tmp_path / "train.txt"


def train(root, train_list, save, epochs, *extra):
    detector = Detector(REPO / "stage1", {"arch": "stage1_bn", "lr": 1e-3, "optimizer": "adam"},
                        train_transform=train_transform, add_arguments=add_augmentation_arguments)
    argv = ["--phase", "train", "--data-root", str(root), "--train-list", str(train_list),
            "--save-directory", str(save), "--epochs", str(epochs), "--batch-size", "4", "--val-fraction", "0.3",
            "--log-interval", "0", "--no-progress", "--cache-dir", str(save.parent / "cache"), *extra]
    assert detector.main(argv) == 0


@pytest.mark.parametrize("ema", [[], ["--ema", "0.9"]], ids=["plain", "weight-average"])
def test_resume_ends_where_an_uninterrupted_run_ends(lists, tmp_path, ema):
    """With augmentation on, 2 epochs + resume to 4 equals 4 epochs straight (tolerance 1e-6);
    with --ema both the average (``model``) and the trained weights (``raw_model``)."""
    root, train_list = lists
    train(root, train_list, tmp_path / "straight", 4, *ema)
    train(root, train_list, tmp_path / "interrupted", 2, *ema)
    train(root, train_list, tmp_path / "interrupted", 4, "--resume", *ema)
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = load_checkpoint(tmp_path / "interrupted" / "last.pt")
    assert resumed["epoch"] == straight["epoch"] == 4
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    for key in ["model"] + (["raw_model"] if ema else []):
        for name, tensor in straight[key].items():
            torch.testing.assert_close(resumed[key][name], tensor, atol=1e-6, rtol=0, msg=f"{key} {name}")
    assert resumed["history"][-1]["val_loss"] == pytest.approx(straight["history"][-1]["val_loss"], abs=1e-6)
    if ema:
        assert resumed["ema"] == straight["ema"]
        moved = [n for n, t in straight["model"].items() if t.is_floating_point()
                 and not torch.equal(t, straight["raw_model"][n])]
        assert moved, "the average should differ from the last step's weights"


def test_ema_validates_the_average_it_saves(lists, tmp_path):
    """The validation loss of an --ema epoch is the saved average's, not the trained weights'."""
    from facial_keypoints.engine import make_loader, run_inference
    from facial_keypoints.lists import split_by_photo
    from facial_keypoints.labels import read_list
    root, train_list = lists
    train(root, train_list, tmp_path / "run", 2, "--ema", "0.9", "--no-augment")
    payload = load_checkpoint(tmp_path / "run" / "last.pt")
    detector = Detector(REPO / "stage1", {"arch": "stage1_bn"})
    detector.args = detector.parser().parse_args(["--data-root", str(root), "--train-list", str(train_list),
                                                  "--val-fraction", "0.3", "--cache-dir", str(tmp_path / "cache"),
                                                  "--no-progress"])
    detector.root = root
    _, val_set = detector.datasets(payload["config"])
    assert len(val_set) == len(split_by_photo(read_list(train_list), 0.3, 1)[1])
    loss_fn = detector.loss_factory(detector.args)
    losses = {}
    loader = make_loader(val_set, 64, shuffle=False)
    for key in ("model", "raw_model"):
        model = model_from_checkpoint({**payload, "model": payload[key]}).eval()
        losses[key] = run_inference(model, loader, torch.device("cpu"), loss_fn)["loss"]
    assert losses["model"] == pytest.approx(payload["history"][-1]["val_loss"], rel=1e-5)
    assert losses["raw_model"] != pytest.approx(losses["model"], rel=1e-5)


def test_resume_refuses_a_switch_of_ema(lists, tmp_path, capsys):
    root, train_list = lists
    train(root, train_list, tmp_path / "run", 1, "--ema", "0.9")
    detector = Detector(REPO / "stage1", {"arch": "stage1_bn"})
    code = detector.main(["--phase", "train", "--data-root", str(root), "--train-list", str(train_list),
                          "--save-directory", str(tmp_path / "run"), "--epochs", "2", "--resume", "--val-fraction",
                          "0.3", "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    assert "was trained with --ema: resume it the same way" in capsys.readouterr().err


def test_resume_refuses_another_architecture(lists, tmp_path, capsys):
    root, train_list = lists
    train(root, train_list, tmp_path / "run", 1)
    detector = Detector(REPO / "stage1", {"arch": "stage1"})
    code = detector.main(["--phase", "train", "--data-root", str(root), "--train-list", str(train_list),
                          "--save-directory", str(tmp_path / "run"), "--epochs", "2", "--resume",
                          "--no-progress", "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    assert "holds a 'stage1_bn' model, not 'stage1'" in capsys.readouterr().err


def _save_many(path, seed):
    torch.manual_seed(seed)
    payload = make_checkpoint(create_model("stage1"), {"arch": "stage1", "input_size": 112})
    for _ in range(15):
        save_checkpoint(payload, path)


def test_two_writers_never_leave_a_half_written_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    context = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    writers = [context.Process(target=_save_many, args=(path, seed)) for seed in (1, 2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    assert all(w.exitcode == 0 for w in writers)
    assert load_checkpoint(path)["config"]["arch"] == "stage1"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_non_finite_loss_stops_training_with_a_message(lists, tmp_path, capsys):
    root, train_list = lists
    detector = Detector(REPO / "stage1", {"arch": "stage1", "optimizer": "sgd"})
    code = detector.main(["--phase", "train", "--data-root", str(root), "--train-list", str(train_list),
                          "--save-directory", str(tmp_path / "nan"), "--epochs", "3", "--lr", "1e30",
                          "--clip-grad", "0", "--batch-size", "2", "--log-interval", "0", "--no-progress",
                          "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    err = capsys.readouterr().err
    assert "the loss became" in err and "training stopped" in err and "Traceback" not in err


def test_finetune_continues_an_adam_checkpoint_with_sgd(lists, tmp_path):
    root, train_list = lists
    train(root, train_list, tmp_path / "run", 1)  # Adam
    train(root, train_list, tmp_path / "run", 1, "--phase", "finetune", "--optimizer", "sgd",
          "--checkpoint", str(tmp_path / "run" / "best.pt"), "--freeze", "features")
    tuned = load_checkpoint(tmp_path / "run" / "finetune" / "last.pt")
    first = load_checkpoint(tmp_path / "run" / "best.pt")
    assert tuned["args"]["optimizer"] == "sgd" and first["args"]["optimizer"] == "adam"
    assert tuned["args"]["lr"] == pytest.approx(first["args"]["lr"] * 0.1)
    assert "momentum_buffer" in str(tuned["optimizer"]["state"])  # an SGD state, not Adam's exp_avg
    # Frozen conv weights did not move; the head did.
    torch.testing.assert_close(tuned["model"]["features.conv1_1.weight"], first["model"]["features.conv1_1.weight"])
    bn = [k for k in first["model"] if k.startswith("features.") and k.endswith("running_mean")]
    assert bn and all(torch.equal(tuned["model"][k], first["model"][k]) for k in bn)  # frozen BN keeps its statistics
    assert not torch.equal(tuned["model"]["head.ip3.weight"], first["model"]["head.ip3.weight"])


def test_finetune_moves_a_heatmap_model_to_a_smaller_input_and_stage1_refuses(lists, tmp_path, capsys):
    root, train_list = lists
    detector = Detector(REPO / "stage2", {"arch": "test_small_heatmap", "lr": 1e-3, "optimizer": "adam"})
    common = ["--data-root", str(root), "--train-list", str(train_list), "--batch-size", "4", "--val-fraction", "0.3",
              "--log-interval", "0", "--no-progress", "--cache-dir", str(tmp_path / "cache"), "--epochs", "1"]
    assert detector.main(["--phase", "train", "--save-directory", str(tmp_path / "run"), *common]) == 0
    assert detector.main(["--phase", "finetune", "--checkpoint", str(tmp_path / "run" / "best.pt"),
                          "--input-size", "96", "--save-directory", str(tmp_path / "small"), *common]) == 0
    small = load_checkpoint(tmp_path / "small" / "last.pt")
    assert small["config"]["input_size"] == 96 and small["epoch"] == 1
    model = model_from_checkpoint(small).eval()
    with torch.no_grad():
        points = model(torch.zeros(2, 1, 96, 96))
    assert points.shape == (2, 42) and 0 < points.min() and points.max() < 96  # in the 96-px frame
    train(root, train_list, tmp_path / "s1", 1)  # stage1_bn: fully connected layers sized for 112
    capsys.readouterr()
    code = Detector(REPO / "stage1", {"arch": "stage1_bn"}).main(
        ["--phase", "finetune", "--checkpoint", str(tmp_path / "s1" / "best.pt"), "--input-size", "96",
         "--save-directory", str(tmp_path / "s1_small"), *common])
    assert code == 2 and "cannot move stage1_bn to 96x96 inputs" in capsys.readouterr().err


def test_split_seed_keeps_the_validation_photos_of_another_training_seed(lists, tmp_path):
    """--seed 2 --split-seed 1 validates on --seed 1's photos (a second draw of a recipe stays comparable);
    --seed 2 alone holds out others."""
    root, train_list = lists

    def validation_photos(*seeds):
        detector = Detector(REPO / "stage1", {"arch": "stage1_bn"})
        detector.args = detector.parser().parse_args(["--data-root", str(root), "--train-list", str(train_list),
                                                      "--val-fraction", "0.3", "--no-progress", *seeds])
        detector.root = root
        _, val_set = detector.datasets(detector.config())
        return sorted({r.image for r in val_set.records})

    first = validation_photos("--seed", "1")
    assert validation_photos("--seed", "2", "--split-seed", "1") == first
    assert validation_photos("--seed", "2") != first
