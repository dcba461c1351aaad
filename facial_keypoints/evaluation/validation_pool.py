"""Labelled crops of the validation photos beyond the list's own, for judging face/non-face decisions.

A good model gets every one of the list's 360 validation crops right, while models differ on the
test list by one to three crops of ~478.  These pools are some times larger, seeded, and never
written to a list (benchmarks/validation.py reports on them):

- ``POOL``: non-faces drawn as the lists draw them, 20 per validation face, and 5 copies of
  each face crop shifted and scaled a little, as a detector frames a face;
- ``HARD_POOL``: the same non-faces and 20 copies of each face shifted by up to 15 % and
  scaled by up to 25 %, so that faces as borderline as the test list's hardest appear.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facial_keypoints.runtime.face_detectors import adjust_boxes
from facial_keypoints.data.images import image_size
from facial_keypoints.data.list_files import ListRecord
from facial_keypoints.data.negatives import sample_non_faces

POOL = {"non_faces_per_face": 20, "jitters": 5, "shift": 0.05, "scale": 0.1}
HARD_POOL = {"non_faces_per_face": 20, "jitters": 20, "shift": 0.15, "scale": 0.25}


def classifier_pool(val, labels_by_photo, root, expand_ratio: float, non_faces_per_face: int, jitters: int,
                    seed: int = 2, shift: float = 0.05, scale: float = 0.1) -> list[ListRecord]:
    """Non-faces and jittered faces of the validation photos of ``val`` (list records).

    Non-faces: ``sample_non_faces`` as stage3/gen_train_test.py calls it, ``non_faces_per_face``
    times as many per photo and another seed.  Faces: ``jitters`` copies of each validation face
    crop, shifted by up to ``shift`` of its side and scaled by up to 1 ± ``scale``; keypoints follow.
    The non-faces depend on the seed only, so two pools with the same seed share them.
    """
    photos = sorted({r.image for r in val})
    labelled = [(face.image, face.box) for photo in photos for face in labels_by_photo[photo]]
    pool = sample_non_faces(labelled, root, per_photo=lambda n: non_faces_per_face * n, ratio=expand_ratio,
                            seed=seed)
    rng = np.random.default_rng(seed)
    for record in (r for r in val if r.is_face):
        width, height = image_size(Path(root) / record.image)
        kept = 0
        for _ in range(jitters * 20):  # the lists' crops lie inside their photos; so do these
            if kept == jitters:
                break
            shift_x, shift_y = rng.uniform(-shift, shift, 2)
            factor = np.exp(rng.uniform(np.log(1 - scale), np.log(1 + scale)))
            box = adjust_boxes(record.box, shift_x, shift_y, factor, factor)[0]
            if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
                continue
            kept += 1
            pool.append(ListRecord(image=record.image, box=box, keypoints=record.absolute_keypoints() - box[:2],
                                   label=1, source=f"jittered {record.source}", face_box=record.face_box))
    return pool
