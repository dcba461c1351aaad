import numpy as np
import pytest

from facial_keypoints.labels import ListRecord
from facial_keypoints.lists import split_by_photo


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
