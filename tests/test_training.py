"""``facial-keypoints train`` on synthetic faces: resume reproduces an uninterrupted run; saves are atomic."""
import multiprocessing
import sys

import pytest
import torch

from facial_keypoints.models.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from facial_keypoints.data.lists import records_from_labels
from facial_keypoints.data.list_files import write_list
from facial_keypoints.models.networks import create_model
from facial_keypoints.training.command import main as train_command
from facial_keypoints.training.data import training_sets

# What the old stage-1 trainer ran with: stage 1's batch-norm net, Adam at 1e-3 on the MSE loss, no weight
# decay, and no schedule (``none`` with no warm-up is a constant rate); augmentation stays on.
STAGE1_BN = ["--arch", "stage1_bn", "--lr", "1e-3", "--optimizer", "adam", "--loss", "mse", "--weight-decay", "0",
             "--scheduler", "none", "--warmup-epochs", "0"]


@pytest.fixture
def lists(synthetic_root, tmp_path):
    root, _ = synthetic_root
    write_list(tmp_path / "train.txt", records_from_labels(root, 0.25))
    return root, tmp_path / "train.txt"


def common(root, train_list, save, epochs):
    return ["--data-root", str(root), "--train-list", str(train_list), "--save-directory", str(save),
            "--epochs", str(epochs), "--batch-size", "4", "--val-fraction", "0.3", "--log-interval", "0",
            "--no-progress", "--cache-dir", str(save.parent / "cache")]


def train(root, train_list, save, epochs, *extra):
    assert train_command([*common(root, train_list, save, epochs), *STAGE1_BN, *extra]) == 0


class Killed(Exception):
    pass


def killed_after(monkeypatch, epoch: int) -> None:
    """Runs stop dead once ``epoch``'s checkpoints are written, as a killed process would."""
    from facial_keypoints.training.run_folder import RunFolder
    real = RunFolder.end_of_epoch

    def end_of_epoch(self, net, history, **kwargs):
        real(self, net, history, **kwargs)
        if history[-1]["epoch"] == epoch:
            raise Killed

    monkeypatch.setattr(RunFolder, "end_of_epoch", end_of_epoch)


@pytest.mark.parametrize("extra", [[], ["--ema", "0.9"], ["--scheduler", "cosine", "--warmup-epochs", "1"]],
                         ids=["plain", "weight-average", "cosine-schedule"])
def test_resume_ends_where_an_uninterrupted_run_ends(lists, tmp_path, monkeypatch, extra):
    """With augmentation on, 2 epochs + resume to 4 equals 4 epochs straight (tolerance 1e-6);
    with --ema both the average (``model``) and the trained weights (``raw_model``).  A schedule
    spans --epochs, so there the 4-epoch run is killed after epoch 2 instead, and resuming goes on
    with the rate at the step it had reached."""
    root, train_list = lists
    train(root, train_list, tmp_path / "straight", 4, *extra)
    if "cosine" in extra:
        killed_after(monkeypatch, 2)
        with pytest.raises(Killed):
            train(root, train_list, tmp_path / "interrupted", 4, *extra)
        monkeypatch.undo()
        assert load_checkpoint(tmp_path / "interrupted" / "last.pt")["epoch"] == 2
        assert not (tmp_path / "interrupted" / ".lock").exists()
    else:
        train(root, train_list, tmp_path / "interrupted", 2, *extra)
    train(root, train_list, tmp_path / "interrupted", 4, "--resume", *extra)
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = load_checkpoint(tmp_path / "interrupted" / "last.pt")
    assert resumed["epoch"] == straight["epoch"] == 4
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    ema = "--ema" in extra
    for key in ["model"] + (["raw_model"] if ema else []):
        for name, tensor in straight[key].items():
            torch.testing.assert_close(resumed[key][name], tensor, atol=1e-6, rtol=0, msg=f"{key} {name}")
    assert resumed["history"][-1]["val_loss"] == pytest.approx(straight["history"][-1]["val_loss"], abs=1e-6)
    assert [h["lr"] for h in resumed["history"]] == pytest.approx([h["lr"] for h in straight["history"]], rel=1e-9)
    if "cosine" in extra:  # the schedule really moved the rate, so resuming had a step count to restore
        assert straight["history"][-1]["lr"] < 0.5 * straight["history"][1]["lr"]
    if ema:
        assert resumed["ema"] == straight["ema"]
        moved = [n for n, t in straight["model"].items() if t.is_floating_point()
                 and not torch.equal(t, straight["raw_model"][n])]
        assert moved, "the average should differ from the last step's weights"


def test_ema_validates_the_average_it_saves(lists, tmp_path):
    """The validation loss of an --ema epoch is the saved average's, not the trained weights'."""
    from facial_keypoints.evaluation.engine import make_loader
    from facial_keypoints.data.list_files import read_list
    from facial_keypoints.data.lists import split_by_photo
    from facial_keypoints.training.loop import validate
    from facial_keypoints.training.loss import TrainingLoss
    from facial_keypoints.data.transforms import eval_transform
    root, train_list = lists
    train(root, train_list, tmp_path / "run", 2, "--ema", "0.9", "--no-augment")
    payload = load_checkpoint(tmp_path / "run" / "last.pt")
    _, val_set = training_sets(train_list, root, payload["config"], val_fraction=0.3, split_seed=1,
                               train_transform=eval_transform(payload["config"]["normalize"]),
                               cache_dir=tmp_path / "cache", progress=False)
    assert len(val_set) == len(split_by_photo(read_list(train_list), 0.3, 1)[1])
    loss = TrainingLoss("mse")  # one-headed: the keypoint term alone, as the run trained
    losses = {}
    loader = make_loader(val_set, 64, shuffle=False)
    for key in ("model", "raw_model"):
        model = model_from_checkpoint({**payload, "model": payload[key]}).eval()
        losses[key] = validate(model, loader, loss, torch.device("cpu"))["loss"]
    assert losses["model"] == pytest.approx(payload["history"][-1]["val_loss"], rel=1e-5)
    assert losses["raw_model"] != pytest.approx(losses["model"], rel=1e-5)


def test_resume_refuses_a_switch_of_ema(lists, tmp_path, capsys):
    root, train_list = lists
    train(root, train_list, tmp_path / "run", 1, "--ema", "0.9")
    capsys.readouterr()
    code = train_command([*common(root, train_list, tmp_path / "run", 2), *STAGE1_BN, "--resume"])
    assert code == 2
    err = capsys.readouterr().err
    assert "was trained with --ema: resume it the same way" in err and "Traceback" not in err
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1  # the run it refused to continue is kept


def test_resume_refuses_another_architecture(lists, tmp_path, capsys):
    root, train_list = lists
    train(root, train_list, tmp_path / "run", 1)
    capsys.readouterr()
    code = train_command([*common(root, train_list, tmp_path / "run", 2), "--arch", "stage1", "--resume"])
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
    code = train_command([*common(root, train_list, tmp_path / "nan", 3), "--arch", "stage1", "--optimizer", "sgd",
                          "--loss", "mse", "--weight-decay", "0", "--scheduler", "none", "--warmup-epochs", "0",
                          "--no-augment", "--lr", "1e30", "--clip-grad", "0", "--batch-size", "2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "the loss became" in err and "training stopped" in err and "Traceback" not in err


def test_finetune_continues_an_adam_checkpoint_with_sgd(lists, tmp_path):
    root, train_list = lists
    train(root, train_list, tmp_path / "run", 1)  # Adam
    # --lr unset: a finetune starts at a tenth of the checkpoint's rate
    flags = [f for f in STAGE1_BN if f not in ("--lr", "1e-3")]
    assert train_command([*common(root, train_list, tmp_path / "run", 1), *flags, "--optimizer", "sgd",
                          "--finetune", str(tmp_path / "run" / "best.pt"), "--freeze", "features"]) == 0
    tuned = load_checkpoint(tmp_path / "run" / "finetune" / "last.pt")  # never over the checkpoint it started from
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
    heatmap = ["--arch", "test_small_heatmap", "--lr", "1e-3", "--optimizer", "adam"]  # with stage 2's augmentation
    assert train_command([*common(root, train_list, tmp_path / "run", 1), *heatmap]) == 0
    assert train_command([*common(root, train_list, tmp_path / "small", 1), *heatmap,
                          "--finetune", str(tmp_path / "run" / "best.pt"), "--input-size", "96"]) == 0
    small = load_checkpoint(tmp_path / "small" / "last.pt")
    assert small["config"]["input_size"] == 96 and small["epoch"] == 1
    model = model_from_checkpoint(small).eval()
    with torch.no_grad():
        points = model(torch.zeros(2, 1, 96, 96))
    assert points.shape == (2, 42) and 0 < points.min() and points.max() < 96  # in the 96-px frame
    train(root, train_list, tmp_path / "s1", 1)  # stage1_bn: fully connected layers sized for 112
    capsys.readouterr()
    code = train_command([*common(root, train_list, tmp_path / "s1_small", 1), *STAGE1_BN,
                          "--finetune", str(tmp_path / "s1" / "best.pt"), "--input-size", "96"])
    assert code == 2 and "cannot move stage1_bn to 96x96 inputs" in capsys.readouterr().err
    assert not (tmp_path / "s1_small" / "last.pt").exists()


def test_split_seed_keeps_the_validation_photos_of_another_training_seed(lists, tmp_path, monkeypatch):
    """--seed 2 --split-seed 1 validates on --seed 1's photos (a second draw of a recipe stays comparable);
    --seed 2 alone holds out others."""
    from facial_keypoints.training import command
    root, train_list = lists

    class Split(Exception):  # stops the run once its datasets are made: no training needed
        pass

    def validation_photos(*seeds):
        seen = {}

        def datasets(*args, **kwargs):
            _, val_set = training_sets(*args, **kwargs)
            seen["photos"] = sorted({r.image for r in val_set.records})
            raise Split

        monkeypatch.setattr(command, "training_sets", datasets)
        with pytest.raises(Split):
            train_command([*common(root, train_list, tmp_path / "run", 1), *STAGE1_BN, *seeds])
        return seen["photos"]

    first = validation_photos("--seed", "1")
    assert validation_photos("--seed", "2", "--split-seed", "1") == first
    assert validation_photos("--seed", "2") != first
