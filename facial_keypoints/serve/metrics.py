"""Prometheus metrics (``GET /metrics``): requests by endpoint and status, latency, faces per image, queue.

Each app has its own registry, so two apps in one process (tests, Ray replicas) never share counts.
Under Ray Serve every replica counts its own requests.
"""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ENDPOINTS = ("/v1/detect", "/v1/landmarks", "/v1/track", "/v1/info", "/healthz", "/readyz", "/metrics",
             "/openapi.json", "/")
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
FACE_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50, 100)


def endpoint_of(path: str) -> str:
    """The label a path is counted under: one of ENDPOINTS, ``static`` or ``other`` (no unbounded labels)."""
    return path if path in ENDPOINTS else "static" if path.startswith("/static/") else "other"


class Metrics:
    def __init__(self, pool=None):
        self.registry = CollectorRegistry()
        self.requests = Counter("fkd_requests", "HTTP requests and WebSocket frames answered, by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("fkd_request_seconds", "Seconds from request to answer, by endpoint",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.faces = Histogram("fkd_faces_per_image", "Faces found per photo or camera frame",
                               buckets=FACE_BUCKETS, registry=self.registry)
        self.queue = Gauge("fkd_queue_length", "Requests waiting for an inference worker", registry=self.registry)
        self.in_flight = Gauge("fkd_in_flight", "Requests an inference worker holds", registry=self.registry)
        self.workers = Gauge("fkd_workers_ready", "Inference workers with their model loaded", registry=self.registry)
        if pool is not None:
            self.queue.set_function(lambda: pool.queued)
            self.in_flight.set_function(lambda: sum(len(w.jobs) for w in list(pool.workers.values())))
            self.workers.set_function(lambda: pool.ready_workers)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def text(self) -> bytes:
        from prometheus_client import generate_latest
        return generate_latest(self.registry)


class CountRequests:
    """ASGI middleware: every HTTP request's status and time into ``metrics``."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe(endpoint_of(scope["path"]), status[0], time.perf_counter() - started)
