"""Parsers for the two text formats the project reads, and nothing else.

* ``label.txt``  (the data set):  ``IMAGE x1 y1 x2 y2 px1 py1 ... px21 py21``,
  all in pixels of the original image, image names relative to the file's folder.
* list files (``train.txt``/``test.txt``, written by ``gen_train_test.py``):
  ``IMAGE_PATH bx1 by1 bx2 by2 [42 coordinates relative to the box] [class]``
  with the image path relative to the data root.  A stage-1/2 line has 47
  fields; a stage-3 face line ends in ``1`` (48 fields) and a non-face line is
  ``IMAGE_PATH box 0`` (6 fields).

Every error names the file and line (``path:line: what is wrong``).  CRLF and LF
line endings both work.  ``lists.json`` beside a list may record each photo's
size when the list was made (``photo_sizes``), so that a photo replaced since is
refused instead of cropped with boxes that no longer frame its faces.
"""
from __future__ import annotations

import codecs
import json
import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facial_keypoints.atomic import atomic_output
from facial_keypoints.keypoints import NUM_POINTS

log = logging.getLogger("facial_keypoints")

LABEL_FIELDS = 1 + 4 + 2 * NUM_POINTS


class LabelError(ValueError):
    """A line that cannot be used; the message starts with ``file:line:``."""

    def __init__(self, source: str, message: str):
        super().__init__(f"{source}: {message}")
        self.source = source


@dataclass
class FaceLabel:
    """One labelled face of ``label.txt``, in original-image pixels."""
    image: str                 # path relative to the data root, '/'-separated
    box: np.ndarray            # (4,) x1 y1 x2 y2
    keypoints: np.ndarray      # (21, 2) x, y
    source: str = ""           # "label.txt:LINE" for error messages


@dataclass
class ListRecord:
    """One line of a list file: a crop box and, for faces, keypoints relative to it."""
    image: str                 # path relative to the data root
    box: np.ndarray            # (4,) crop box in original-image pixels
    keypoints: np.ndarray | None  # (21, 2) relative to box; None for a non-face
    label: int | None = None   # 1 face / 0 non-face (stage 3); None in stage-1/2 lists
    source: str = ""
    face_box: np.ndarray | None = None  # the labelled box, when known (not written to lists)
    photo_size: tuple[int, int] | None = None  # the photo's (width, height) when the list was made, if recorded

    @property
    def is_face(self) -> bool:
        return self.keypoints is not None

    def absolute_keypoints(self) -> np.ndarray:
        return self.keypoints + self.box[:2]


@dataclass
class ParseStats:
    """What happened to the lines read, reported by every script that reads labels."""
    counts: Counter = field(default_factory=Counter)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def __getitem__(self, key: str) -> int:
        return self.counts[key]

    def summary(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items()))


def _numbered_lines(path: Path):
    """(line number, raw bytes) of a text file: CRLF, LF and CR line ends, a byte-order mark dropped
    (it would otherwise become part of the first image's name)."""
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    return enumerate(data.splitlines(), start=1)


def _decode(raw: bytes, source: str) -> str:
    """A line as text; a byte that is not UTF-8 is a LabelError naming the line (Python's own error names
    neither the file nor the line)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise LabelError(source, f"not UTF-8 text: byte 0x{raw[error.start]:02x} at column {error.start + 1}; "
                                 "save the file as UTF-8") from None


def text_lines(path: str | os.PathLike):
    """(``path:line``, text) of each line of a UTF-8 text file, as ``_numbered_lines`` splits it;
    a byte that is not UTF-8 is a LabelError naming the line."""
    path = Path(path)
    for number, raw in _numbered_lines(path):
        source = f"{path}:{number}"
        yield source, _decode(raw, source)


def _floats(fields: list[str], source: str) -> np.ndarray:
    try:
        values = np.array([float(f) for f in fields], dtype=np.float64)
    except ValueError:
        bad = next(f for f in fields if not _is_float(f))
        raise LabelError(source, f"not a number: {bad!r}") from None
    if not np.all(np.isfinite(values)):
        raise LabelError(source, "non-finite coordinate (nan or inf)")
    return values


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _check_box(box: np.ndarray, source: str) -> None:
    if box[2] <= box[0] or box[3] <= box[1]:
        raise LabelError(source, f"empty box: x2 <= x1 or y2 <= y1 in {box.tolist()}")


def parse_label_line(line: str, source: str, image_prefix: str = "") -> FaceLabel:
    """Parse one ``label.txt`` line; raises LabelError with ``source`` in the message."""
    fields = line.split()
    if len(fields) != LABEL_FIELDS:
        raise LabelError(source, f"expected {LABEL_FIELDS} fields (image, box, 21 points), got {len(fields)}")
    values = _floats(fields[1:], source)
    box = values[:4]
    _check_box(box, source)
    image = f"{image_prefix}/{fields[0]}" if image_prefix else fields[0]
    return FaceLabel(image=image, box=box, keypoints=values[4:].reshape(NUM_POINTS, 2), source=source)


# How far outside its photo a label may reach, as a share of its box's longer side: faces cut by the
# photo's edge have boxes and points beyond it (up to 0.43 of the box in this data set).
OUTSIDE_MARGIN = 0.5


def apply_negative_policy(face: FaceLabel, policy: str, stats: ParseStats) -> FaceLabel | None:
    """Slightly negative coordinates (a point just outside the image): clamp to 0 or drop the face.

    More negative than ``OUTSIDE_MARGIN`` of the box's side is no face at the edge but a wrong
    number: a LabelError naming the line."""
    if policy not in ("clamp", "drop"):
        raise ValueError(f"negative policy must be 'clamp' or 'drop', not {policy!r}")
    if (face.box >= 0).all() and (face.keypoints >= 0).all():
        return face
    side = float(max(face.box[2] - face.box[0], face.box[3] - face.box[1]))
    lowest = float(min(face.box.min(), face.keypoints.min()))
    if lowest < -OUTSIDE_MARGIN * side:
        raise LabelError(face.source, f"coordinate {lowest:g} lies outside the photo by more than half the face box "
                                      f"({side:.0f} px)")
    if policy == "drop":
        stats.add("dropped_negative")
        return None
    stats.add("clamped_negative")
    face.box = np.maximum(face.box, 0.0)
    face.keypoints = np.maximum(face.keypoints, 0.0)
    _check_box(face.box, face.source)
    return face


def read_label_file(path: str | os.PathLike, data_root: str | os.PathLike, *,
                    negative: str = "clamp", skip_bad: bool = False,
                    stats: ParseStats | None = None) -> list[FaceLabel]:
    """Read one ``label.txt``; image paths become relative to ``data_root``.

    A malformed line raises LabelError, or with ``skip_bad`` is counted as
    ``skipped_malformed`` and left out.
    """
    path = Path(path)
    stats = stats if stats is not None else ParseStats()
    prefix = Path(os.path.relpath(path.parent, data_root)).as_posix()
    prefix = "" if prefix == "." else prefix
    faces = []
    lines = 0
    seen: dict[tuple, int] = {}  # (image, numbers) -> the first line that has them
    duplicates = []
    for number, raw in _numbered_lines(path):
        source = f"{path}:{number}"
        try:
            line = _decode(raw, source)
            if not line.strip():
                continue
            lines += 1
            stats.add("lines")
            face = parse_label_line(line, source, prefix)
            key = (face.image, face.box.tobytes(), face.keypoints.tobytes())
            if key in seen:  # the same face twice would count (and train) twice
                duplicates.append((number, seen[key]))
                stats.add("duplicate_lines")
                continue
            seen[key] = number
            face = apply_negative_policy(face, negative, stats)
        except LabelError:
            if not skip_bad:
                raise
            stats.add("skipped_malformed")
            continue
        if face is not None:
            faces.append(face)
    if duplicates:
        shown = ", ".join(f"{n} (= {first})" for n, first in duplicates[:10])
        more = f" and {len(duplicates) - 10} more" if len(duplicates) > 10 else ""
        log.warning("%s: %d line(s) repeat an earlier line (the same photo and labels), counted once: line %s%s",
                    path, len(duplicates), shown, more)
    if not lines:
        if not skip_bad:
            raise LabelError(str(path), "no label lines (an empty label.txt)")
        stats.add("skipped_empty_file")
    return faces


def find_label_files(root: str | os.PathLike) -> list[Path]:
    """Every ``label.txt`` below ``root`` (sorted, so runs are reproducible)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    files = sorted(root.rglob("label.txt"))
    if not files:
        raise FileNotFoundError(f"no label.txt found under {root}")
    return files


def read_labels(root: str | os.PathLike, **kwargs) -> list[FaceLabel]:
    """All faces of every ``label.txt`` below ``root``."""
    faces = []
    for path in find_label_files(root):
        faces.extend(read_label_file(path, root, **kwargs))
    return faces


def parse_list_line(line: str, source: str) -> ListRecord:
    """Parse one list line (47 fields; 48 ending in 1 for a face; 6 ending in 0 for a non-face)."""
    fields = line.split()
    n = len(fields)
    if n == 1 + 4 + 2 * NUM_POINTS:
        label = None
    elif n == 2 + 4 + 2 * NUM_POINTS and fields[-1] == "1":
        label, fields = 1, fields[:-1]
    elif n == 6 and fields[-1] == "0":
        label, fields = 0, fields[:-1]
    else:
        raise LabelError(source, f"expected 'path box 42-coordinates [1]' or 'path box 0', got {n} fields")
    values = _floats(fields[1:], source)
    box = values[:4]
    _check_box(box, source)
    keypoints = values[4:].reshape(NUM_POINTS, 2) if len(values) > 4 else None
    return ListRecord(image=fields[0], box=box, keypoints=keypoints, label=label, source=source)


def read_list(path: str | os.PathLike) -> list[ListRecord]:
    """A list's records, each with its photo's size when the list was made where ``lists.json``
    beside the list recorded it (``photo_size``; None for lists made before sizes were recorded)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"list file not found: {path} (run gen_train_test.py first)")
    records = [parse_list_line(line, source) for source, line in text_lines(path) if line.strip()]
    if not records:
        raise LabelError(str(path), "the list is empty")
    sizes = recorded_photo_sizes(path)
    for record in records:
        record.photo_size = sizes.get(record.image)
    return records


def format_photo_size(size) -> str:
    """(width, height) as lists.json's ``photo_sizes`` holds it: ``"640x480"``."""
    return f"{int(size[0])}x{int(size[1])}"


def _parse_size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.split("x"))
    if width < 1 or height < 1:
        raise ValueError(f"not a photo size: {text!r}")
    return width, height


def recorded_photo_sizes(list_path: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """The (width, height) of each photo when the list was made, from ``lists.json`` beside
    ``list_path`` (written by gen_train_test.py); {} where there is none or it records no sizes."""
    meta = Path(list_path).with_name("lists.json")
    if not meta.is_file():
        return {}
    text = _decode(meta.read_bytes(), str(meta))
    try:
        sizes = json.loads(text).get("photo_sizes", {})
        return {str(image): _parse_size(size) for image, size in sizes.items()}
    except (ValueError, AttributeError, TypeError) as error:
        raise LabelError(str(meta), f"not a lists.json as gen_train_test.py writes it "
                                    f"(photo_sizes: {{\"I/1.jpg\": \"640x480\", ...}}): {error}") from None


def _fmt(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_list_line(record: ListRecord) -> str:
    parts = [record.image] + [_fmt(v) for v in record.box]
    if record.keypoints is not None:
        parts += [_fmt(v) for v in record.keypoints.reshape(-1)]
    if record.label is not None:
        parts.append(str(int(record.label)))
    return " ".join(parts)


def format_list(records: list[ListRecord]) -> str:
    """A list file's text: one line per record, LF line ends."""
    return "".join(format_list_line(record) + "\n" for record in records)


def write_list(path: str | os.PathLike, records: list[ListRecord]) -> None:
    """Write a list file whole or not at all: on any error (a full disk) the old file stays and
    the temporary one is removed."""
    with atomic_output(path) as partial:
        partial.write_text(format_list(records), encoding="utf-8", newline="\n")


def attach_face_boxes(records, data_root) -> int:
    """Give list records their labelled face box (lists store only the expanded box).

    Each record is matched to the face of its photo whose keypoints it carries
    (within 0.5 px).  Returns how many were matched; unmatched ones keep None
    and are left out of nme_box only.
    """
    missing = [r for r in records if r.is_face and r.face_box is None]
    if not missing:
        return 0
    try:
        labelled = read_labels(data_root, skip_bad=True)
    except FileNotFoundError:
        return 0
    by_photo = defaultdict(list)
    for face in labelled:
        by_photo[face.image].append(face)
    matched = 0
    for record in missing:
        points = record.absolute_keypoints()
        best = min(by_photo.get(record.image, []), default=None,
                   key=lambda f: np.abs(f.keypoints - points).mean())
        if best is not None and np.abs(best.keypoints - points).mean() < 0.5:
            record.face_box = best.box
            matched += 1
    return matched
