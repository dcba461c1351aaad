import numpy as np
import pytest

from facial_keypoints.data.list_files import ListRecord
from facial_keypoints.data.lists import split_by_photo


def records(photos=40, faces_per_photo=3):
    return [ListRecord(f"I/{p:03d}.jpg", np.array([0, 0, 10, 10.0]), np.zeros((21, 2)))
            for p in range(photos) for _ in range(faces_per_photo)]


def test_no_photo_on_both_sides_and_nothing_lost():
    data = records()
    train, test = split_by_photo(data, 0.2, seed=3)
    assert len(train) + len(test) == len(data)
    assert not {r.image for r in train} & {r.image for r in test}
    assert len({r.image for r in test}) == 8


def test_split_is_seeded():
    a = split_by_photo(records(), 0.2, seed=3)[1]
    b = split_by_photo(records(), 0.2, seed=3)[1]
    c = split_by_photo(records(), 0.2, seed=4)[1]
    assert [r.image for r in a] == [r.image for r in b]
    assert {r.image for r in a} != {r.image for r in c}


def test_photo_key_keeps_copies_with_their_photo():
    data = records(20, 1) + [ListRecord(f"aug/{p:03d}_sat.jpg", np.array([0, 0, 10, 10.0]), np.zeros((21, 2)))
                             for p in range(20)]
    key = lambda image: image.split("/")[1][:3]  # noqa: E731
    train, test = split_by_photo(data, 0.25, seed=0, photo_key=key)
    assert not {key(r.image) for r in train} & {key(r.image) for r in test}


def test_bad_fraction():
    with pytest.raises(ValueError):
        split_by_photo(records(), 1.5, seed=0)


def test_stage1_lists_leave_out_a_blank_face_and_no_other_line_moves(tmp_path, capsys):
    """A blacked-out face that is its photo's only face: leaving it out before the split would change
    the photo set and so reshuffle every photo's side; the lists leave it out after the split."""
    from PIL import Image

    from conftest import keypoints_in_box, label_line, load_script
    from facial_keypoints.data.list_files import read_list
    rng = np.random.default_rng(5)
    root = tmp_path / "data"
    (root / "I").mkdir(parents=True)
    lines = []
    for n in range(12):
        pixels = rng.integers(0, 256, (160, 200), dtype=np.uint8)  # texture: a face to see
        box = (20.0, 20.0, 100.0, 100.0)
        if n == 0:
            pixels[:] = 0  # the whole photo blacked out, its only face too
        Image.fromarray(pixels).save(root / "I" / f"p{n:02d}.png")
        lines.append(label_line(f"p{n:02d}.png", box, keypoints_in_box(box, rng)))
    (root / "I" / "label.txt").write_text("\n".join(lines) + "\n")
    gen = load_script("stage1", "gen_train_test")
    runs = {}
    for name, flags in (("left_out", []), ("kept", ["--keep-blank-faces"])):
        assert gen.main(["--data-root", str(root), "--out-dir", str(tmp_path / name), "--test-fraction", "0.25",
                         *flags]) == 0
        runs[name] = {side: [r.image for r in read_list(tmp_path / name / f"{side}.txt")] for side in ("train", "test")}
    assert "label.txt:1" in capsys.readouterr().out  # named by its label line
    for side in ("train", "test"):
        assert [i for i in runs["kept"][side] if i != "I/p00.png"] == runs["left_out"][side]
    assert sum(len(v) for v in runs["kept"].values()) == 12
    assert sum(len(v) for v in runs["left_out"].values()) == 11
