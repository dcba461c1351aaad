"""What a server is told: the landmarker's settings, the pool, the limits, the key (``ServeSettings``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from facial_keypoints.bulk.workers import RECYCLE_AFTER

MAX_BYTES = 20 * 2**20      # the largest request body (and WebSocket message): a 20 MiB photo
MAX_PIXELS = 40_000_000     # the largest image, width x height, read from its header before decoding
MAX_QUEUE = 64              # requests waiting for a worker before the server answers 503
TIMEOUT = 30.0              # seconds a request may wait and run before it is answered 504
MAX_BOXES = 256             # boxes one /v1/landmarks request may give


@dataclass
class ServeSettings:
    """A server's settings; ``facial-keypoints serve``'s flags fill them.

    ``landmarker``: ``FaceLandmarker``'s arguments (each worker loads its own model with them).
    ``workers``: inference workers; ``pool``: ``"process"`` (each a process of its own, the default) or
    ``"thread"`` (threads of the server's process: a Ray replica, tests). ``recycle_after``: requests a
    worker process serves before a fresh one replaces it (0: never), so a leak stays bounded.
    ``landmarker_factory``: what makes a worker's model from ``landmarker`` (default ``FaceLandmarker``;
    a module-level callable, since a process worker imports it by name).
    """

    landmarker: dict = field(default_factory=dict)
    workers: int = 1
    pool: str = "process"
    max_bytes: int = MAX_BYTES
    max_pixels: int = MAX_PIXELS
    max_queue: int = MAX_QUEUE
    timeout: float = TIMEOUT
    api_key: str | None = None
    cors: tuple[str, ...] = ()
    recycle_after: int = RECYCLE_AFTER
    max_boxes: int = MAX_BOXES
    landmarker_factory: Callable | None = None

    def __post_init__(self):
        if self.pool not in ("process", "thread"):
            raise ValueError(f"pool must be 'process' or 'thread', not {self.pool!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")
        if self.max_queue < 0 or self.max_bytes < 1 or self.max_pixels < 1 or not self.timeout > 0:
            raise ValueError("max_queue must be 0 or more, and max_bytes, max_pixels and timeout positive")
        self.cors = tuple(self.cors)
        self.api_key = self.api_key or None  # an empty key is no key
