"""``facial-keypoints serve --ray``: the same app as a Ray Serve deployment, here a local Ray instance with
two replicas: it starts, answers a photo as ``serve`` does, and shuts down on SIGTERM."""
from __future__ import annotations

import json
import urllib.request

import pytest

from serving import Server

pytest.importorskip("ray.serve", reason="serve --ray needs the [ray] extra with Ray Serve")
pytest.importorskip("fastapi", reason="the [serve] extra is not installed")


def test_serve_ray_runs_two_replicas_and_answers_a_photo(real_root, tmp_path):
    log = tmp_path / "serve_ray.log"
    server = Server(["--ray", "--replicas", "2", "--threads", "1", "--no-access-log"], log, start_s=180)
    with server as url:
        request = urllib.request.Request(f"{url}/v1/detect", data=(real_root / "II" / "004002.jpg").read_bytes(),
                                         method="POST")
        with urllib.request.urlopen(request, timeout=60) as answer:
            record = json.load(answer)
        with urllib.request.urlopen(f"{url}/v1/info", timeout=30) as answer:
            info = json.load(answer)
    assert len(record["faces"]) == 1 and record["detector"] == info["detector"]
    assert record["model"].endswith("default.pt") and info["backend"] == "onnx-int8"
    assert server.process.returncode == 143, (server.process.returncode, log.read_text()[-3000:])  # SIGTERM: Ray Serve shut down, then "terminated"
