"""The data set's ``label.txt`` files: ``IMAGE x1 y1 x2 y2 px1 py1 ... px21 py21``, all in pixels of the
original image, image names relative to the file's folder (SPEC section 1).

Every error names the file and line (``path:line: what is wrong``), bytes that are not UTF-8
included; CRLF and LF line endings both work. A line that repeats an earlier one is counted once.
The list files made from these are ``list_files``.
"""
from __future__ import annotations

import codecs
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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


def decode_line(raw: bytes, source: str) -> str:
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
        yield source, decode_line(raw, source)


def parse_floats(fields: list[str], source: str) -> np.ndarray:
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


def check_box(box: np.ndarray, source: str) -> None:
    if box[2] <= box[0] or box[3] <= box[1]:
        raise LabelError(source, f"empty box: x2 <= x1 or y2 <= y1 in {box.tolist()}")


def parse_label_line(line: str, source: str, image_prefix: str = "") -> FaceLabel:
    """Parse one ``label.txt`` line; raises LabelError with ``source`` in the message."""
    fields = line.split()
    if len(fields) != LABEL_FIELDS:
        raise LabelError(source, f"expected {LABEL_FIELDS} fields (image, box, 21 points), got {len(fields)}")
    values = parse_floats(fields[1:], source)
    box = values[:4]
    check_box(box, source)
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
    check_box(face.box, face.source)
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
            line = decode_line(raw, source)
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


