"""The worker side of the inference pool: one model, then jobs from a queue until it says stop.

A worker (a process or a thread, ``workers.InferencePool`` decides) loads its own ``FaceLandmarker``,
says ``ready``, and answers each job ``(job id, kind, payload)`` with ``(worker, job id, status, body)``:

- ``detect`` ``(image bytes, name)``: the JSON text of the record ``predict`` writes for the photo
  (``cli.predict.photo_json``), and its number of faces;
- ``landmarks`` ``(image bytes, name, boxes)``: the points for boxes the caller already has;
- ``track`` ``(session, JPEG bytes, time_s, frame)``: one camera frame through that session's own
  ``FaceTracker``, as a line of the video JSONL (``{"frame", "time_s", "faces"}``); ``untrack``
  ``session`` forgets the tracker.

The status is ``ok``, ``image`` (the bytes are no image that can be decoded), ``input`` (a bad value)
or ``error`` (anything else: the worker goes on with the next job).
"""
from __future__ import annotations

import io
import json
import os
import queue
import signal

from facial_keypoints.data.images import ImageError, open_photo


def run_worker(number: int, settings: dict, factory, tasks, results, parent: int | None) -> None:
    """A worker's life: load the model (``factory(**settings)``), then answer jobs until None.
    ``parent``: the server's pid for a worker process (it ends with the server), None for a thread."""
    if parent is not None:
        from facial_keypoints.bulk.workers import _die_with_parent
        _die_with_parent(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    try:
        if factory is None:
            from facial_keypoints.api import FaceLandmarker as factory
        landmarker = factory(**settings)
    except Exception as error:  # noqa: BLE001 - reported by the server as one line
        results.put((number, None, "init", f"{type(error).__name__}: {error}"))
        return
    results.put((number, None, "ready", describe(landmarker)))
    trackers: dict = {}
    while True:
        task = _next_task(tasks, parent)
        if task is None:
            return
        job, kind, payload = task
        results.put((number, job, *handle(landmarker, trackers, kind, payload)))


def describe(landmarker) -> dict:
    """What the server says about its model (``GET /v1/info``)."""
    return {"model": str(getattr(landmarker, "checkpoint", "")), "detector": getattr(landmarker, "detector_name", ""),
            "backend": getattr(landmarker, "backend", "")}


def _next_task(tasks, parent: int | None):
    while True:
        if parent is not None and os.getppid() != parent:  # the server was killed: nobody reads results
            return None
        try:
            return tasks.get(timeout=1.0)
        except queue.Empty:
            continue


def handle(landmarker, trackers: dict, kind: str, payload) -> tuple[str, object]:
    """One job's (status, body); no error escapes, so one bad request never ends a worker."""
    try:
        if kind == "detect":
            return "ok", detect(landmarker, *payload)
        if kind == "landmarks":
            return "ok", landmarks(landmarker, *payload)
        if kind == "track":
            return "ok", track(landmarker, trackers, *payload)
        if kind == "untrack":
            trackers.pop(payload, None)
            return "ok", None
        return "error", f"unknown job {kind!r}"
    except ImageError as error:
        return "image", str(error)
    except (ValueError, TypeError) as error:
        return "input", str(error)
    except Exception as error:  # noqa: BLE001 - this request's alone; the worker goes on
        return "error", f"{type(error).__name__}: {error}"


def detect(landmarker, data: bytes, name: str) -> tuple[bytes, int]:
    """The record predict writes for this photo, as JSON text, and its number of faces."""
    from facial_keypoints.cli.predict import photo_json
    result = landmarker.process(open_photo(io.BytesIO(data), name=name))
    record = photo_json(landmarker, result, name)
    return json.dumps(record, allow_nan=False).encode(), len(record["faces"])


def landmarks(landmarker, data: bytes, name: str, boxes: list) -> tuple[bytes, int]:
    """The 21 named points of each box, as JSON text ({"width", "height", "model", "faces": [{"box",
    "keypoints"}]}), and the number of boxes."""
    from facial_keypoints.keypoints import POINT_NAMES
    image = open_photo(io.BytesIO(data), name=name)
    points = landmarker.landmarks(image, boxes) if boxes else []
    faces = [{"box": [round(float(v), 1) for v in box],
              "keypoints": {n: [round(float(x), 1), round(float(y), 1)] for n, (x, y) in zip(POINT_NAMES, pts)}}
             for box, pts in zip(boxes, points)]
    record = {"image": name, "width": image.width, "height": image.height, "faces": faces, **describe(landmarker)}
    return json.dumps(record, allow_nan=False).encode(), len(faces)


def track(landmarker, trackers: dict, session: str, data: bytes, time_s: float, frame: int) -> tuple[bytes, int]:
    """One camera frame through the session's tracker: a line of the video JSONL, as JSON text."""
    import cv2
    import numpy as np
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is None:
        raise ImageError(f"frame {frame} is not an image OpenCV can decode (send JPEG frames)")
    tracker = trackers.get(session)
    if tracker is None:
        tracker = trackers[session] = landmarker.track()
    from facial_keypoints.video.annotate import frame_record
    faces = [face.as_json() for face in tracker.update(bgr, time_s, bgr=True)]
    return json.dumps(frame_record(frame, time_s, faces), allow_nan=False).encode(), len(faces)
