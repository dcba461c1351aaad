"""Decoded face crops, cached on disk so that epochs never decode the photos again.

The first use of a list decodes each photo once (all of its faces together,
with JPEG draft decoding for big photos) and saves one ``uint8`` array of
shape ``(N, size, size)``.  Later uses, and every epoch, read that array.
The cache key covers the boxes, the crop size and each photo's size and
modification time, so a changed list or photo builds a fresh cache.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .geometry import box_size
from .images import ImageError, crop_resized, load_gray


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


def _cache_key(items, data_root: Path, size: int) -> str:
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
        digest.update(json.dumps([image, [round(float(v), 3) for v in box], stamps[image]]).encode())
    return digest.hexdigest()[:16]


def load_crops(items, data_root, size: int, cache_dir=None, workers: int = 2,
               sources=None, progress: bool = True) -> np.ndarray:
    """Crops for ``items`` = [(image path relative to data_root, box), ...] as (N, size, size) uint8.

    ``sources`` (one "file:line" per item) lets a bad photo be reported by the
    list line that asked for it.
    """
    data_root = Path(data_root)
    items = [(image, np.asarray(box, dtype=np.float64)) for image, box in items]
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"crops{size}_{_cache_key(items, data_root, size)}.npy"
    if path.is_file():
        crops = np.load(path)
        if crops.shape == (len(items), size, size):
            return crops

    by_photo = defaultdict(list)
    for index, (image, _) in enumerate(items):
        by_photo[image].append(index)
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

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, crops)
    os.replace(tmp, path)
    return crops


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
