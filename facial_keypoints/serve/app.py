"""The FastAPI app: ``create_app(settings)``.

    POST /v1/detect      a photo (multipart ``file``, or the raw body): the record ``predict`` writes for it
    POST /v1/landmarks   a photo and ``boxes`` (a JSON list of [x1, y1, x2, y2]): the points in those boxes
    WS   /v1/track       JPEG frames in, a line of the video JSONL out per frame (``track``)
    GET  /v1/info        the model, the detector and the limits
    GET  /healthz /readyz /metrics /openapi.json, and the page at /

Every refusal is ``{"detail": message}`` with its status: 401 (key), 413 (too large), 415 (no image),
422 (an image that cannot be decoded, a bad field), 503 with Retry-After (the queue is full), 504
(the timeout); the server goes on serving after each.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from facial_keypoints import __version__
from facial_keypoints.serve import models
from facial_keypoints.serve.auth import RequireKey
from facial_keypoints.serve.errors import JobFailed, PoolBusy, PoolTimeout
from facial_keypoints.serve.limits import BodyLimit, check_image
from facial_keypoints.serve.metrics import CountRequests, Metrics
from facial_keypoints.serve.settings import ServeSettings
from facial_keypoints.serve.track import add_track
from facial_keypoints.serve.workers import InferencePool

STATIC = Path(__file__).resolve().parent / "static"
STATUS_OF = {"image": 422, "input": 422, "error": 500}


def create_app(settings: ServeSettings, pool: InferencePool | None = None) -> FastAPI:
    """The app; ``pool`` (an ``InferencePool`` of these settings, started or not) is made here if not given.
    Its lifespan starts the pool where it has not been started, and stops it."""
    pool = pool if pool is not None else InferencePool(settings)
    metrics = Metrics(pool)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        if not pool.workers:
            await loop.run_in_executor(None, pool.start)
        pool.attach(loop)
        yield
        await loop.run_in_executor(None, pool.stop)

    app = FastAPI(title="facial_keypoints", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="21 facial keypoints per face: photos, boxes and camera frames (facial-keypoints serve)")
    app.state.settings, app.state.pool, app.state.metrics = settings, pool, metrics
    _add_routes(app, settings, pool, metrics)
    add_track(app, settings, pool, metrics)
    _add_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_bytes)
    if settings.api_key:
        app.add_middleware(RequireKey, key=settings.api_key)
    app.add_middleware(CountRequests, metrics=metrics)
    if settings.cors:
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    from fastapi.staticfiles import StaticFiles
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _add_routes(app: FastAPI, settings: ServeSettings, pool: InferencePool, metrics: Metrics) -> None:
    async def run(kind: str, payload) -> Response:
        status, body = await pool.run(kind, payload)
        if status != "ok":
            raise HTTPException(STATUS_OF.get(status, 500), body if status != "error" else f"inference failed: {body}")
        text, faces = body
        if kind == "detect":
            metrics.faces.observe(faces)
        return Response(text, media_type="application/json")

    @app.post("/v1/detect", response_model=models.DetectRecord, responses=models.ERRORS,
              openapi_extra=models.IMAGE_BODY, summary="Faces and their 21 keypoints in a photo")
    async def detect(request: Request):
        data, name, _ = await _image_of(request, settings)
        return await run("detect", (data, name))

    @app.post("/v1/landmarks", response_model=models.LandmarksRecord, responses=models.ERRORS,
              openapi_extra=models.BOXES_BODY, summary="The 21 keypoints in face boxes you already have")
    async def landmarks(request: Request):
        data, name, fields = await _image_of(request, settings, multipart_only=True)
        boxes = parse_boxes(fields.get("boxes"), settings.max_boxes)
        return await run("landmarks", (data, name, boxes))

    @app.get("/v1/info", response_model=models.Info, summary="The model, the detector and the limits")
    async def info():
        from facial_keypoints.keypoints import POINT_NAMES
        return {"model": "", "detector": "", "backend": "", **pool.info, "workers": settings.workers,
                "max_bytes": settings.max_bytes, "max_pixels": settings.max_pixels, "max_queue": settings.max_queue,
                "timeout": settings.timeout, "points": list(POINT_NAMES)}

    @app.get("/healthz", response_model=models.Health, summary="The server answers")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", response_model=models.Ready, responses={503: {"model": models.Ready}},
             summary="A model is loaded: requests are answered")
    async def readyz():
        ready = pool.ready_workers
        body = {"ready": ready > 0, "workers": settings.workers, "workers_ready": ready, "detail": pool.failure}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST
        return Response(metrics.text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")


async def _image_of(request: Request, settings: ServeSettings, multipart_only: bool = False):
    """(image bytes, its name, the form's text fields) from a multipart ``file`` field or (unless
    ``multipart_only``) the raw body, checked by ``check_image``."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        if multipart_only:
            raise HTTPException(415, "send a multipart/form-data body with the fields 'file' and 'boxes'")
        data, name, fields = await request.body(), "upload", {}
    else:
        form = await request.form(max_files=1, max_fields=8)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise HTTPException(422, "the multipart body has no file field named 'file'")
            data, name = await upload.read(), upload.filename or "upload"
            fields = {key: value for key, value in form.items() if isinstance(value, str)}
        finally:
            await form.close()  # a large upload spooled to a temporary file: gone now
    check_image(data, settings.max_pixels, f"the image {name}")
    return data, name, fields


def parse_boxes(text, max_boxes: int) -> list[list[float]]:
    """``boxes``: a JSON list of [x1, y1, x2, y2] finite numbers with x2 > x1 and y2 > y1 (422 otherwise)."""
    if not isinstance(text, str):
        raise HTTPException(422, "the field 'boxes' is missing: give a JSON list of [x1, y1, x2, y2] boxes")
    try:
        boxes = json.loads(text)
    except ValueError:
        raise HTTPException(422, "the field 'boxes' is not JSON: give a list of [x1, y1, x2, y2] boxes") from None
    if not isinstance(boxes, list) or len(boxes) > max_boxes:
        raise HTTPException(422, f"'boxes' must be a JSON list of at most {max_boxes} [x1, y1, x2, y2] boxes")
    for n, box in enumerate(boxes):
        if not _good_box(box):
            raise HTTPException(422, f"box {n} of 'boxes' is {json.dumps(box)}: give [x1, y1, x2, y2], finite "
                                     "numbers with x2 > x1 and y2 > y1")
    return [[float(v) for v in box] for box in boxes]


def _good_box(box) -> bool:
    numbers = isinstance(box, list) and len(box) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
    return numbers and box[2] > box[0] and box[3] > box[1]


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PoolBusy)
    async def busy(request, error: PoolBusy):
        return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": str(error.retry_after)})

    @app.exception_handler(PoolTimeout)
    async def timeout(request, error: PoolTimeout):
        return JSONResponse({"detail": str(error)}, status_code=504)

    @app.exception_handler(JobFailed)
    async def failed(request, error: JobFailed):
        return JSONResponse({"detail": str(error)}, status_code=error.status,
                            headers={"Retry-After": "5"} if error.status == 503 else None)
