"""Stage 2's offline copies and lists: copies stay with their photo, the test list stays originals."""
import subprocess
import sys

from facial_keypoints.data.list_files import read_list

from conftest import REPO


def run(*args):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_copies_follow_their_photo_and_stay_out_of_the_test_list(synthetic_root, tmp_path):
    root, faces = synthetic_root
    aug = tmp_path / "aug"
    result = run(REPO / "stage2" / "data_augmentation.py", "--data-root", root, "--out", aug, "--copies", 2)
    assert result.returncode == 0, result.stderr
    assert len(list((aug / "I").glob("*__aug*.jpg"))) == 12 and (aug / "II" / "label.txt").is_file()

    result = run(REPO / "stage2" / "gen_train_test.py", "--data-root", root, "--augmented", aug,
                 "--out-dir", tmp_path / "lists", "--test-fraction", 0.3)
    assert result.returncode == 0, result.stderr
    train, test = read_list(tmp_path / "lists" / "train.txt"), read_list(tmp_path / "lists" / "test.txt")
    sys.path.insert(0, str(REPO / "stage2"))
    from gen_train_test import is_copy, photo_key
    assert not any(is_copy(r.image) for r in test)
    assert len(test) == 3  # 30 % of 10 photos, originals only
    assert not {photo_key(r.image) for r in train} & {photo_key(r.image) for r in test}
    assert sum(is_copy(r.image) for r in train) == 2 * 7
    # Copies' paths resolve from the data root, and their points are the originals'.
    copy = next(r for r in train if is_copy(r.image))
    assert (root / copy.image).is_file()
    original = next(r for r in train if r.image.endswith(photo_key(copy.image).split("/")[1] + ".png"))
    assert (original.keypoints == copy.keypoints).all()


def test_copies_are_never_written_into_the_data_root(synthetic_root):
    root, _ = synthetic_root
    result = run(REPO / "stage2" / "data_augmentation.py", "--data-root", root, "--out", root / "aug")
    assert result.returncode == 2 and "inside the data root" in result.stderr
    assert not (root / "aug").exists()
