"""``facial-keypoints serve``: the flags (``cli/parser.py`` registers them) to a running server.

FastAPI, uvicorn and Ray are imported here only when the command runs, so ``facial-keypoints --help``
stays light; where the ``[serve]`` extra (or Ray Serve, for ``--ray``) is missing, one line says so.
"""
from __future__ import annotations

import importlib.util
import ipaddress
import os
import sys

from facial_keypoints.errors import MissingExtra
from facial_keypoints.serve.settings import ServeSettings

API_KEY_VARIABLE = "FKD_API_KEY"


def require_serve(ray: bool = False) -> None:
    """MissingExtra, naming the extra, where FastAPI, uvicorn, python-multipart or prometheus-client (or
    Ray Serve, with ``ray``) is not installed."""
    modules = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart",
               "prometheus_client": "prometheus-client"}
    missing = [name for module, name in modules.items() if importlib.util.find_spec(module) is None
               and not (module == "python_multipart" and importlib.util.find_spec("multipart"))]
    if missing:
        raise MissingExtra(f"facial-keypoints serve needs {', '.join(missing)}, which this installation lacks: "
                           "pip install 'facial_keypoints[serve]'")
    if ray:
        try:
            import ray.serve  # noqa: F401
        except ImportError:
            raise MissingExtra("serve --ray needs Ray Serve, which this installation lacks: pip install "
                               "'facial_keypoints[serve,ray]'") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_from(args) -> ServeSettings:
    """The server's settings from its flags (the API key from --api-key, else $FKD_API_KEY)."""
    from facial_keypoints.cli.predict import landmarker_settings
    workers = args.workers or min(os.cpu_count() or 1, 4)
    threads = args.threads or max(1, (os.cpu_count() or 1) // workers)
    return ServeSettings(landmarker=landmarker_settings(args, threads), workers=workers, max_bytes=args.max_bytes,
                         max_pixels=args.max_pixels, max_queue=args.max_queue, timeout=args.timeout,
                         api_key=args.api_key or os.environ.get(API_KEY_VARIABLE) or None, cors=tuple(args.cors),
                         recycle_after=args.recycle_after)


def serve(args) -> int:
    """Run the server until Ctrl-C or SIGTERM."""
    require_serve(ray=args.ray)
    if not args.ray and (args.ray_address is not None or args.replicas is not None):
        raise ValueError("--replicas and --ray-address are for --ray")
    settings = settings_from(args)
    if settings.api_key is None and not is_loopback(args.host):
        print(f"warning: serving on {args.host}:{args.port} without an API key: anyone who can reach this address "
              "can send photos and camera frames to this server and use its CPUs. Give --api-key KEY (or set "
              f"{API_KEY_VARIABLE}), or bind to 127.0.0.1 behind your own gateway.", file=sys.stderr)
    if args.ray:
        from facial_keypoints.serve.ray_serve import run_ray
        return run_ray(settings, args.host, args.port, args.replicas or 2, args.ray_address, args.threads or 1)
    from facial_keypoints.bulk.workers import check_memory
    check_memory(settings.workers)
    import uvicorn

    from facial_keypoints.serve.app import create_app
    from facial_keypoints.serve.workers import InferencePool
    pool = InferencePool(settings)
    pool.start()  # the models load before the port opens: a model that cannot load is one line, not a server
    print(f"{settings.workers} inference worker(s), {settings.landmarker['threads']} thread(s) each: "
          f"{pool.info.get('model')} ({pool.info.get('backend')}), face detector {pool.info.get('detector')}; "
          f"the page at http://{args.host}:{args.port}/", flush=True)
    try:
        uvicorn.run(create_app(settings, pool), host=args.host, port=args.port, ws_max_size=settings.max_bytes,
                    log_level=args.log_level, access_log=not args.no_access_log, timeout_graceful_shutdown=5)
    finally:
        pool.stop()
    return 0
