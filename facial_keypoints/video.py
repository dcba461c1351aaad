"""Video in, per-frame faces out: frames from OpenCV, a ``FaceTracker`` over them, JSON lines and a drawing.

``annotate_video`` writes ``STEM.jsonl`` (one object per frame: ``{"frame", "time_s", "faces"}``,
each face the photo JSON's fields plus its track ``id``) and ``STEM.mp4`` (the frames with the
faces drawn), and with ``csv=True`` ``STEM.csv`` (one row per face per frame, for spreadsheets).
All are written under temporary names and renamed when the video ends, or when the run is
interrupted (Ctrl-C), so what exists is always whole and what was processed is kept.
"""
from __future__ import annotations

import csv as csv_module
import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .images import ImageError, regular_file

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


def is_video(path) -> bool:
    """A video file by its suffix, or a camera (an int)."""
    return isinstance(path, int) or Path(path).suffix.lower() in VIDEO_SUFFIXES


class VideoFrames:
    """The frames of a video file, or of camera ``source`` (an int), opened once: ``fps`` is known before
    the first frame, and iterating yields (index, time in seconds, RGB uint8 array)."""

    def __init__(self, source):
        # FFmpeg's own messages ("moov atom not found") would come on top of our one line per bad video
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        import cv2
        self.source = source if isinstance(source, int) else regular_file(source)
        self.capture = cv2.VideoCapture(source if isinstance(source, int) else str(source))
        if not self.capture.isOpened():
            raise ImageError(f"cannot open video {source}")
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 30.0

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        import cv2
        try:
            for index in itertools.count():
                ok, bgr = self.capture.read()
                if not ok:
                    if index == 0:
                        raise ImageError(f"cannot read a frame of video {self.source}")
                    return
                yield index, index / self.fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            self.capture.release()


def read_frames(source) -> VideoFrames:
    """The frames of ``source`` (a video file, or a camera's number), to iterate once."""
    return VideoFrames(source)


def csv_header() -> list[str]:
    """The columns of ``STEM.csv``: frame, time, track id, face score, box, then x and y of each point."""
    from .keypoints import POINT_NAMES
    return ["frame", "time_s", "id", "score", "x1", "y1", "x2", "y2"] + [
        f"{name}_{axis}" for name in POINT_NAMES for axis in ("x", "y")]


def csv_row(index: int, time_s: float, record: dict) -> list:
    """One face's row of ``STEM.csv`` from its JSON record (``TrackedFace.as_json``)."""
    return [index, round(time_s, 4), record["id"], record["score"], *record["box"],
            *(v for point in record["keypoints"].values() for v in point)]


def annotate_video(tracker, source, out_dir: Path, stem: str, progress: bool = True, csv: bool = False) -> dict:
    """Run ``tracker`` over every frame of ``source``; write ``STEM.jsonl``, ``STEM.mp4`` and, with
    ``csv``, ``STEM.csv`` in ``out_dir``.

    Returns counts (frames, faces, detector runs, seconds).  On Ctrl-C the frames done so far are
    kept (the files renamed into place) and the KeyboardInterrupt goes on to the caller.
    """
    import contextlib
    import time

    import cv2
    from tqdm import tqdm

    from .photos import PhotoResult, draw_result
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffixes = (".jsonl", ".mp4") + ((".csv",) if csv else ())
    # temporary names keep the real suffix: OpenCV picks the container by it
    frames = read_frames(source)  # first: a video that cannot be opened leaves nothing behind
    temporary = {}
    for suffix in suffixes:
        handle, temporary[suffix] = tempfile.mkstemp(prefix=f".{stem}.partial.", suffix=suffix, dir=out_dir)
        os.close(handle)
    writer, counts, started = None, {"frames": 0, "faces": 0}, time.perf_counter()
    bar = tqdm(desc=str(source), unit="frame", disable=not progress)
    finished = False
    try:
        with open(temporary[".jsonl"], "w") as lines, contextlib.ExitStack() as stack:
            table = None
            if csv:
                table = csv_module.writer(stack.enter_context(open(temporary[".csv"], "w", newline="")))
                table.writerow(csv_header())
            for index, time_s, rgb in frames:
                faces = tracker.update(rgb, time_s)
                records = [face.as_json() for face in faces]
                lines.write(json.dumps({"frame": index, "time_s": round(time_s, 4),
                                        "faces": records}) + "\n")
                if table is not None:
                    table.writerows(csv_row(index, time_s, record) for record in records)
                image = Image.fromarray(rgb)
                drawn = draw_result(image, PhotoResult(image.width, image.height, list(faces)))
                if writer is None:
                    writer = cv2.VideoWriter(temporary[".mp4"], cv2.VideoWriter_fourcc(*"mp4v"), frames.fps,
                                             image.size)
                writer.write(cv2.cvtColor(np.asarray(drawn), cv2.COLOR_RGB2BGR))
                counts["frames"] += 1
                counts["faces"] += len(faces)
                bar.update(1)
        finished = True
    finally:
        bar.close()
        if writer is not None:
            writer.release()
        paths = {suffix: out_dir / f"{stem}{suffix}" for suffix in suffixes}
        if counts["frames"]:
            umask = os.umask(0)
            os.umask(umask)
            for suffix, tmp in temporary.items():
                os.chmod(tmp, 0o666 & ~umask)  # as a plainly created file (mkstemp's are owner-only)
                os.replace(tmp, paths[suffix])
        else:
            for tmp in temporary.values():
                Path(tmp).unlink(missing_ok=True)
        counts.update(detections=tracker.detections, seconds=time.perf_counter() - started, finished=finished,
                      **{suffix[1:].replace("mp4", "video"): str(path) for suffix, path in paths.items()})
    return counts
