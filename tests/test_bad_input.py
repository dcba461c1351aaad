"""The bad-input matrix: every way a user can hurt a run, and what must happen instead.

Each case ends in one clear line naming the file (and the label line), a non-zero exit where
the run could not do what was asked, no traceback, no input or earlier output changed, and no
output left half-written.  Cases, in order:

 1. predict never writes over an input photo, and never reads its own outputs as input
 2. one photo that fails (too small for the detector, unreadable) does not stop the others
 3. a write failure (a full disk) is one line naming the file; nothing is left half-written
 4. the shipped model is read-only to every command (tests/test_deploy.py covers quantize and export)
 5. a second training run into a folder a live run holds is refused; --resume with another list is refused
 6. labels out of range are an error naming the line (or skipped and counted); a hand-made list
    with a far-off point is refused before training
 7. an empty label.txt, a byte-order mark, a negative --expand-ratio, --epochs 0
 8. an output path that is a file, numbers no run can use, checkpoints of the wrong kind for a stage
 9. a checkpoint that asks to run code is refused in one line, and nothing runs
10. every flag's help shows its default once
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from facial_keypoints.models.checkpoint import make_checkpoint, save_checkpoint
from facial_keypoints.cli import main as cli
from facial_keypoints.data.lists import records_from_labels
from facial_keypoints.data.list_files import read_list, write_list
from facial_keypoints.models.networks import create_model

from conftest import REPO, load_script


def one_line_error(capsys, *needles) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def photo(path, size=(160, 120)):
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(path)
    return path


# 1 ------------------------------------------------------------------------------------------------
def test_predict_refuses_an_output_folder_that_is_an_input_folder(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    before = photo(photos / "a.jpg").read_bytes()
    assert cli(["predict", str(photos), "--out", str(photos)]) == 2
    one_line_error(capsys, "also an input folder")
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg"] and (photos / "a.jpg").read_bytes() == before


def test_predict_never_reads_its_own_outputs_and_never_overwrites_an_input(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    photo(photos / "a.jpg")
    for _ in range(2):  # predict . twice: predictions/ is inside the folder searched
        assert cli(["predict", ".", "--threads", "1"]) == 0
    assert capsys.readouterr().out.count("photos/a.jpg:") == 2
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == ["a.jpg", "a.json"]
    # an output that would land on an input photo takes another name
    out = tmp_path / "out"
    out.mkdir()
    kept = photo(out / "b.jpg", (90, 90)).read_bytes()
    assert cli(["predict", str(photos / "a.jpg"), str(out / "b.jpg"), "--out", str(out), "--threads", "1"]) == 0
    assert (out / "b.jpg").read_bytes() == kept and (out / "b_.jpg").is_file() and (out / "b_.json").is_file()


# 2 ------------------------------------------------------------------------------------------------
def test_a_tiny_or_broken_photo_does_not_stop_the_batch(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    photo(photos / "a_tiny.png", (20, 30))
    (photos / "b_broken.jpg").write_bytes(b"not a jpeg")
    photo(photos / "c_fine.jpg")
    assert cli(["predict", str(photos), "--out", str(tmp_path / "out"), "--threads", "1"]) == 1
    err = one_line_error(capsys, "b_broken.jpg")
    assert "a_tiny.png" not in err  # too small for any face: no faces, no error
    assert json.loads((tmp_path / "out" / "a_tiny.json").read_text())["faces"] == []
    assert (tmp_path / "out" / "c_fine.json").is_file()


# 3 ------------------------------------------------------------------------------------------------
def test_a_full_disk_is_one_line_and_leaves_no_half_written_file(tmp_path, capsys, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    photo(photos / "a.jpg")
    photo(photos / "b.jpg")
    real_save = Image.Image.save

    def full_disk(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # some bytes reach the disk, then it is full
        with open(fp, "r+b") as handle:
            handle.truncate(100)
        raise OSError(28, "No space left on device", str(fp))

    monkeypatch.setattr(Image.Image, "save", full_disk)
    out = tmp_path / "out"
    assert cli(["predict", str(photos), "--out", str(out), "--threads", "1"]) == 1
    one_line_error(capsys, "cannot write", "No space left on device")
    assert sorted(p.name for p in out.iterdir()) == ["a.json"]  # whole, and no partial drawing or temporary file
    json.loads((out / "a.json").read_text())


# 5 ------------------------------------------------------------------------------------------------
@pytest.fixture
def lists(synthetic_root, tmp_path):
    root, _ = synthetic_root
    write_list(tmp_path / "train.txt", records_from_labels(root, 0.25))
    return root, tmp_path / "train.txt"


def stage1(root, train_list, save, *extra) -> int:
    """``facial-keypoints train`` as the old stage-1 trainer ran: stage1_bn, Adam at 1e-3 on the MSE loss, a
    constant rate, no augmentation; one epoch."""
    return cli(["train", "--data-root", str(root), "--train-list", str(train_list), "--save-directory", str(save),
                "--arch", "stage1_bn", "--lr", "1e-3", "--optimizer", "adam", "--loss", "mse", "--weight-decay", "0",
                "--scheduler", "none", "--warmup-epochs", "0", "--no-augment",
                "--epochs", "1", "--batch-size", "4", "--val-fraction", "0.3", "--log-interval", "0", "--no-progress",
                "--cache-dir", str(save.parent / "cache"), *extra])


def test_a_second_run_into_a_busy_save_directory_is_refused_and_a_stale_lock_is_taken_over(lists, tmp_path, capsys):
    root, train_list = lists
    save = tmp_path / "run"
    save.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (save / ".lock").write_text(str(holder.pid))
        assert stage1(root, train_list, save) == 2
        one_line_error(capsys, "in use by another training run", f"pid {holder.pid}")
        assert not (save / "best.pt").exists()
    finally:
        holder.kill()
        holder.wait()
    assert stage1(root, train_list, save) == 0  # the holder is gone: its lock is stale
    assert (save / "best.pt").is_file() and not (save / ".lock").exists()


def test_a_lock_whose_pid_now_belongs_to_another_process_is_taken_over(lists, tmp_path):
    root, train_list = lists
    save = tmp_path / "run"
    save.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (save / ".lock").write_text(f"{other.pid} 1")  # a live pid, but not the process that wrote the lock
        assert stage1(root, train_list, save) == 0
        assert (save / "best.pt").is_file() and not (save / ".lock").exists()
    finally:
        other.kill()
        other.wait()


def test_resume_with_another_list_is_refused_unless_forced(lists, tmp_path, capsys):
    root, train_list = lists
    assert stage1(root, train_list, tmp_path / "run") == 0
    other = tmp_path / "other.txt"
    write_list(other, read_list(train_list)[:-1])
    capsys.readouterr()
    assert stage1(root, other, tmp_path / "run", "--epochs", "2", "--resume") == 2
    one_line_error(capsys, "other settings", "--force-resume")
    assert stage1(root, other, tmp_path / "run", "--epochs", "2", "--resume", "--force-resume") == 0


# 6 ------------------------------------------------------------------------------------------------
def damaged_root(synthetic_root, field: int, value: str):
    """The synthetic data root with one number of I/label.txt's first line replaced."""
    root, _ = synthetic_root
    path = root / "I" / "label.txt"
    lines = path.read_text().splitlines()
    fields = lines[0].split()
    fields[field] = value
    lines[0] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("field, value", [(5 + 2 * 3, "1e6"), (3, "1e30"), (6, "-5000")],
                         ids=["point far right", "box edge far right", "point far above"])
def test_a_label_outside_its_photo_names_its_line_or_is_skipped_and_counted(synthetic_root, tmp_path, capsys,
                                                                            field, value):
    root = damaged_root(synthetic_root, field, value)
    gen = load_script("stage1", "gen_train_test")
    out = tmp_path / "lists"
    assert gen.main(["--data-root", str(root), "--out-dir", str(out)]) == 2
    one_line_error(capsys, "label.txt:1", "outside")
    assert not (out / "train.txt").exists()
    assert gen.main(["--data-root", str(root), "--out-dir", str(out), "--skip-bad"]) == 0
    counts = json.loads((out / "lists.json").read_text())["counts"]
    assert counts.get("skipped_malformed", 0) + counts.get("skipped_image_or_box", 0) == 1


def test_a_list_with_a_far_off_point_is_refused_before_training(lists, tmp_path, capsys):
    root, train_list = lists
    records = read_list(train_list)
    records[2].keypoints[4] = (1e6, 3.0)
    write_list(train_list, records)
    assert stage1(root, train_list, tmp_path / "run") == 2
    one_line_error(capsys, f"{train_list}:3", "far outside")
    assert not (tmp_path / "run" / "best.pt").exists()


def test_a_non_finite_loss_names_the_batch_lines_and_points_at_the_labels_first(lists, tmp_path, capsys, monkeypatch):
    from facial_keypoints.training import command
    from facial_keypoints.training.loss import TrainingLoss
    root, train_list = lists

    class Poisoned(TrainingLoss):  # what a label that breaks the arithmetic does to the loss
        def forward(self, keypoints, logits, batch):
            return {"keypoints": keypoints.sum() * float("nan")}

    monkeypatch.setattr(command, "make_loss", lambda args, config: Poisoned(args.loss))
    assert stage1(root, train_list, tmp_path / "run") == 2
    err = one_line_error(capsys, "the loss became nan", f"{train_list}:", "labels first")
    [line] = [line for line in err.splitlines() if "the loss became" in line]  # one line, among the log's
    assert line.startswith("error: ") and f"{train_list}:" in line and line.index("labels") < line.index("--lr")
    assert not (tmp_path / "run" / "last.pt").exists()


# 7 ------------------------------------------------------------------------------------------------
def test_an_empty_label_file_is_an_error_and_the_old_lists_stay(synthetic_root, tmp_path, capsys):
    root, _ = synthetic_root
    gen = load_script("stage1", "gen_train_test")
    out = tmp_path / "lists"
    assert gen.main(["--data-root", str(root), "--out-dir", str(out)]) == 0
    before = (out / "train.txt").read_text()
    (root / "II" / "label.txt").write_text("")
    assert gen.main(["--data-root", str(root), "--out-dir", str(out)]) == 2
    one_line_error(capsys, "II/label.txt", "empty")
    assert (out / "train.txt").read_text() == before


def test_a_byte_order_mark_is_not_part_of_the_first_image_name(synthetic_root):
    from facial_keypoints.data.labels import read_labels
    root, faces = synthetic_root
    path = root / "I" / "label.txt"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_labels(root)[0].image == faces[0][0]


@pytest.mark.parametrize("flags, needle", [(["--expand-ratio", "-1"], "--expand-ratio"),
                                           (["--test-fraction", "0"], "--test-fraction")])
def test_list_settings_no_split_can_use_are_refused(synthetic_root, tmp_path, capsys, flags, needle):
    root, _ = synthetic_root
    gen = load_script("stage1", "gen_train_test")
    assert gen.main(["--data-root", str(root), "--out-dir", str(tmp_path / "lists"), *flags]) == 2
    one_line_error(capsys, needle)


@pytest.mark.parametrize("flags, needle", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--threads", "-1"], "--threads must be at least 1"),
    (["--val-fraction", "0"], "--val-fraction must lie strictly between 0 and 1"),
])
def test_training_numbers_no_run_can_use_are_one_line(lists, tmp_path, capsys, flags, needle):
    root, train_list = lists
    assert stage1(root, train_list, tmp_path / "run", *flags) == 2
    one_line_error(capsys, needle)
    assert not (tmp_path / "run" / "best.pt").exists()


# 8 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["predict", "evaluate", "export", "gen_train_test"])
@pytest.mark.parametrize("below", [False, True], ids=["the file", "a folder under the file"])
def test_an_output_path_that_is_a_file_is_refused_before_any_work(synthetic_root, tmp_path, capsys, command, below):
    root, _ = synthetic_root
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")
    target = blocker / "sub" if below else blocker
    if command == "gen_train_test":
        status = load_script("stage1", "gen_train_test").main(["--data-root", str(root), "--out-dir", str(target)])
    elif command == "predict":
        status = cli(["predict", str(root / "I"), "--out", str(target)])
    elif command == "evaluate":
        status = cli(["evaluate", "--data", str(root), "--out", str(target)])
    else:
        status = cli(["export", "--out", str(target / "m.onnx")])
    assert status == 2
    one_line_error(capsys, str(blocker))
    assert blocker.read_text() == "keep me"


@pytest.mark.parametrize("flags, needle", [
    (["--threads", "-1"], "must be at least 1"), (["--workers", "-1"], "must be 0 or more"),
    (["--min-face", "0"], "from 12 to 4096"), (["--min-face", "11"], "from 12 to 4096"),
    (["--detect-max-side", "0"], "from 64 to 4096"), (["--recycle-after", "0"], "must be at least 1")])
def test_predict_numbers_no_run_can_use_are_one_line(tmp_path, capsys, flags, needle):
    """--min-face has a floor: MTCNN at 1 px enlarges the photo 12 times (16.7 GB on a 1280x960 photo)."""
    with pytest.raises(SystemExit) as stop:
        cli(["predict", str(tmp_path), *flags])
    assert stop.value.code == 2
    one_line_error(capsys, needle)


@pytest.mark.parametrize("flags", [["--min-cutoff", "nan"], ["--min-cutoff", "0"], ["--beta", "nan"], ["--beta", "inf"],
                                   ["--face-threshold", "nan"], ["--face-threshold", "5"]])
def test_predict_settings_that_are_not_finite_or_out_of_range_are_one_line(tmp_path, capsys, flags):
    with pytest.raises(SystemExit) as stop:
        cli(["predict", str(tmp_path), *flags])
    assert stop.value.code == 2
    one_line_error(capsys, "must be a finite number in")


def one_head_checkpoint(path):
    config = {"arch": "stage1", "model_kwargs": {}, "input_size": 112, "expand_ratio": 0.25, "normalize": True}
    save_checkpoint(make_checkpoint(create_model("stage1"), config), path)
    return path


def test_stage3_refuses_one_head_models_and_finetune_refuses_another_arch(synthetic_root, tmp_path, capsys):
    """Stage 3's script tests and finetunes two-headed models only; ``facial-keypoints train`` trains
    one-headed ones too, but --finetune continues the checkpoint's own network, not another --arch."""
    root, _ = synthetic_root
    lists = tmp_path / "lists"
    gen = load_script("stage3", "gen_train_test")
    assert gen.main(["--data-root", str(root), "--out-dir", str(lists), "--test-fraction", "0.3"]) == 0
    checkpoint = one_head_checkpoint(tmp_path / "stage1.pt")
    stage3 = load_script("stage3", "detector")
    capsys.readouterr()
    for phase in ("test", "finetune"):
        assert stage3.stage1.main(stage3.build_parser(), stage3.PHASES, [
            "--phase", phase, "--checkpoint", str(checkpoint), "--data-root", str(root), "--lists", str(lists),
            "--save-directory", str(tmp_path / "m"), "--epochs", "1"]) == 2
        err = one_line_error(capsys, "stage1.pt", "one-headed", "two-headed")
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert not (tmp_path / "m").exists()
    assert cli(["train", "--finetune", str(checkpoint), "--arch", "stage1_bn", "--data-root", str(root),
                "--train-list", str(lists / "train.txt"), "--save-directory", str(tmp_path / "tuned"),
                "--no-progress", "--epochs", "1", "--val-fraction", "0.3", "--cache-dir", str(tmp_path / "cache")]) == 2
    err = one_line_error(capsys, "--arch stage1_bn", "'stage1' model")
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [err.strip()]
    assert not (tmp_path / "tuned" / "last.pt").exists()


# 9 ------------------------------------------------------------------------------------------------
class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch ran_code",))


def test_a_checkpoint_that_asks_to_run_code_is_refused_in_our_words(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format": "facial_keypoints/checkpoint", "model": RunsCode()}, tmp_path / "evil.pt")
    assert cli(["predict", str(photo(tmp_path / "a.jpg")), "--checkpoint", str(tmp_path / "evil.pt")]) == 2
    err = one_line_error(capsys, "evil.pt", "asks to run", "system", "refused")
    assert "weights_only" not in err and len(err.strip().splitlines()) == 1 and len(err) < 200
    assert not (tmp_path / "ran_code").exists()


# 10 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", ["stage1/detector.py", "stage3/detector.py", "stage1/gen_train_test.py",
                                    "-m facial_keypoints predict", "-m facial_keypoints evaluate",
                                    "-m facial_keypoints train"])
def test_help_shows_every_flag_with_its_meaning_and_default_once(script):
    out = subprocess.run([sys.executable, *script.split(), "--help"], capture_output=True, text=True, check=True,
                         cwd=REPO, env={**os.environ, "COLUMNS": "200"}).stdout
    options = out.split("options:", 1)[1]
    lines = options.splitlines()
    for n, line in enumerate(lines):
        assert line.count("(default") <= 1, line
        if line.startswith("  -") and not line.startswith("  -h"):
            own = len(line.split("  ", 2)) > 2 and line.split("  ", 2)[2].strip()
            below = n + 1 < len(lines) and lines[n + 1].startswith(" " * 10)  # help wrapped onto the next line
            assert own or below, f"no help: {line}"


def test_a_fifo_named_like_a_photo_is_one_line_not_a_hang(tmp_path, capsys):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    good = photo(tmp_path / "good.jpg")
    result = subprocess.run([sys.executable, "-m", "facial_keypoints", "predict", str(fifo), str(good), "--out",
                             str(tmp_path / "out"), "--threads", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1  # one photo failed, the other was done
    assert f"{fifo} is not a regular file" in result.stderr and (tmp_path / "out" / "good.json").is_file()


def test_no_home_folder_needs_no_home_when_the_cache_folder_is_given(monkeypatch, tmp_path):
    from pathlib import Path

    from facial_keypoints.data.crop_cache import default_cache_dir

    def no_home():
        raise RuntimeError("Could not determine home directory.")
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    monkeypatch.setenv("FKD_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("FKD_CACHE_DIR")
    with pytest.raises(ValueError, match="set FKD_CACHE_DIR"):
        default_cache_dir()
