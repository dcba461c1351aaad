"""``WS /v1/track``: camera frames in, tracked faces out, one ``FaceTracker`` per connection.

Each binary message is one frame (JPEG, or any format OpenCV decodes); a text message before it may
give its time in seconds (``12.345`` or ``{"time_s": 12.345}``; without one the server's clock since
the connection opened is used). Each frame is answered, in order, with one JSON text message: a line
of the video JSONL ``predict`` writes, ``{"frame", "time_s", "faces"}``, each face with its track
``id``; or, for a frame that was refused, ``{"frame", "time_s", "error", "status"}`` (the status an
HTTP request would get: 413, 415, 422, 503, 504), and the connection stays open. The connection is
pinned to one inference worker, which keeps its tracker until it closes.
"""
from __future__ import annotations

import json
import math
import time
import uuid

from fastapi import FastAPI, HTTPException, WebSocket, WebSocketDisconnect

from facial_keypoints.serve.auth import websocket_key
from facial_keypoints.serve.errors import JobFailed, PoolBusy, PoolTimeout
from facial_keypoints.serve.limits import check_image


def parse_time(text: str) -> float:
    """A frame's time from a text message: a number, or a JSON object with ``time_s``."""
    try:
        value = json.loads(text)
        value = value.get("time_s") if isinstance(value, dict) else value
        value = float(value)
    except (ValueError, TypeError):
        raise ValueError(f"a text message gives the next frame's time in seconds, not {text[:40]!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"a frame's time must be a finite number of seconds, not {value}")
    return value


def add_track(app: FastAPI, settings, pool, metrics) -> None:
    @app.websocket("/v1/track")
    async def track(websocket: WebSocket):
        allowed, subprotocol = websocket_key(websocket, settings.api_key)
        if not allowed:
            metrics.observe("/v1/track", 401, 0.0)
            await websocket.close(code=1008, reason="this server needs its API key: the subprotocol bearer.KEY")
            return
        await websocket.accept(subprotocol=subprotocol)
        session = pool.open_session(uuid.uuid4().hex)
        opened, frame, time_s = time.perf_counter(), 0, None
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("text") is not None:
                    try:
                        time_s = parse_time(message["text"])
                    except ValueError as error:
                        await websocket.send_text(json.dumps({"frame": frame, "error": str(error), "status": 422}))
                    continue
                when = time_s if time_s is not None else time.perf_counter() - opened
                reply = await _frame(settings, pool, metrics, session, message.get("bytes") or b"", when, frame)
                await websocket.send_text(reply)
                frame, time_s = frame + 1, None
        except WebSocketDisconnect:
            pass
        finally:
            pool.close_session(session)


async def _frame(settings, pool, metrics, session, data: bytes, time_s: float, frame: int) -> str:
    """One frame's reply (JSON text), refused or answered."""
    started, status = time.perf_counter(), 200
    try:
        if len(data) > settings.max_bytes:
            raise HTTPException(413, f"frame {frame} is over the server's limit of {settings.max_bytes:,} bytes")
        check_image(data, settings.max_pixels, f"frame {frame}")
        kind, body = await pool.run("track", (session.id, data, time_s, frame), session)
        if kind != "ok":
            raise HTTPException(422 if kind in ("image", "input") else 500, body)
        text, faces = body
        metrics.faces.observe(faces)
        return text.decode()
    except HTTPException as error:
        status, detail = error.status_code, error.detail
    except PoolBusy as error:
        status, detail = 503, str(error)
    except PoolTimeout as error:
        status, detail = 504, str(error)
    except JobFailed as error:
        status, detail = error.status, str(error)
    finally:
        metrics.observe("/v1/track", status, time.perf_counter() - started)
    return json.dumps({"frame": frame, "time_s": round(time_s, 4), "error": detail, "status": status})
