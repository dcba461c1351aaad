"""``facial-keypoints serve --ray``: the same app as a Ray Serve deployment of ``replicas`` replicas.

Each replica is a Ray actor (one CPU, or ``--threads``) that builds the app with one inference thread and its own
model; Ray Serve's proxy on ``host:port`` spreads the requests over them, and a WebSocket stays on
the replica it reached, which keeps its tracker. ``address`` None starts a local Ray instance,
``auto`` joins the cluster this machine belongs to, ``ray://HOST:10001`` a remote one (every node
needs this package, and the checkpoint at the same path; the shipped model is inside the package).
Each replica counts its own /metrics.
"""
from __future__ import annotations

import dataclasses
import time

from facial_keypoints.serve.settings import ServeSettings

NAME = "facial_keypoints"


def run_ray(settings: ServeSettings, host: str, port: int, replicas: int, address: str | None,
            threads: int = 1) -> int:
    """Deploy, serve until Ctrl-C or SIGTERM, then shut Ray Serve down (and the local Ray instance).
    Each replica asks Ray for ``threads`` CPUs and runs its model on that many threads."""
    import ray
    from ray import serve
    if replicas < 1:
        raise ValueError(f"--replicas must be at least 1, not {replicas}")
    landmarker = dict(settings.landmarker, threads=threads)
    replica = dataclasses.replace(settings, pool="thread", workers=1, landmarker=landmarker)

    def build_app():  # runs on each replica: the app and its model are made there, never pickled
        from facial_keypoints.serve.app import create_app
        return create_app(replica)

    ray.init(address=address, include_dashboard=False, logging_level="warning", configure_logging=False)
    from facial_keypoints.errors import terminate_as_interrupt
    terminate_as_interrupt()  # SIGTERM as Ctrl-C again (Ray's own handler aborts the process): Serve shuts down
    try:
        serve.start(http_options={"host": host, "port": port})
        deployment = serve.deployment(serve.ingress(build_app)(), name=NAME, num_replicas=replicas,
                                      ray_actor_options={"num_cpus": threads},
                                      max_ongoing_requests=2 + settings.max_queue)
        serve.run(deployment.bind(), name=NAME, route_prefix="/")
        print(f"{replicas} Ray Serve replica(s) of one model each; the page at http://{host}:{port}/", flush=True)
        while True:
            time.sleep(1.0)
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0
