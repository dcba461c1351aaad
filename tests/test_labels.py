import numpy as np
import pytest

from facial_keypoints.data.labels import LabelError, ParseStats, parse_label_line, read_label_file
from facial_keypoints.data.list_files import ListRecord, format_list_line, parse_list_line, read_list, write_list
from facial_keypoints.data.lists import face_records

from conftest import label_line

BOX = (10, 20, 110, 140)
POINTS = np.arange(42, dtype=float).reshape(21, 2) + 30


def test_parse_label_line_reads_box_and_points():
    face = parse_label_line(label_line("a.jpg", BOX, POINTS) + "\r\n", "label.txt:1", "I")
    assert face.image == "I/a.jpg"
    np.testing.assert_allclose(face.box, BOX)
    np.testing.assert_allclose(face.keypoints, POINTS)


@pytest.mark.parametrize("line, message", [
    ("a.jpg 1 2 3", "expected 47 fields"),
    (label_line("a.jpg", BOX, POINTS).replace("30.000", "3O.0", 1), "not a number: '3O.0'"),
    (label_line("a.jpg", (50, 20, 40, 140), POINTS), "empty box"),
    (label_line("a.jpg", (10, 20, 110, 20), POINTS), "empty box"),
    (label_line("a.jpg", BOX, POINTS).replace("30.000", "nan", 1), "non-finite"),
])
def test_malformed_label_lines_name_file_and_line(line, message):
    with pytest.raises(LabelError, match=message) as info:
        parse_label_line(line, "data/I/label.txt:7")
    assert str(info.value).startswith("data/I/label.txt:7: ")


def write_labels(path, lines, newline="\r\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + newline).encode())


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_read_label_file_crlf_and_lf(tmp_path, newline):
    write_labels(tmp_path / "I" / "label.txt", [label_line("a.jpg", BOX, POINTS), label_line("b.jpg", BOX, POINTS)],
                 newline)
    faces = read_label_file(tmp_path / "I" / "label.txt", tmp_path)
    assert [f.image for f in faces] == ["I/a.jpg", "I/b.jpg"]
    assert faces[1].source.endswith("label.txt:2")


def test_bad_line_stops_with_line_number_or_is_counted_when_skipping(tmp_path):
    lines = [label_line("a.jpg", BOX, POINTS), "b.jpg 1 2 3", label_line("c.jpg", BOX, POINTS)]
    write_labels(tmp_path / "I" / "label.txt", lines)
    with pytest.raises(LabelError, match=r"label.txt:2: expected 47 fields"):
        read_label_file(tmp_path / "I" / "label.txt", tmp_path)
    stats = ParseStats()
    faces = read_label_file(tmp_path / "I" / "label.txt", tmp_path, skip_bad=True, stats=stats)
    assert [f.image for f in faces] == ["I/a.jpg", "I/c.jpg"]
    assert stats["skipped_malformed"] == 1 and stats["lines"] == 3


def test_negative_coordinates_clamped_or_dropped_and_counted(tmp_path):
    negative = POINTS.copy()
    negative[3] = (-1.5, 40)
    write_labels(tmp_path / "I" / "label.txt",
                 [label_line("a.jpg", (-2, 20, 110, 140), POINTS), label_line("b.jpg", BOX, negative),
                  label_line("c.jpg", BOX, POINTS)])
    stats = ParseStats()
    faces = read_label_file(tmp_path / "I" / "label.txt", tmp_path, negative="clamp", stats=stats)
    assert len(faces) == 3 and stats["clamped_negative"] == 2
    assert faces[0].box[0] == 0 and tuple(faces[1].keypoints[3]) == (0, 40)
    stats = ParseStats()
    faces = read_label_file(tmp_path / "I" / "label.txt", tmp_path, negative="drop", stats=stats)
    assert [f.image for f in faces] == ["I/c.jpg"] and stats["dropped_negative"] == 2


def test_list_lines_round_trip_all_three_forms(tmp_path):
    face = ListRecord("I/a.jpg", np.array([1.0, 2, 101, 122]), POINTS - 5)
    stage3_face = ListRecord("I/a.jpg", np.array([1.0, 2, 101, 122]), POINTS - 5, label=1)
    non_face = ListRecord("II/b.jpg", np.array([0.0, 0, 50, 50]), None, label=0)
    write_list(tmp_path / "l.txt", [face, stage3_face, non_face])
    back = read_list(tmp_path / "l.txt")
    assert [r.label for r in back] == [None, 1, 0]
    assert [len(format_list_line(r).split()) for r in back] == [47, 48, 6]
    np.testing.assert_allclose(back[0].keypoints, face.keypoints, atol=1e-3)
    assert back[2].keypoints is None and not back[2].is_face
    assert back[1].source.endswith("l.txt:2")


@pytest.mark.parametrize("line", ["a.jpg 1 2 3 4 1", "a.jpg 1 2 3", "a.jpg 5 2 3 4 0"])
def test_bad_list_lines(line):
    with pytest.raises(LabelError, match="train.txt:3"):
        parse_list_line(line, "train.txt:3")


def test_missing_image_names_the_label_line(tmp_path):
    write_labels(tmp_path / "I" / "label.txt", [label_line("nope.jpg", BOX, POINTS)])
    faces = read_label_file(tmp_path / "I" / "label.txt", tmp_path)
    with pytest.raises(LabelError, match=r"label.txt:1: image not found"):
        face_records(faces, tmp_path, 0.25)
    stats = ParseStats()
    assert face_records(faces, tmp_path, 0.25, skip_bad=True, stats=stats) == []
    assert stats["skipped_image_or_box"] == 1


def test_corrupt_image_names_the_label_line(tmp_path):
    write_labels(tmp_path / "I" / "label.txt", [label_line("bad.jpg", BOX, POINTS)])
    (tmp_path / "I" / "bad.jpg").write_bytes(b"this is not a jpeg")
    faces = read_label_file(tmp_path / "I" / "label.txt", tmp_path)
    with pytest.raises(LabelError, match=r"label.txt:1: cannot read image"):
        face_records(faces, tmp_path, 0.25)
