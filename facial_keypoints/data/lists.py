"""From labelled faces to train/test list records: expand the box, make points relative, split by photo."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facial_keypoints.geometry import BoxError, expand_box
from facial_keypoints.data.images import ImageError, image_size, load_gray
from facial_keypoints.data.labels import OUTSIDE_MARGIN, FaceLabel, LabelError, ParseStats, read_labels
from facial_keypoints.data.list_files import ListRecord


def check_in_photo(face: FaceLabel, width: int, height: int) -> None:
    """A LabelError naming the line when the face's box or a point lies further outside its photo
    than ``OUTSIDE_MARGIN`` of the box's longer side allows: a typo, not a face at the edge."""
    side = float(max(face.box[2] - face.box[0], face.box[3] - face.box[1]))
    margin = OUTSIDE_MARGIN * side
    xs = np.concatenate([face.box[[0, 2]], face.keypoints[:, 0]])
    ys = np.concatenate([face.box[[1, 3]], face.keypoints[:, 1]])
    if xs.min() < -margin or ys.min() < -margin or xs.max() > width + margin or ys.max() > height + margin:
        raise LabelError(face.source, f"a box edge or point lies outside the {width}x{height} photo by more than "
                                      f"half the face box ({side:.0f} px): box {face.box.tolist()}, points from "
                                      f"({xs.min():g}, {ys.min():g}) to ({xs.max():g}, {ys.max():g})")


def face_records(faces: list[FaceLabel], data_root, ratio: float, *, skip_bad: bool = False,
                 stats: ParseStats | None = None) -> list[ListRecord]:
    """Expanded-box list records for labelled faces.

    A missing/unreadable photo, or a box or point outside its photo (``check_in_photo``), raises an
    error naming the label line, or with ``skip_bad`` is counted and left out.
    """
    stats = stats if stats is not None else ParseStats()
    sizes: dict[str, tuple[int, int] | ImageError] = {}
    records = []
    for face in faces:
        if face.image not in sizes:
            try:
                sizes[face.image] = image_size(Path(data_root) / face.image)
            except ImageError as error:
                sizes[face.image] = error
        size = sizes[face.image]
        try:
            if isinstance(size, ImageError):
                raise LabelError(face.source, str(size))
            check_in_photo(face, *size)
            try:
                box = expand_box(face.box, ratio, *size)
            except BoxError as error:
                raise LabelError(face.source, str(error)) from None
        except LabelError:
            if not skip_bad:
                raise
            stats.add("skipped_image_or_box")
            continue
        records.append(ListRecord(image=face.image, box=box, keypoints=face.keypoints - box[:2],
                                  source=face.source, face_box=face.box, photo_size=tuple(size)))
    stats.add("faces", len(records))
    return records


def photo_size_problem(photo, size, recorded=None, box=None) -> str | None:
    """Why a list's crop cannot be cut from ``photo``, which is ``size`` (width, height) now; None if it can.

    Not the size ``recorded`` when the list was made, or ``box`` beyond its edges: the photo was
    replaced since, and the list's boxes no longer frame its faces (a larger copy would be cropped
    silently in the wrong places, a smaller one fails in PIL naming no photo).
    """
    width, height = size
    if recorded is not None and (width, height) != tuple(recorded):
        return (f"{photo} is {width}x{height} pixels, not the {recorded[0]}x{recorded[1]} recorded when the list "
                "was made (lists.json): the photo was replaced since; make the lists again (gen_train_test.py)")
    if box is not None and (box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height):
        return (f"the box {[round(float(v), 3) for v in box]} does not fit in {photo}, which is {width}x{height} "
                "pixels: was the photo replaced after the list was made? Make the lists again (gen_train_test.py)")
    return None


def check_photo_size(record: ListRecord, size, photo=None) -> None:
    """A LabelError naming the record's list line when its photo, ``size`` (width, height) now,
    cannot give its crop (``photo_size_problem``)."""
    problem = photo_size_problem(photo or record.image, size, record.photo_size, record.box)
    if problem:
        raise LabelError(record.source or str(photo or record.image), problem)


def recorded_sizes(records) -> dict[str, tuple[int, int]]:
    """{photo: (width, height) when its list was made} for the records that know it."""
    return {r.image: tuple(r.photo_size) for r in records if r.photo_size is not None}


def blank_faces(faces, data_root, box_of=lambda face: face.face_box, unreadable: list | None = None) -> list:
    """The faces whose labelled box is one flat grey value: no picture, so no face.

    I/000421.jpg has a label inside a privacy blackout (every pixel of its box is 0).
    A face/non-face list that calls it a face asks the classifier to call flat
    patches faces, and its keypoints are guesses at nothing.  The next flattest
    labelled face of the 2,595 spans 22 grey levels, so "one value" needs no
    threshold.  ``faces``: list records (face lines) or ``FaceLabel``s with
    ``box_of=lambda f: f.box``; non-faces and records without a box are not checked.
    Each photo is decoded once.  A photo that cannot be decoded raises a LabelError
    naming its first label line, or with ``unreadable`` (a list) adds its faces there.
    """
    by_photo: dict[str, list] = {}
    for face in faces:
        if getattr(face, "is_face", True) and box_of(face) is not None:
            by_photo.setdefault(face.image, []).append(face)
    blank = []
    for photo, photo_faces in by_photo.items():
        try:
            image = load_gray(Path(data_root) / photo)[0]
        except ImageError as error:
            if unreadable is None:
                raise LabelError(getattr(photo_faces[0], "source", photo), str(error)) from None
            unreadable.extend(photo_faces)
            continue
        for face in photo_faces:
            x1, y1, x2, y2 = (int(round(v)) for v in box_of(face))
            low, high = image.crop((max(x1, 0), max(y1, 0), max(x2, 1), max(y2, 1))).getextrema()
            if low == high:
                blank.append(face)
    return blank


def photo_of(image: str) -> str:
    """The photo an image path belongs to; augmented copies map to their original (see stage 2)."""
    return image


def split_by_photo(records: list[ListRecord], test_fraction: float, seed: int, photo_key=photo_of,
                   flag: str = "--test-fraction"):
    """Split into (train, test) so that no photo (with all its faces and copies) is on both sides.
    ``flag`` names the setting ``test_fraction`` came from, for the error message."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"{flag} must lie strictly between 0 and 1, not {test_fraction:g}")
    photos = sorted({photo_key(r.image) for r in records})
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(photos))
    n_test = max(1, int(round(test_fraction * len(photos))))
    test_photos = {photos[i] for i in order[:n_test]}
    train = [r for r in records if photo_key(r.image) not in test_photos]
    test = [r for r in records if photo_key(r.image) in test_photos]
    return train, test


def resolve_data_root(flag: str | None) -> Path:
    """--data-root, else $FKD_DATA_ROOT, else data/."""
    root = Path(flag or os.environ.get("FKD_DATA_ROOT") or "data")
    if not root.is_dir():
        raise FileNotFoundError(
            f"data root {root} not found: pass --data-root or set FKD_DATA_ROOT (see data/README.md)")
    return root


def records_from_labels(data_dir, ratio: float, *, skip_bad: bool = False, negative: str = "clamp",
                        stats: ParseStats | None = None):
    """List records (with their labelled boxes) for every face of every label.txt below ``data_dir``."""
    stats = stats if stats is not None else ParseStats()
    faces = read_labels(data_dir, negative=negative, skip_bad=skip_bad, stats=stats)
    return face_records(faces, data_dir, ratio, skip_bad=skip_bad, stats=stats)
