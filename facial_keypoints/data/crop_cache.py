"""Decoded face crops, cached on disk so that epochs never decode the photos again.

The first use of a list decodes each photo once (all of its faces together,
with JPEG draft decoding for big photos) and saves one ``uint8`` array of
shape ``(N, size, size)``.  Later uses, and every epoch, read that array.
The cache key covers the boxes, the crop size and each photo's size and
modification time, so a changed list or photo builds a fresh cache.  Before
decoding, each photo's header is checked against the size recorded when its list
was made and against its boxes (``data.lists.photo_size_problem``): a photo replaced
since is refused, named with its list line, instead of cropped in the wrong places.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from facial_keypoints.atomic import atomic_output
from facial_keypoints.geometry import box_size
from facial_keypoints.data.images import ImageError, crop_resized, image_size, load_gray
from facial_keypoints.data.labels import LabelError
from facial_keypoints.data.lists import photo_size_problem

log = logging.getLogger("facial_keypoints")


def default_cache_dir() -> Path:
    """$FKD_CACHE_DIR, else ~/.cache/facial_keypoints (the home folder is looked up only when needed)."""
    if os.environ.get("FKD_CACHE_DIR"):
        return Path(os.environ["FKD_CACHE_DIR"])
    try:
        return Path.home() / ".cache" / "facial_keypoints"
    except RuntimeError:  # no HOME and no passwd entry
        raise ValueError("no home folder to keep the crop cache in: set FKD_CACHE_DIR") from None


def _crops_of_one_photo(job):
    path, boxes, size = job
    needed = max(float(np.max(size / box_size(box))) for box in boxes)
    image, factor = load_gray(path, needed)
    return [crop_resized(image, box, size, factor) for box in boxes]


def _cache_key(items, data_root: Path, size: int, photo_sizes: dict) -> str:
    """The photos' recorded sizes count where known, so that a cache decoded from a replaced photo
    before sizes were checked is not taken for a checked one."""
    digest = hashlib.sha1()
    digest.update(json.dumps([size, str(data_root.resolve())]).encode())
    stamps = {}
    for image, box in items:
        if image not in stamps:
            try:
                stat = (data_root / image).stat()
                stamps[image] = (stat.st_size, stat.st_mtime_ns)
            except OSError:
                stamps[image] = None
        entry = [image, [round(float(v), 3) for v in box], stamps[image]]
        if image in photo_sizes:
            entry.append(list(photo_sizes[image]))
        digest.update(json.dumps(entry).encode())
    return digest.hexdigest()[:16]


def load_crops(items, data_root, size: int, cache_dir=None, workers: int = 2,
               sources=None, progress: bool = True, photo_sizes: dict | None = None) -> np.ndarray:
    """Crops for ``items`` = [(image path relative to data_root, box), ...] as (N, size, size) uint8.

    ``sources`` (one "file:line" per item) lets a bad photo be reported by the
    list line that asked for it.  ``photo_sizes`` ({image: (width, height)} when
    the list was made, ``data.lists.recorded_sizes``) refuses photos replaced since.
    """
    data_root = Path(data_root)
    items = [(image, np.asarray(box, dtype=np.float64)) for image, box in items]
    photo_sizes = photo_sizes or {}
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"crops{size}_{_cache_key(items, data_root, size, photo_sizes)}.npy"
    if path.is_file():
        crops = np.load(path)
        if crops.shape == (len(items), size, size):
            return crops

    by_photo = defaultdict(list)
    for index, (image, _) in enumerate(items):
        by_photo[image].append(index)
    _check_photos(by_photo, items, data_root, photo_sizes, sources)
    crops = _decode(by_photo, items, data_root, size, workers, sources, progress)
    try:  # whole or not at all: a full disk leaves neither a partial cache nor its temporary file
        with atomic_output(path, suffix=".tmp.npy") as partial, open(partial, "wb") as out:
            np.save(out, crops)
    except OSError as error:  # the crops are in memory: this run goes on, only the next one decodes again
        log.warning("could not keep the crops in the cache %s (%s; a full disk?): going on without it; "
                    "free space there or set FKD_CACHE_DIR", path, error.strerror or error)
    return crops


def _decode(by_photo: dict, items, data_root: Path, size: int, workers: int, sources, progress: bool) -> np.ndarray:
    """Every crop, each photo decoded once for all of its crops (in worker processes for many photos)."""
    photos = list(by_photo)
    jobs = [(data_root / photo, [items[i][1] for i in by_photo[photo]], size) for photo in photos]
    crops = np.zeros((len(items), size, size), dtype=np.uint8)
    bar = _progress(len(jobs), "decoding photos", progress)
    # Worker processes pay off only on many photos; tests and small lists stay in-process.
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) > 64 else None
    try:
        results = pool.map(_crops_of_one_photo, jobs, chunksize=8) if pool else map(_crops_of_one_photo, jobs)
        for photo, result in zip(photos, _reraise_with_source(results, photos, by_photo, sources)):
            for index, crop in zip(by_photo[photo], result):
                crops[index] = crop
            bar.update(1)
    finally:
        bar.close()
        if pool:
            pool.shutdown(cancel_futures=True)
    return crops


def _check_photos(by_photo, items, data_root: Path, photo_sizes: dict, sources) -> None:
    """Refuse, before decoding anything, a photo whose header is not the size its list was made
    from or that a box does not fit in (one header read a photo, ~0.1 ms)."""
    for photo, indices in by_photo.items():
        where = sources[indices[0]] if sources else None
        try:
            actual = image_size(data_root / photo)
        except ImageError as error:
            raise ImageError(f"{where}: {error}" if where else str(error)) from None
        for index in indices:
            problem = photo_size_problem(data_root / photo, actual, photo_sizes.get(photo), items[index][1])
            if problem:
                raise LabelError(sources[index], problem) if sources else ValueError(problem)


def _reraise_with_source(results, photos, by_photo, sources):
    """Yield results; a failed photo is re-raised naming the list line that needs it."""
    iterator = iter(results)
    for photo in photos:
        try:
            yield next(iterator)
        except ImageError as error:
            where = sources[by_photo[photo][0]] if sources else None
            raise ImageError(f"{where}: {error}" if where else str(error)) from None


def _progress(total: int, desc: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional for library users
        enabled = False
    if not enabled:
        class _Silent:
            def update(self, n): pass
            def close(self): pass
        return _Silent()
    return tqdm(total=total, desc=desc, unit="photo", leave=False)
