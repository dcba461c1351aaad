"""What ``predict`` writes per photo or video, and under which names: never over a file it did not write."""
from __future__ import annotations

import json
import os
from pathlib import Path

from PIL import Image

from facial_keypoints.atomic import atomic_output
from facial_keypoints.drawing import draw
from facial_keypoints.media import MEDIA_SUFFIXES, is_video
from facial_keypoints.runtime.photos import PhotoResult
from facial_keypoints.video.annotate import csv_header


def find_photos(paths, skip=None) -> list[Path]:
    """The photos and videos among ``paths``: files as given, folders searched recursively (sorted).

    Inside folders, nothing under ``skip`` (predict's output folder) is taken: a second run
    never reads the first one's drawings as photos.
    """
    skip = Path(skip).resolve() if skip is not None else None
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES
                            and not (skip is not None and p.resolve().is_relative_to(skip)))
        else:
            found.append(path)  # a missing or unreadable file is reported when it is opened
    return found


PHOTO_OUTPUTS = (".json", ".jpg")            # what predict writes for a photo
VIDEO_OUTPUTS = (".jsonl", ".mp4", ".csv")    # and for a video or a camera


def output_stems(photos, out_dir) -> list[str]:
    """The output name of each photo or video (``STEM.json`` and ``STEM.jpg``, or ``STEM.jsonl``,
    ``STEM.mp4`` and ``STEM.csv``, in ``out_dir``): its own stem, with ``_`` added while it is taken.

    A stem is taken by an earlier input of this run, or where one of its outputs would replace one of
    the inputs or any file that an earlier predict did not write for this same input
    (``written_by_predict``): two inputs of one name keep both outputs, a user's own photo, video or
    JSON is never written over, and a rerun replaces its own outputs.
    """
    inputs = {Path(p).resolve() for p in photos if not isinstance(p, int)}
    out_dir = Path(out_dir).resolve()
    taken, stems = set(), []
    for photo in photos:
        stem = f"camera{photo}" if isinstance(photo, int) else Path(photo).stem  # an int is a live camera
        suffixes = VIDEO_OUTPUTS if is_video(photo) else PHOTO_OUTPUTS
        while stem in taken or any(_not_ours(out_dir / f"{stem}{suffix}", inputs, photo) for suffix in suffixes):
            stem += "_"
        taken.add(stem)
        stems.append(stem)
    return stems


def _not_ours(path: Path, inputs: set, source) -> bool:
    return path in inputs or (os.path.lexists(path) and not written_by_predict(path, source))


def written_by_predict(path: Path, source=None) -> bool:
    """Whether ``path`` is an output of an earlier predict, which a rerun may replace: a photo record
    (``STEM.json``; with ``source``, a record of that very photo), frame lines (``STEM.jsonl``) or a
    table with predict's header (``STEM.csv``), or a drawing (``STEM.jpg``, ``STEM.mp4``) beside the
    record of the same stem."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix == ".jpg":
        return written_by_predict(path.with_suffix(".json"), source)
    if path.suffix == ".mp4":
        return written_by_predict(path.with_suffix(".jsonl"), source)
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 26) if path.suffix == ".json" else handle.readline(1 << 20)
        if path.suffix == ".csv":
            return head.decode().rstrip("\r\n") == ",".join(csv_header())
        record = json.loads(head)
    except (OSError, ValueError):
        return False
    keys = ("image", "faces") if path.suffix == ".json" else ("frame", "faces")
    if not (isinstance(record, dict) and all(key in record for key in keys)):
        return False
    return path.suffix != ".json" or source is None or _same_file(record["image"], source)


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, TypeError, ValueError):
        return False


def write_outputs(out_dir: Path, stem: str, image: Image.Image, result: PhotoResult, record: dict) -> tuple[Path, Path]:
    """``STEM.json`` and the drawing ``STEM.jpg`` in ``out_dir``, each written whole or not at all."""
    json_path, image_path = out_dir / f"{stem}.json", out_dir / f"{stem}.jpg"
    with atomic_output(json_path) as partial:
        partial.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    with atomic_output(image_path) as partial:
        draw(image, result.faces).save(partial, format="JPEG", quality=90)
    return json_path, image_path

