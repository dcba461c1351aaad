"""What a request may hold: bodies up to ``max_bytes``, images up to ``max_pixels``, and images at all.

``BodyLimit`` (ASGI middleware) answers 413 to a request whose ``Content-Length`` is over the limit
before reading any of it, and stops a body without one (chunked) as soon as it passes the limit.
``check_image`` reads only an image's header (PIL opens lazily): 413 for too many pixels, 415 for
bytes that are no image format at all, 422 for no bytes; a truncated or corrupt image passes here and
gets 422 from the worker that fails to decode it.
"""
from __future__ import annotations

import io
import json

from fastapi import HTTPException


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is over the server's limit of {limit:,} bytes (--max-bytes)")


class BodyLimit:
    """ASGI middleware: HTTP request bodies of at most ``max_bytes``."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            error = BodyTooLarge(self.max_bytes) if length.isdigit() else HTTPException(400, "bad Content-Length")
            return await send_json(send, error.status_code, {"detail": error.detail})
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            return message

        return await self.app(scope, limited, send)


async def send_json(send, status: int, body: dict, headers: tuple = ()) -> None:
    """A whole JSON response from ASGI middleware."""
    content = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": content})


def check_image(data: bytes, max_pixels: int, what: str = "the image") -> tuple[int, int]:
    """(width, height) from ``data``'s header, or HTTPException 413, 415 or 422."""
    from PIL import Image, UnidentifiedImageError
    if not data:
        raise HTTPException(422, f"{what} is empty: send the photo's bytes (a JPEG, PNG, WebP ... file)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
        if isinstance(error, Image.DecompressionBombError):
            raise HTTPException(413, f"{what} has too many pixels: {error}") from None
        raise HTTPException(415, f"{what} is not an image this server can read (JPEG, PNG, WebP, BMP, TIFF ...)"
                            ) from None
    if width * height > max_pixels:
        raise HTTPException(413, f"{what} is {width}x{height} = {width * height:,} pixels, over the server's limit "
                                 f"of {max_pixels:,} (--max-pixels)")
    if not width or not height:
        raise HTTPException(422, f"{what} has no pixels ({width}x{height})")
    return width, height
