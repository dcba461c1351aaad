"""List files (SPEC section 2): one crop per line, ``image x1 y1 x2 y2 [21 points] [label]``, with the
photos' sizes kept beside the lists (``lists.json``) so that a photo replaced since is refused."""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facial_keypoints.atomic import atomic_output
from facial_keypoints.data.labels import LabelError, check_box, decode_line, parse_floats, read_labels, text_lines
from facial_keypoints.keypoints import NUM_POINTS


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
    values = parse_floats(fields[1:], source)
    box = values[:4]
    check_box(box, source)
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
    text = decode_line(meta.read_bytes(), str(meta))
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
