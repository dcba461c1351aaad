"""Bad data, round two (issue 37): what happens when the data, not a flag, is wrong.

A. a photo replaced after its list was made (larger: refused by its recorded size; smaller: named)
B. a full disk while a list or the crop cache is written (no temporary file stays behind)
C. stage3/not_face_generate.py's numbers that no draw can use (refused at parsing)
D. duplicate label lines (counted once, and said)
E. a byte that is not UTF-8 in a label.txt, a list or lists.json (one line naming the file and line)
"""
from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from facial_keypoints.data.dataset import FaceCrops
from facial_keypoints.data.lists import records_from_labels
from facial_keypoints.data.labels import LabelError, ParseStats, read_labels
from facial_keypoints.data.list_files import ListRecord, read_list, write_list
from facial_keypoints.training.crop_pack import write_pack

from conftest import REPO, label_line, load_script

ENV = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")


def make_lists(root, out):
    gen = load_script("stage1", "gen_train_test")
    assert gen.main(["--data-root", str(root), "--out-dir", str(out), "--test-fraction", "0.3"]) == 0
    return out / "train.txt"


def no_temporaries(folder):
    return [p.name for p in folder.iterdir() if ".tmp" in p.name]


def resize_photo(path, factor):
    with Image.open(path) as image:
        image.load()
    image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor)))).save(path)


# A ------------------------------------------------------------------------------------------------
def test_the_lists_record_each_photo_size_and_read_list_carries_it(synthetic_root, tmp_path):
    root, faces = synthetic_root
    train_list = make_lists(root, tmp_path / "lists")
    recorded = json.loads((tmp_path / "lists" / "lists.json").read_text())["photo_sizes"]
    expected = {}
    for image, _, _ in faces:
        with Image.open(root / image) as photo:
            expected[image] = f"{photo.width}x{photo.height}"
    assert recorded == expected
    for record in read_list(train_list):
        assert record.photo_size == tuple(int(v) for v in expected[record.image].split("x"))
    # the list lines keep SPEC section 2's format
    assert {len(line.split()) for line in train_list.read_text().splitlines()} == {47}


def test_a_photo_replaced_by_a_larger_copy_is_refused_naming_it_and_its_list_line(synthetic_root, tmp_path):
    root, _ = synthetic_root
    train_list = make_lists(root, tmp_path / "lists")
    records = read_list(train_list)
    replaced = records[0].image
    resize_photo(root / replaced, 2.0)  # its boxes still fit: without the recorded size, silently wrong crops
    for make in (lambda: FaceCrops(records, root, cache_dir=tmp_path / "cache", progress=False),
                 lambda: write_pack(tmp_path / "pack.npz", records, root, 112, cache_dir=tmp_path / "cache",
                                    progress=False),
                 lambda: load_script("stage1", "data").FaceLandmarks(records, root)):
        with pytest.raises(LabelError) as info:
            make()
        message = str(info.value)
        assert message.startswith(f"{train_list}:1: ") and replaced in message and "\n" not in message
        assert "recorded when the list was made" in message
    assert not (tmp_path / "pack.npz").exists()


def test_pack_refuses_a_replaced_photo_in_one_line(synthetic_root, tmp_path):
    root, _ = synthetic_root
    train_list = make_lists(root, tmp_path / "lists")
    replaced = read_list(train_list)[-1].image
    resize_photo(root / replaced, 1.5)
    result = subprocess.run([sys.executable, "-m", "facial_keypoints", "pack", "--list", str(train_list),
                             "--data-root", str(root), "--out", str(tmp_path / "pack.npz"),
                             "--cache-dir", str(tmp_path / "cache"), "--no-progress"],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert replaced in result.stderr and "train.txt:" in result.stderr
    assert not (tmp_path / "pack.npz").exists()


def test_a_smaller_replacement_is_named_even_in_a_list_without_recorded_sizes(synthetic_root, tmp_path):
    root, _ = synthetic_root
    train_list = make_lists(root, tmp_path / "lists")
    (tmp_path / "lists" / "lists.json").unlink()  # a list made before sizes were recorded
    records = read_list(train_list)
    assert all(r.photo_size is None for r in records)
    replaced = records[0].image
    resize_photo(root / replaced, 0.2)  # PIL alone says "box can't exceed original image size", naming nothing
    for make in (lambda: FaceCrops(records, root, cache_dir=tmp_path / "cache", progress=False),
                 lambda: load_script("stage1", "data").FaceLandmarks(records, root)):
        with pytest.raises(LabelError) as info:
            make()
        message = str(info.value)
        assert message.startswith(f"{train_list}:1: ") and replaced in message and "does not fit" in message


def test_lists_without_recorded_sizes_still_work(synthetic_root, tmp_path):
    root, _ = synthetic_root
    train_list = make_lists(root, tmp_path / "lists")
    meta = tmp_path / "lists" / "lists.json"
    summary = json.loads(meta.read_text())
    del summary["photo_sizes"]
    meta.write_text(json.dumps(summary))
    records = read_list(train_list)
    assert all(r.photo_size is None for r in records)
    assert len(FaceCrops(records, root, cache_dir=tmp_path / "cache", progress=False)) == len(records)
    assert len(load_script("stage1", "data").FaceLandmarks(records, root)) == len(records)


# B ------------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs: a real full disk (needs root; skipped where it cannot be mounted)."""
    where = tmp_path / "disk"
    where.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                                 capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command to make a small disk with")
    if mounted.returncode:
        pytest.skip(f"cannot mount a 64 KiB tmpfs here (needs root): {mounted.stderr.strip()}")
    yield where
    subprocess.run(["umount", str(where)], check=True)


def face_list(n):
    points = np.arange(42, dtype=float).reshape(21, 2)
    return [ListRecord(f"I/{i:05d}.jpg", np.array([1.0, 2, 301, 302]), points + i, label=1) for i in range(n)]


def test_write_list_on_a_full_disk_keeps_the_old_list_and_leaves_no_temporary(small_disk):
    path = small_disk / "train.txt"
    write_list(path, face_list(3))
    before = path.read_bytes()
    with pytest.raises(OSError) as info:
        write_list(path, face_list(2000))  # about 300 kB
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and no_temporaries(small_disk) == []


def test_write_list_that_fails_midway_leaves_no_temporary(tmp_path, monkeypatch):
    import facial_keypoints.data.list_files as labels
    path = tmp_path / "train.txt"
    write_list(path, face_list(3))
    before = path.read_bytes()
    original, calls = labels.format_list_line, []

    def failing(record):
        calls.append(record)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(record)
    monkeypatch.setattr(labels, "format_list_line", failing)
    with pytest.raises(OSError):
        write_list(path, face_list(10))
    assert path.read_bytes() == before and no_temporaries(tmp_path) == []


def test_the_crop_cache_on_a_full_disk_leaves_no_temporary(synthetic_root, small_disk, caplog):
    root, _ = synthetic_root
    records = records_from_labels(root, 0.25)  # 10 crops of 112x112: 125 kB
    with caplog.at_level(logging.WARNING, logger="facial_keypoints"):
        dataset = FaceCrops(records, root, cache_dir=small_disk, progress=False)
    assert len(dataset) == len(records) and list(small_disk.iterdir()) == []  # the run goes on without a cache
    assert any(f"could not keep the crops in the cache {small_disk}" in m for m in caplog.messages)


def test_the_crop_cache_that_fails_midway_leaves_no_temporary(synthetic_root, tmp_path, monkeypatch, caplog):
    root, _ = synthetic_root
    records = records_from_labels(root, 0.25)
    expected = FaceCrops(records, root, cache_dir=tmp_path / "first", progress=False).crops

    def failing_save(file, array, *args, **kwargs):
        handle = open(file, "wb") if isinstance(file, (str, os.PathLike)) else file
        handle.write(b"\x93NUMPY" + bytes(1000))
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "save", failing_save)
    with caplog.at_level(logging.WARNING, logger="facial_keypoints"):
        crops = FaceCrops(records, root, cache_dir=tmp_path / "cache", progress=False).crops
    assert np.array_equal(crops, expected) and list((tmp_path / "cache").iterdir()) == []
    assert any("No space left on device" in m for m in caplog.messages)


def test_lists_on_a_full_disk_keep_the_old_ones_together(synthetic_root, small_disk):
    root, _ = synthetic_root
    make_lists(root, small_disk)
    before = {p.name: p.read_bytes() for p in small_disk.iterdir()}
    with open(small_disk / "filler", "wb", buffering=0) as filler:  # fill the disk to the last block
        try:
            while True:
                filler.write(bytes(1024))
        except OSError:
            pass
    gen = load_script("stage1", "gen_train_test")
    try:
        code = gen.main(["--data-root", str(root), "--out-dir", str(small_disk), "--seed", "5"])
    except OSError as error:
        assert error.errno == errno.ENOSPC
    else:
        assert code == 2
    assert {p.name: p.read_bytes() for p in small_disk.iterdir() if p.name != "filler"} == before
    assert no_temporaries(small_disk) == []


# C ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [
    ["--max-iou", "nan"], ["--max-iou", "0"], ["--max-iou", "1.5"], ["--max-iou", "inf"],
    ["--expand-ratio", "-1"], ["--expand-ratio", "nan"], ["--expand-ratio", "inf"],
    ["--per-photo", "-3"], ["--per-photo", "0"],
    ["--size-spread", "0", "1"], ["--size-spread", "2", "1"], ["--size-spread", "0.5", "nan"],
    ["--size-spread", "-1", "2"], ["--seed", "-1"], ["--verify", "-2"],
])
def test_not_face_generate_refuses_numbers_no_draw_can_use(synthetic_root, tmp_path, capsys, flags):
    root, _ = synthetic_root
    out = tmp_path / "not_faces.txt"
    out.write_text("old list\n")
    script = load_script("stage3", "not_face_generate")
    with pytest.raises(SystemExit) as stop:
        script.main(["--data-root", str(root), "--out", str(out), *flags])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"argument {flags[0]}" in err.strip().splitlines()[-1]
    assert out.read_text() == "old list\n"


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_stage3_lists_refuse_a_non_face_ratio_no_draw_can_use(synthetic_root, tmp_path, capsys, value):
    root, _ = synthetic_root
    gen = load_script("stage3", "gen_train_test")
    with pytest.raises(SystemExit) as stop:
        gen.main(["--data-root", str(root), "--out-dir", str(tmp_path / "lists"), "--non-faces-per-face", value])
    assert stop.value.code == 2 and "argument --non-faces-per-face" in capsys.readouterr().err
    assert not (tmp_path / "lists").exists()


def test_not_face_generate_never_writes_an_empty_list_over_the_old_one(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "I").mkdir(parents=True)
    Image.fromarray(np.full((100, 100), 90, np.uint8)).save(root / "I" / "a.png")
    points = np.full((21, 2), 50.0)
    (root / "I" / "label.txt").write_text(label_line("a.png", (0, 0, 100, 100), points) + "\n")
    out = tmp_path / "not_faces.txt"
    out.write_text("old list\n")
    script = load_script("stage3", "not_face_generate")
    # the face fills the photo: every square 90 px or more overlaps it too much
    assert script.main(["--data-root", str(root), "--out", str(out), "--size-spread", "0.9", "1"]) == 2
    assert "was not written" in capsys.readouterr().err and out.read_text() == "old list\n"


# D ------------------------------------------------------------------------------------------------
def test_duplicate_label_lines_count_once_and_are_named(synthetic_root, caplog):
    root, faces = synthetic_root
    path = root / "I" / "label.txt"
    lines = path.read_bytes().decode().splitlines()
    # the same photo and labels, written differently: still the same face
    lines.append(" ".join(lines[0].split()[:1] + [f"{float(v):.4f}" for v in lines[0].split()[1:]]) + "  ")
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    stats = ParseStats()
    with caplog.at_level(logging.WARNING, logger="facial_keypoints"):
        records = records_from_labels(root, 0.25, stats=stats)
    assert len(records) == len(faces) and stats["faces"] == len(faces) and stats["duplicate_lines"] == 1
    assert "duplicate_lines: 1" in stats.summary()
    assert any(str(path) in message and "line 7 (= 1)" in message for message in caplog.messages)


def test_evaluate_counts_a_duplicated_face_once(synthetic_root, tmp_path):
    root, faces = synthetic_root
    path = root / "II" / "label.txt"
    lines = path.read_bytes().decode().splitlines()
    path.write_bytes(("\r\n".join(lines + lines[:2]) + "\r\n").encode())
    result = subprocess.run([sys.executable, "-m", "facial_keypoints", "evaluate", "--data", str(root),
                             "--out", str(tmp_path / "eval"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["faces"] == len(faces) and summary["label_counts"]["duplicate_lines"] == 2
    assert f"{path}: 2 line(s) repeat an earlier line" in result.stderr


# E ------------------------------------------------------------------------------------------------
def test_a_byte_that_is_not_utf8_in_a_label_file_names_the_file_and_line(synthetic_root, tmp_path, capsys):
    root, faces = synthetic_root
    path = root / "II" / "label.txt"
    lines = path.read_bytes().split(b"\r\n")
    lines[2] = lines[2].replace(b".png", b"\xe9.png", 1)  # a Latin-1 name
    path.write_bytes(b"\r\n".join(lines))
    with pytest.raises(LabelError, match=rf"^{path}:3: not UTF-8 text: byte 0xe9"):
        read_labels(root)
    stats = ParseStats()
    assert len(read_labels(root, skip_bad=True, stats=stats)) == len(faces) - 1 and stats["skipped_malformed"] == 1
    gen = load_script("stage1", "gen_train_test")
    assert gen.main(["--data-root", str(root), "--out-dir", str(tmp_path / "lists")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: not UTF-8" in err and len(err.strip().splitlines()) == 1
    copies = load_script("stage2", "data_augmentation")  # stage 2's colour copies read label.txt too
    assert copies.main(["--data-root", str(root), "--out", str(tmp_path / "augmented")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: not UTF-8" in err and len(err.strip().splitlines()) == 1


def test_a_byte_that_is_not_utf8_in_a_list_names_the_file_and_line(synthetic_root, tmp_path):
    root, _ = synthetic_root
    train_list = make_lists(root, tmp_path / "lists")
    lines = train_list.read_bytes().split(b"\n")
    lines[1] = b"\xff" + lines[1]
    train_list.write_bytes(b"\n".join(lines))
    with pytest.raises(LabelError, match=rf"^{train_list}:2: not UTF-8 text: byte 0xff at column 1"):
        read_list(train_list)


@pytest.mark.parametrize("text", [b"{not json", b'{"photo_sizes": {"I/i000.png": "wide"}}', b'{"a": "\xff"}'])
def test_a_broken_lists_json_beside_a_list_is_named(synthetic_root, tmp_path, text):
    root, _ = synthetic_root
    train_list = make_lists(root, tmp_path / "lists")
    (tmp_path / "lists" / "lists.json").write_bytes(text)
    with pytest.raises(LabelError, match="lists.json"):
        read_list(train_list)
