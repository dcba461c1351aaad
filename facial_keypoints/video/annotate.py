"""Video in, per-frame faces out: frames from OpenCV, a ``FaceTracker`` over them, JSON lines and a drawing.

``annotate_video`` writes ``STEM.jsonl`` (one object per frame: ``{"frame", "time_s", "faces", "schema"}``,
each face the photo JSON's fields plus its track ``id``) and ``STEM.mp4`` (the frames with the
faces drawn), and with ``csv=True`` ``STEM.csv`` (one row per face per frame, for spreadsheets).
All are written under temporary names and renamed when the video ends, or when the run is
interrupted (Ctrl-C or SIGTERM), so what exists is always whole and what was processed is kept; a run
that fails renames nothing, and an earlier result stays as it was.
"""
from __future__ import annotations

import csv as csv_module
import glob
import json
import os
import queue
import tempfile
import threading
from pathlib import Path

import numpy as np

from facial_keypoints.atomic import process_alive
from facial_keypoints.drawing import draw
from facial_keypoints.keypoints import POINT_NAMES
from facial_keypoints.output_schema import SCHEMA
from facial_keypoints.video.frames import read_frames


def frame_record(index: int, time_s: float, faces: list[dict]) -> dict:
    """A frame's line of ``STEM.jsonl``: its index, its time in the stream and its faces' records."""
    return {"frame": index, "time_s": round(time_s, 4), "faces": faces, "schema": SCHEMA}


def csv_header() -> list[str]:
    """The columns of ``STEM.csv``: frame, time, track id, face score, quality, pose, box, then x and y of
    each point, then each point's confidence."""
    return (["frame", "time_s", "id", "score", "quality", "yaw", "pitch", "roll", "x1", "y1", "x2", "y2"]
            + [f"{name}_{axis}" for name in POINT_NAMES for axis in ("x", "y")]
            + [f"{name}_confidence" for name in POINT_NAMES])


def csv_row(index: int, time_s: float, record: dict) -> list:
    """One face's row of ``STEM.csv`` from its JSON record (``TrackedFace.as_json``); empty cells for
    what the record lacks."""
    pose = record.get("pose") or {}
    confidence = record.get("point_confidence") or {}
    return [index, round(time_s, 4), record["id"], record["score"], record.get("quality", ""),
            *("" if pose.get(angle) is None else pose[angle] for angle in ("yaw", "pitch", "roll")),
            *record["box"], *(v for point in record["keypoints"].values() for v in point),
            *(confidence.get(name, "") for name in POINT_NAMES)]


def letterbox(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` scaled to fit ``size`` (width, height) whole, centred on black: a frame of another size
    in a stream whose video file has the first frame's size."""
    import cv2
    width, height = size
    scale = min(width / rgb.shape[1], height / rgb.shape[0])
    w, h = max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - h) // 2, (width - w) // 2
    canvas[top:top + h, left:left + w] = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    return canvas


PARTIAL = ".partial."  # temporary outputs are .STEM.partial.PID.XXXX.SUFFIX until the video ends


def remove_stale_partials(out_dir: Path, stem: str) -> None:
    """Remove ``STEM``'s temporary outputs left by a run that was killed outright (its pid is gone)."""
    for path in Path(out_dir).glob(glob.escape(f".{stem}{PARTIAL}") + "*"):
        pid = path.name[len(f".{stem}{PARTIAL}"):].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            path.unlink(missing_ok=True)


def annotate_video(tracker, source, out_dir: Path, stem: str, progress: bool = True, csv: bool = False,
                   aligned: tuple[Path, int] | None = None) -> dict:
    """Run ``tracker`` over every frame of ``source``; write ``STEM.jsonl``, ``STEM.mp4`` and, with
    ``csv``, ``STEM.csv`` in ``out_dir``.

    With ``aligned`` (a folder and a size), each face of each frame is also written there aligned on the
    ArcFace template, as ``STEM_FRAME_idID.jpg``, each file whole.

    Returns counts (frames, faces, detector runs, frames letterboxed, seconds).  The files are written
    under temporary names and renamed into place when the video ends.  On Ctrl-C (or SIGTERM) the frames
    done so far are kept, renamed into place, and the KeyboardInterrupt goes on to the caller; on an
    error (a full disk, a broken stream) nothing is renamed, so an earlier result stays as it was.

    The mp4 has the first frame's size and the stream's nominal rate: frames of another size are
    letterboxed into it, while their points in the JSON lines and the CSV stay in their own pixels.
    """
    import contextlib
    import time

    from tqdm import tqdm
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffixes = (".jsonl", ".mp4") + ((".csv",) if csv else ())
    frames = read_frames(source)  # first: a video that cannot be opened leaves nothing behind
    remove_stale_partials(out_dir, stem)
    temporary = _temporaries(out_dir, stem, suffixes)
    counts = {"frames": 0, "faces": 0, "letterboxed": 0}
    started = time.perf_counter()
    bar = tqdm(desc=str(source), unit="frame", disable=not progress)
    keep = False
    try:
        with contextlib.ExitStack() as stack:
            lines = stack.enter_context(open(temporary[".jsonl"], "w"))
            table = None
            if csv:
                table = csv_module.writer(stack.enter_context(open(temporary[".csv"], "w", newline="")))
                table.writerow(csv_header())
            drawing = stack.enter_context(_VideoWriter(temporary[".mp4"], frames.fps))
            writer = _FrameWriter(lines, table, drawing, counts, stem, aligned)
            stack.callback(writer.close)  # first out: the frames already queued are written before the files close
            size = None
            for index, time_s, rgb in frames:
                if size is not None and (rgb.shape[1], rgb.shape[0]) != size:
                    tracker.reset()  # another frame size: the tracks' boxes mean nothing in it
                size = size or (rgb.shape[1], rgb.shape[0])
                writer.put(index, time_s, rgb, tracker.update(rgb, time_s))
                bar.update(1)
        keep = True
    except KeyboardInterrupt:  # the files closed whole above: keep what was done
        keep = True
        raise
    finally:
        bar.close()
        paths = {suffix: out_dir / f"{stem}{suffix}" for suffix in suffixes}
        _finish(temporary, paths, keep and counts["frames"] > 0)
        counts.update(detections=tracker.detections, seconds=time.perf_counter() - started,
                      **{suffix[1:].replace("mp4", "video"): str(path) for suffix, path in paths.items()})
    return counts


def _temporaries(out_dir: Path, stem: str, suffixes) -> dict[str, str]:
    """{suffix: a fresh .STEM.partial.PID.XXXX.SUFFIX in out_dir}; the real suffix is kept, since OpenCV picks
    the container by it."""
    temporary = {}
    try:
        for suffix in suffixes:
            handle, temporary[suffix] = tempfile.mkstemp(prefix=f".{stem}{PARTIAL}{os.getpid()}.", suffix=suffix,
                                                         dir=out_dir)
            os.close(handle)
    except BaseException:
        _remove(temporary.values())
        raise
    return temporary


def _finish(temporary: dict, paths: dict, keep: bool) -> None:
    """Rename the temporary files into place (``keep``), or remove them all."""
    if not keep:
        _remove(temporary.values())
        return
    umask = os.umask(0)
    os.umask(umask)
    for suffix, tmp in temporary.items():
        os.chmod(tmp, 0o666 & ~umask)  # as a plainly created file (mkstemp's are owner-only)
        os.replace(tmp, paths[suffix])


class _FrameWriter:
    """Each tracked frame's JSON line, CSV rows and drawing, written by a thread of its own beside the
    tracking: drawing and encoding the mp4 take as long as tracking a frame, and OpenCV's drawing and
    encoder let go of the GIL. The queue is short, so a slow disk holds the tracking back rather
    than filling memory; an error in the thread reaches the caller at the next ``put`` or at ``close``."""

    def __init__(self, lines, table, drawing, counts, stem: str, aligned=None, queued: int = 8):
        self.lines, self.table, self.drawing, self.counts = lines, table, drawing, counts
        self.stem, self.aligned = stem, aligned
        self.queue = queue.Queue(maxsize=queued)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="frame-writer", daemon=True)
        self.thread.start()

    def put(self, index: int, time_s: float, rgb: np.ndarray, faces) -> None:
        self._wait_put((index, time_s, rgb, faces))

    def close(self) -> None:
        """Write what is queued and end the thread."""
        self._wait_put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    # Every wait below has a timeout: Ctrl-C or SIGTERM raise in the tracking thread wherever it is, and
    # a wake-up lost to them must not leave either thread waiting forever.
    def _wait_put(self, item) -> None:
        while True:
            if self.error is not None and item is not None:
                raise self.error
            try:
                return self.queue.put(item, timeout=0.1)
            except queue.Full:
                continue

    def _run(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                return
            if self.error is None:  # after an error, only drain the queue so that ``put`` never blocks
                try:
                    self._write(*item)
                except BaseException as error:  # noqa: BLE001 - handed to the tracking thread
                    self.error = error

    def _write(self, index: int, time_s: float, rgb: np.ndarray, faces) -> None:
        records = [face.as_json() for face in faces]
        self.lines.write(json.dumps(frame_record(index, time_s, records), allow_nan=False) + "\n")
        if self.table is not None:
            self.table.writerows(csv_row(index, time_s, record) for record in records)
        if self.aligned is not None:
            from facial_keypoints.alignment import write_aligned
            folder, size = self.aligned
            write_aligned(folder, [f"{self.stem}_{index:06d}_id{face.id}" for face in faces], rgb, faces, size)
        drawn = draw(rgb, faces)
        self.counts["letterboxed"] += self.drawing.write(drawn)
        self.counts["frames"] += 1
        self.counts["faces"] += len(faces)


class _VideoWriter:
    """OpenCV's mp4 writer, sized by the first frame; a frame of another size is letterboxed into it
    (OpenCV would silently drop it). ``write`` returns 1 for a letterboxed frame, else 0."""

    def __init__(self, path: str, fps: float):
        self.path, self.fps, self.size, self.writer, self.frames = path, fps, None, None, 0

    def write(self, rgb: np.ndarray) -> int:
        import cv2
        if self.writer is None:
            self.size = (rgb.shape[1], rgb.shape[0])
            self.writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self.writer.isOpened():
                raise OSError(f"cannot write the video {self.path}")
        boxed = (rgb.shape[1], rgb.shape[0]) != self.size
        self.writer.write(cv2.cvtColor(letterbox(rgb, self.size) if boxed else rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1
        return int(boxed)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.writer is None:
            return
        self.writer.release()
        # OpenCV says nothing when its writes fail (a full disk, a file size limit): read the file back
        import cv2
        written = cv2.VideoCapture(self.path)
        frames = int(written.get(cv2.CAP_PROP_FRAME_COUNT)) if written.isOpened() else 0
        written.release()
        if frames != self.frames:
            raise OSError(28, f"the video holds {frames} of its {self.frames} frames (a full disk?)", self.path)


def _remove(paths) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)
