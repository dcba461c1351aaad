"""A video file's or a camera's frames, with the stream's own timestamps."""
from __future__ import annotations

import itertools
import math
import os
from typing import Iterator

import numpy as np

from facial_keypoints.data.images import ImageError, regular_file


class VideoFrames:
    """The frames of a video file, or of camera ``source`` (an int), opened once: ``fps`` is known before
    the first frame, and iterating yields (index, time in seconds, RGB uint8 array).

    A frame's time is the stream's own timestamp (OpenCV's ``CAP_PROP_POS_MSEC``), so a clip with a
    variable frame rate keeps its real times; where a stream gives none that moves forward (some
    cameras), the previous frame's time plus one frame at the nominal rate.
    """

    def __init__(self, source):
        # FFmpeg's own messages ("moov atom not found") would come on top of our one line per bad video
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        import cv2
        self.source = source if isinstance(source, int) else regular_file(source)
        self.capture = cv2.VideoCapture(source if isinstance(source, int) else str(source))
        if not self.capture.isOpened():
            raise ImageError(f"cannot open video {source}")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else 30.0

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        import cv2
        previous = None
        try:
            for index in itertools.count():
                ok, bgr = self.capture.read()
                if not ok:
                    if index == 0:
                        raise ImageError(f"cannot read a frame of video {self.source}")
                    return
                stream_s = self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if previous is None:
                    time_s = stream_s if math.isfinite(stream_s) and stream_s >= 0 else 0.0
                elif math.isfinite(stream_s) and stream_s > previous:
                    time_s = stream_s
                else:
                    time_s = previous + 1.0 / self.fps
                previous = time_s
                yield index, time_s, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            self.capture.release()


def read_frames(source) -> VideoFrames:
    """The frames of ``source`` (a video file, or a camera's number), to iterate once."""
    return VideoFrames(source)
