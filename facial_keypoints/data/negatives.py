"""Non-face crops for stage 3: boxes from the same photos whose IoU with every labelled face is below a threshold."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from facial_keypoints.geometry import BoxError, covered, expand_box, iou
from facial_keypoints.data.images import image_size
from facial_keypoints.data.list_files import ListRecord


def sample_non_faces(faces: list[tuple[str, np.ndarray]], data_root, *, per_photo, ratio: float, max_iou: float = 0.3,
                     seed: int = 1, size_spread: tuple[float, float] = (0.5, 1.5), tries: int = 50,
                     max_cover: float = 0.5,
                     stats=None) -> list[ListRecord]:
    """``per_photo`` non-face list records for each photo of ``faces`` (fewer where the photo has no room).

    ``faces`` are (image path relative to the data root, labelled face box) pairs.
    ``per_photo`` is a count, or a function of the number of faces in the photo.

    Each candidate is a face-sized square — a labelled face's size of that photo
    times a factor drawn log-uniformly from ``size_spread`` — placed uniformly in
    the photo and kept when its IoU with every labelled face box is below
    ``max_iou`` and it covers at most ``max_cover`` of any face (a crop twice a
    face's size holding the whole face has IoU 0.25, yet it is a face).  The record's box is that square expanded by ``ratio`` like a
    face box, so faces and non-faces are cropped alike.  Seeded per photo, so one
    photo's crops do not depend on the others.
    """
    by_photo = defaultdict(list)
    for image, box in faces:
        by_photo[image].append(np.asarray(box, dtype=np.float64))
    records = []
    for photo in sorted(by_photo):
        photo_faces = by_photo[photo]
        rng = np.random.default_rng([seed, _stable_hash(photo)])
        width, height = image_size(Path(data_root) / photo)
        boxes = np.stack(photo_faces)
        sizes = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        wanted = per_photo(len(photo_faces)) if callable(per_photo) else int(per_photo)
        found = 0
        for _ in range(wanted * tries):
            if found == wanted:
                break
            side = float(rng.choice(sizes)) * float(np.exp(rng.uniform(*np.log(size_spread))))
            side = min(side, width, height)
            if side < 8:
                continue
            x1, y1 = rng.uniform(0, width - side), rng.uniform(0, height - side)
            square = np.array([x1, y1, x1 + side, y1 + side])
            if iou(square, boxes).max() >= max_iou or covered(square, boxes).max() > max_cover:
                continue
            try:
                box = expand_box(square, ratio, width, height)
            except BoxError:
                continue
            records.append(ListRecord(image=photo, box=box, keypoints=None, label=0,
                                      source=f"non-face {found} of {photo}", face_box=square))
            found += 1
        if stats is not None:
            stats.add("non_faces", found)
            if found < wanted:
                stats.add("photos_short_of_non_faces")
    return records


def _stable_hash(text: str) -> int:
    """A hash that does not change between runs (Python's hash() of str does)."""
    value = 0
    for byte in text.encode():
        value = (value * 131 + byte) % (2 ** 31)
    return value
