"""The trainer's datasets: a list split by photo into training and validation, from the photos or
a crop pack, with ``--extra-list`` crops that train the face/non-face decision only."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from facial_keypoints.data.dataset import FaceCrops
from facial_keypoints.data.list_files import read_list
from facial_keypoints.data.lists import split_by_photo
from facial_keypoints.data.transforms import eval_transform
from facial_keypoints.training.crop_pack import read_pack

log = logging.getLogger("facial_keypoints")


def list_settings(list_path: Path) -> dict:
    """What gen_train_test.py wrote beside the lists (the expansion ratio, mostly)."""
    meta = Path(list_path).with_name("lists.json")
    return json.loads(meta.read_text()) if meta.is_file() else {}


def extra_records(extra_list: Path | None, train_photos: set) -> tuple[list, list]:
    """(the extra list's records, the rows kept): those of the training split's photos only, so
    neither a validation nor a test photo enters training through it."""
    if extra_list is None:
        return [], []
    records = read_list(extra_list)
    keep = [n for n, r in enumerate(records) if r.image in train_photos]
    log.info("%s: %d of %d lines added (keypoints not trained), %d of other photos dropped",
             extra_list, len(keep), len(records), len(records) - len(keep))
    return records, keep


def training_sets(train_list: Path, data_root, config: dict, *, val_fraction: float, split_seed: int,
                  train_transform, cache_dir=None, crops: Path | None = None, extra_list: Path | None = None,
                  extra_crops: Path | None = None, progress: bool = True) -> tuple[FaceCrops, FaceCrops]:
    """(training set, validation set): ``val_fraction`` of the list's photos held apart, seeded.

    ``crops``: take the crops from this pack instead of the photos (``data_root`` may then be None).
    """
    records = read_list(train_list)
    train, val = split_by_photo(records, val_fraction, split_seed, flag="--val-fraction")
    size = config["input_size"]
    common = dict(data_root=data_root, size=size, cache_dir=cache_dir, progress=progress)
    extra, keep = extra_records(extra_list, {r.image for r in train})
    train_crops = val_crops = None
    if crops is not None:
        packed = read_pack(crops, records, size)
        row = {id(record): n for n, record in enumerate(records)}
        train_crops = packed[[row[id(r)] for r in train]]
        val_crops = packed[[row[id(r)] for r in val]]
        if keep:
            if extra_crops is None:
                raise ValueError("--crops with --extra-list needs --extra-crops (the extra list's pack)")
            train_crops = np.concatenate([train_crops, read_pack(extra_crops, extra, size)[keep]])
    kept = [extra[n] for n in keep]
    labelled = np.r_[np.ones(len(train), dtype=bool), np.zeros(len(kept), dtype=bool)]
    return (FaceCrops(train + kept, transform=train_transform, crops=train_crops, keypoint_labelled=labelled,
                      **common),
            FaceCrops(val, transform=eval_transform(config["normalize"]), crops=val_crops, **common))
