"""End to end on ~50 real faces: lists -> train 1 epoch -> test -> finetune -> predict -> evaluate."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def small_root(real_root, tmp_path_factory):
    """A data root with the first ~50 faces of I/label.txt (photos linked, not copied)."""
    root = tmp_path_factory.mktemp("real") / "data"
    (root / "I").mkdir(parents=True)
    lines = (real_root / "I" / "label.txt").read_bytes().decode().splitlines()[:50]
    for name in {line.split()[0] for line in lines}:
        os.symlink(real_root / "I" / name, root / "I" / name)
    (root / "I" / "label.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return root


def run(*args, cwd=REPO, env_extra=None):
    env = dict(os.environ, MPLBACKEND="Agg", **(env_extra or {}))
    result = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_stage1_end_to_end(small_root, tmp_path):
    lists, models, cache = tmp_path / "lists", tmp_path / "models", tmp_path / "cache"
    detector = REPO / "stage1" / "detector.py"
    common = ["--data-root", small_root, "--lists", lists, "--save-directory", models]
    out = run(REPO / "stage1" / "gen_train_test.py", "--data-root", small_root, "--out-dir", lists, "--verify", 2)
    assert "wrote" in out and (lists / "verify" / "sheet.png").is_file()
    train_lines = (lists / "train.txt").read_text().splitlines()
    test_lines = (lists / "test.txt").read_text().splitlines()
    assert len(train_lines) + len(test_lines) == 50
    assert not {l.split()[0] for l in train_lines} & {l.split()[0] for l in test_lines}

    run(detector, "--phase", "train", "--epochs", "1", *common)
    for name in ("best.pt", "last.pt", "loss_curve.png"):
        assert (models / name).is_file(), name

    report = last_json(run(detector, "--phase", "test", *common))
    assert report["faces"] == len(test_lines)
    assert {"nme_io", "nme_box", "fr_10", "auc_10", "loss"} <= set(report)
    assert report["nme_box"] == report["nme_box"]  # face boxes were found: not NaN

    run(detector, "--phase", "finetune", "--epochs", "1", "--freeze", "conv1_1", "--checkpoint", models / "best.pt",
        *common)
    assert (models / "finetune" / "best.pt").is_file()

    out = run(detector, "--phase", "predict", *common)
    assert f"drew {min(16, len(test_lines))} faces" in out
    assert sorted(p.name for p in (models / "predictions").iterdir()) == ["sheet.png"]

    evaluation = last_json(run("-m", "facial_keypoints", "evaluate", "--checkpoint", models / "best.pt",
                               "--data", small_root, "--out", tmp_path / "eval", "--cache-dir", cache,
                               "--no-progress"))
    assert evaluation["faces"] == 50
    assert {"faces", "nme_io", "nme_box", "fr_10", "auc_10", "per_point_px"} <= set(evaluation)
    assert (tmp_path / "eval" / "ced.png").is_file()


def test_bad_label_line_gives_a_clear_error(small_root, tmp_path):
    bad = tmp_path / "bad"
    (bad / "I").mkdir(parents=True)
    lines = (small_root / "I" / "label.txt").read_text().splitlines()[:3]
    lines[1] = lines[1].rsplit(" ", 1)[0]  # one coordinate short
    for name in {l.split()[0] for l in lines}:
        os.symlink(os.readlink(small_root / "I" / name), bad / "I" / name)
    (bad / "I" / "label.txt").write_text("\n".join(lines) + "\n")
    result = subprocess.run([sys.executable, REPO / "stage1" / "gen_train_test.py", "--data-root", bad,
                             "--out-dir", tmp_path / "lists"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert f"{bad / 'I' / 'label.txt'}:2: expected 47 fields" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "lists" / "train.txt").exists()
