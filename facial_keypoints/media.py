"""Which files are photos and which are videos, by their suffix."""
from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


def is_video(path) -> bool:
    """A video file by its suffix, or a camera (an int)."""
    return isinstance(path, int) or Path(path).suffix.lower() in VIDEO_SUFFIXES
