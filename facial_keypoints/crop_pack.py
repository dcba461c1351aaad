"""Crop packs: a list's decoded crops in one compressed file, to train where the photos are not.

A pack holds the crops of one list, aligned with its lines, and a digest of the
(image, box) pairs they were cut from; ``read_pack`` refuses a pack made from
another list, so a stale pack cannot silently train on the wrong faces.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .atomic import atomic_output
from .cache import load_crops


class CropPackError(ValueError):
    pass


def records_digest(records) -> str:
    items = [[r.image, [round(float(v), 3) for v in r.box]] for r in records]
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()


def write_pack(path, records, data_root, size: int, cache_dir=None, progress: bool = True) -> Path:
    crops = load_crops([(r.image, r.box) for r in records], data_root, size, cache_dir,
                       sources=[r.source for r in records], progress=progress)
    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "wb") as out:
        np.savez_compressed(out, crops=crops, digest=np.array(records_digest(records)))
    return path


def read_pack(path, records, size: int) -> np.ndarray:
    try:
        with np.load(path) as pack:
            crops, digest = pack["crops"], str(pack["digest"])
    except (OSError, KeyError, ValueError) as error:
        raise CropPackError(f"{path}: not a crop pack ({error})") from error
    if digest != records_digest(records) or crops.shape[1:] != (size, size):
        raise CropPackError(f"{path} was packed from another list (or crop size); run --phase pack again")
    return crops
