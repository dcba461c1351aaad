"""The optional API key: a bearer token on HTTP, a subprotocol or ``?key=`` on the WebSocket.

The page (``/``), its files (``/static/...``) and the health checks stay open, so a browser can load
the page and ask for the key, and a load balancer can probe; every other path needs the key. A browser
cannot set headers on a WebSocket, so ``/v1/track`` takes the key as the subprotocol ``bearer.KEY``
(beside ``fkd.track``, which the server then accepts) or as ``?key=KEY`` (which a proxy's access log
may record: the subprotocol is the better way).
"""
from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from facial_keypoints.serve.limits import send_json

OPEN_PATHS = ("/", "/healthz", "/readyz", "/favicon.ico")
SUBPROTOCOL = "fkd.track"
KEY_PREFIX = "bearer."


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith("/static/")


def same_key(given: str | None, key: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), key.encode())


class RequireKey:
    """ASGI middleware: HTTP requests to any path but the open ones need ``Authorization: Bearer KEY``
    (401 otherwise). WebSockets are checked by their endpoint (``websocket_key``), which must choose
    the subprotocol it accepts."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or is_open(scope["path"]) or scope["method"] == "OPTIONS":
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and same_key(token.strip(), self.key):
            return await self.app(scope, receive, send)
        message = "this server needs its API key: send the header Authorization: Bearer KEY"
        if header:
            message = "the API key given is not this server's"
        await send_json(send, 401, {"detail": message}, headers=((b"www-authenticate", b"Bearer"),))


def websocket_key(websocket, key: str | None) -> tuple[bool, str | None]:
    """(whether the WebSocket may connect, the subprotocol to accept it with)."""
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    chosen = SUBPROTOCOL if SUBPROTOCOL in offered else (offered[0] if offered else None)
    if key is None:
        return True, chosen
    given = [p[len(KEY_PREFIX):] for p in offered if p.startswith(KEY_PREFIX)]
    given += parse_qs(websocket.url.query).get("key", [])
    return any(same_key(g, key) for g in given), chosen
