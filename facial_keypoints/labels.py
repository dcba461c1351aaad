"""Parsers for the two text formats the project reads, and nothing else.

* ``label.txt``  (the data set):  ``IMAGE x1 y1 x2 y2 px1 py1 ... px21 py21``,
  all in pixels of the original image, image names relative to the file's folder.
* list files (``train.txt``/``test.txt``, written by ``gen_train_test.py``):
  ``IMAGE_PATH bx1 by1 bx2 by2 [42 coordinates relative to the box] [class]``
  with the image path relative to the data root.  A stage-1/2 line has 47
  fields; a stage-3 face line ends in ``1`` (48 fields) and a non-face line is
  ``IMAGE_PATH box 0`` (6 fields).

Every error names the file and line (``path:line: what is wrong``).  CRLF and LF
line endings both work.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .keypoints import NUM_POINTS

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
    # universal newlines (CRLF and LF); utf-8-sig drops a byte-order mark, which would otherwise
    # become part of the first image's name
    with open(path, encoding="utf-8-sig", newline=None) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            lines += 1
            stats.add("lines")
            source = f"{path}:{number}"
            try:
                face = apply_negative_policy(parse_label_line(line, source, prefix), negative, stats)
            except LabelError:
                if not skip_bad:
                    raise
                stats.add("skipped_malformed")
                continue
            if face is not None:
                faces.append(face)
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
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"list file not found: {path} (run gen_train_test.py first)")
    records = []
    with open(path, encoding="utf-8-sig", newline=None) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                records.append(parse_list_line(line, f"{path}:{number}"))
    if not records:
        raise LabelError(str(path), "the list is empty")
    return records


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


def write_list(path: str | os.PathLike, records: list[ListRecord]) -> None:
    """Write a list file atomically (write to a temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(format_list_line(record) + "\n")
    os.replace(tmp, path)


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
