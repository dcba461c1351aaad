"""The request and response models, for ``/openapi.json`` (the answers themselves are the workers' JSON text,
byte for byte the records ``predict`` writes)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Point = tuple[float, float]
Box = tuple[float, float, float, float]


class Face(BaseModel):
    """A face of the record predict writes; it may carry more fields (each point's confidence, the pose ...)."""

    model_config = ConfigDict(extra="allow")
    box: Box = Field(description="x1 y1 x2 y2, photo pixels")
    score: float = Field(description="the network's face probability")
    detector_score: float = Field(description="the face detector's own confidence")
    keypoints: dict[str, Point] = Field(description="the 21 points by name (facial_keypoints.POINT_NAMES), x y")


class Rejected(BaseModel):
    box: Box
    score: float
    detector_score: float


class DetectRecord(BaseModel):
    """The record ``facial-keypoints predict`` writes for a photo (NAME.json); it may carry more fields."""

    model_config = ConfigDict(extra="allow")

    image: str = Field(description="the uploaded file's name ('upload' for a raw body)")
    width: int
    height: int
    model: str
    detector: str
    faces: list[Face]
    rejected: list[Rejected] = Field(description="candidates below the face threshold")
    timings_ms: dict[str, float]


class BoxFace(BaseModel):
    box: Box
    keypoints: dict[str, Point]


class LandmarksRecord(BaseModel):
    image: str
    width: int
    height: int
    model: str
    detector: str
    backend: str
    faces: list[BoxFace] = Field(description="one per box given, in their order")


class TrackedFace(Face):
    id: int = Field(description="the track's id, stable while the face stays in view")


class TrackLine(BaseModel):
    """A reply on WS /v1/track: a line of the video JSONL ``predict`` writes (or ``error`` and ``status``)."""

    frame: int
    time_s: float
    faces: list[TrackedFace]
    schema_: str = Field("facial_keypoints/2", alias="schema", description="the output's version (docs/output.md)")


class Info(BaseModel):
    model: str
    detector: str
    backend: str
    workers: int
    max_bytes: int
    max_pixels: int
    max_queue: int
    timeout: float
    points: list[str]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    workers: int
    workers_ready: int
    detail: str | None = None


class Error(BaseModel):
    detail: str


ERRORS = {code: {"model": Error, "description": text} for code, text in (
    (401, "the API key is missing or wrong"), (413, "the body or the image is over the limits"),
    (415, "not an image"), (422, "an image that cannot be decoded, or a bad field"),
    (503, "the queue is full (see Retry-After)"), (504, "no answer within the timeout"))}

IMAGE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}

BOXES_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file", "boxes"], "properties": {
        "file": {"type": "string", "format": "binary"},
        "boxes": {"type": "string", "description": "a JSON list of [x1, y1, x2, y2] boxes, photo pixels"}}}}}}}
