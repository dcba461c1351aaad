"""The two commands a user runs on a clip, timed side by side: ``predict clip.mp4`` against ``predict FRAMES/``.

``compare_cli(frames)`` writes the frames as an mp4 (30 fps), decodes it back to PNG files (what
per-frame predict would read), and times each command from start to exit, the mp4 one first:

- ``facial-keypoints predict clip.mp4``: tracking, the JSON lines and the annotated mp4;
- ``facial-keypoints predict FRAMES/``: the detector and the network on every frame, a JSON file and a
  drawing per frame.

Returns the lines of a table (benchmarks/video.py --cli adds them to its results).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from video_clips import FPS


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def compare_cli(frames, threads: int) -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        clip, pngs = folder / "clip.mp4", folder / "frames"
        pngs.mkdir()
        writer = None
        for frame in frames:
            if writer is None:
                size = (frame.pixels.shape[1], frame.pixels.shape[0])
                writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), FPS, size)
            writer.write(cv2.cvtColor(frame.pixels, cv2.COLOR_RGB2BGR))
        writer.release()
        capture, count = cv2.VideoCapture(str(clip)), 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            cv2.imwrite(str(pngs / f"{count:05d}.png"), bgr)
            count += 1
        capture.release()
        command = [sys.executable, "-m", "facial_keypoints", "predict", "--no-progress", "--threads", str(threads)]
        video_s = timed(command + [str(clip), "--out", str(folder / "video_out")])
        frames_s = timed(command + [str(pngs), "--out", str(folder / "frames_out")])
    return [f"The command line on the first {count} frames, decoded once to PNG for per-frame predict "
            f"(wall time from start to exit, {threads} threads):", "",
            "| command | seconds | frames/s | ratio |", "|---|---:|---:|---:|",
            f"| `facial-keypoints predict FRAMES/` (a JSON and a drawing per frame) | {frames_s:.1f} | "
            f"{count / frames_s:.1f} | 1.0 |",
            f"| `facial-keypoints predict clip.mp4` (JSON lines and the annotated mp4) | {video_s:.1f} | "
            f"{count / video_s:.1f} | {frames_s / video_s:.1f} |"]
