"""``facial-keypoints serve`` through FastAPI's TestClient: every endpoint, every bad input and its status,
the queue, the timeout, the API key, CORS, a worker that dies; /v1/detect answers what predict writes."""
from __future__ import annotations

import io
import json
import os
import re
import signal
import threading
import time
import warnings

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
with warnings.catch_warnings():  # newer Starlette would have httpx2 under its TestClient
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from facial_keypoints.runtime.photos import PhotoResult  # noqa: E402
from facial_keypoints.serve.app import create_app  # noqa: E402
from facial_keypoints.serve.settings import ServeSettings  # noqa: E402

PHOTO = "II/004002.jpg"
LIMITS = dict(max_bytes=1_000_000, max_pixels=1_500_000)


class GatedLandmarker:
    """A stand-in model for the queue and timeout tests: each photo waits for ``gate``, then has no faces."""

    gate = threading.Event()
    checkpoint, detector_name, backend = "stand-in.pt", "none", "none"

    def __init__(self, **settings):
        pass

    def process(self, image):
        GatedLandmarker.gate.wait(20)
        return PhotoResult(image.width, image.height)


@pytest.fixture(scope="module")
def photo(real_root) -> bytes:
    return (real_root / PHOTO).read_bytes()


@pytest.fixture(scope="module")
def client(real_root):
    """The server as ``serve`` runs it: one worker process with its own model."""
    app = create_app(ServeSettings(landmarker={"threads": 1}, workers=1, **LIMITS))
    with TestClient(app) as test_client:
        yield test_client


def gated_client(**settings) -> TestClient:
    return TestClient(create_app(ServeSettings(pool="thread", landmarker_factory=GatedLandmarker, **settings)))


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 90, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def test_detect_answers_the_record_predict_writes(client, photo, real_root, tmp_path):
    from facial_keypoints.cli import main as cli
    assert cli(["predict", str(real_root / PHOTO), "--out", str(tmp_path), "--threads", "1"]) == 0
    written = json.loads((tmp_path / "004002.json").read_text())
    multipart = client.post("/v1/detect", files={"file": ("004002.jpg", photo, "image/jpeg")})
    raw = client.post("/v1/detect", content=photo, headers={"content-type": "image/jpeg"})
    assert multipart.status_code == raw.status_code == 200
    assert multipart.json()["image"] == "004002.jpg" and raw.json()["image"] == "upload"
    def same(record):  # the name and the timings differ: the rest is equal
        return {key: value for key, value in record.items() if key not in ("image", "timings_ms")}

    for answer in (multipart.json(), raw.json()):
        assert answer.keys() == written.keys() and answer["timings_ms"].keys() == written["timings_ms"].keys()
        assert same(answer) == same(written) and len(answer["faces"]) == 1


def test_landmarks_gives_the_points_of_the_boxes_given(client, photo, real_root):
    from facial_keypoints import POINT_NAMES, FaceLandmarker
    boxes = [client.post("/v1/detect", content=photo).json()["faces"][0]["box"], [10, 20, 110, 140]]
    answer = client.post("/v1/landmarks", files={"file": ("a.jpg", photo)}, data={"boxes": json.dumps(boxes)})
    assert answer.status_code == 200, answer.text
    faces = answer.json()["faces"]
    expected = FaceLandmarker(threads=1).landmarks(real_root / PHOTO, boxes)
    assert [f["box"] for f in faces] == [[float(v) for v in box] for box in boxes]
    for face, points in zip(faces, expected):
        assert tuple(face["keypoints"]) == tuple(POINT_NAMES)
        np.testing.assert_allclose(np.array(list(face["keypoints"].values())), points, atol=0.051)
    none = client.post("/v1/landmarks", files={"file": ("a.jpg", photo)}, data={"boxes": "[]"})
    assert none.status_code == 200 and none.json()["faces"] == []


@pytest.mark.parametrize("boxes, says", [
    (None, "'boxes' is missing"), ("[[1, 2, 3", "not JSON"), ('{"a": 1}', "a JSON list"),
    ("[[1, 2, 3]]", "box 0"), ("[[10, 10, 5, 20]]", "x2 > x1"), ('[[1, 2, "3", 4]]', "box 0"),
    ("[[0, 0, 1e999, 5]]", "finite"), (json.dumps([[0, 0, 10, 10]] * 300), "at most 256")])
def test_bad_boxes_get_422(client, photo, boxes, says):
    data = {} if boxes is None else {"boxes": boxes}
    answer = client.post("/v1/landmarks", files={"file": ("a.jpg", photo)}, data=data)
    assert answer.status_code == 422 and says in answer.json()["detail"], answer.text


def test_every_bad_input_gets_its_status_and_the_server_goes_on(client, photo):
    random_bytes = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    cases = [
        ("a body over --max-bytes", dict(content=b"\xff" * (LIMITS["max_bytes"] + 1)), 413, "--max-bytes"),
        ("the same, chunked", dict(content=iter([b"\xff" * 600_000] * 2)), 413, "--max-bytes"),
        ("an image over --max-pixels", dict(content=png(1500, 1001)), 413, "--max-pixels"),
        ("random bytes", dict(content=random_bytes), 415, "not an image"),
        ("a truncated JPEG", dict(content=photo[: len(photo) // 2]), 422, "truncated"),
        ("0 bytes", dict(content=b""), 422, "empty"),
        ("a text file", dict(files={"file": ("notes.txt", b"hello\n" * 50, "text/plain")}), 415, "not an image"),
        ("a form without its file", dict(files={"photo": ("a.jpg", photo)}), 422, "'file'"),
        ("landmarks without a form", dict(content=photo, url="/v1/landmarks"), 415, "multipart"),
    ]
    for what, request, status, says in cases:
        answer = client.post(request.pop("url", "/v1/detect"), **request)
        assert answer.status_code == status and says in answer.json()["detail"], (what, answer.text)
        assert client.post("/v1/detect", content=photo).status_code == 200, f"after {what}"
    assert client.post("/v1/detect", content=png(1500, 1000)).status_code == 200  # at the limit: served


def test_a_full_queue_answers_503_with_retry_after_and_the_timeout_504():
    GatedLandmarker.gate.clear()
    with gated_client(workers=1, max_queue=1, timeout=20) as busy:
        pool = busy.app.state.pool
        answers = []
        held = [threading.Thread(target=lambda: answers.append(busy.post("/v1/detect", content=png(64, 48))))
                for _ in range(3)]  # two on the worker, one waiting
        for thread in held:
            thread.start()
        deadline = time.monotonic() + 10
        while pool.queued < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = busy.post("/v1/detect", content=png(64, 48))
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
        assert "--max-queue 1" in refused.json()["detail"]
        assert 'fkd_queue_length 1.0' in busy.get("/metrics").text
        GatedLandmarker.gate.set()
        for thread in held:
            thread.join(20)
        assert [a.status_code for a in answers] == [200] * 3
        assert busy.post("/v1/detect", content=png(64, 48)).status_code == 200
    GatedLandmarker.gate.clear()
    with gated_client(workers=1, timeout=0.3) as slow:
        late = slow.post("/v1/detect", content=png(64, 48))
        assert late.status_code == 504 and "0.3 s" in late.json()["detail"]
        GatedLandmarker.gate.set()
        assert slow.post("/v1/detect", content=png(64, 48)).status_code == 200


def test_the_api_key_guards_the_api_and_leaves_the_page_and_health_checks_open(photo):
    settings = ServeSettings(landmarker={"threads": 1}, pool="thread", api_key="s3cret")
    with TestClient(create_app(settings)) as keyed:
        for path in ("/", "/static/app.js", "/static/style.css", "/healthz", "/readyz"):
            assert keyed.get(path).status_code == 200, path
        for path in ("/v1/info", "/metrics", "/openapi.json"):
            assert keyed.get(path).status_code == 401, path
        bare = keyed.post("/v1/detect", content=photo)
        assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer"
        wrong = keyed.post("/v1/detect", content=photo, headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401 and "not this server's" in wrong.json()["detail"]
        good = keyed.post("/v1/detect", content=photo, headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200 and len(good.json()["faces"]) == 1
        for refused in ({}, {"subprotocols": ["fkd.track", "bearer.guess"]}):
            with pytest.raises(WebSocketDisconnect) as closed:
                with keyed.websocket_connect("/v1/track", **refused) as ws:
                    ws.receive_text()
            assert closed.value.code == 1008
        for url, protocols in (("/v1/track", ["fkd.track", "bearer.s3cret"]), ("/v1/track?key=s3cret", None)):
            with keyed.websocket_connect(url, subprotocols=protocols) as ws:
                assert ws.accepted_subprotocol == (protocols and "fkd.track")
                ws.send_bytes(photo)
                assert len(json.loads(ws.receive_text())["faces"]) == 1


def test_cors_is_off_unless_an_origin_is_given():
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"}
    with gated_client() as closed:
        answer = closed.options("/v1/detect", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
        assert "access-control-allow-origin" not in closed.get("/healthz", headers={"Origin": preflight["Origin"]}).headers
    with gated_client(cors=("https://app.example",)) as open_to_one:
        answer = open_to_one.options("/v1/detect", headers=preflight)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://app.example"
        other = open_to_one.options("/v1/detect", headers=dict(preflight, Origin="https://elsewhere.example"))
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers


def test_track_answers_each_frame_with_the_video_jsonl_line_and_survives_bad_frames(client, real_root):
    import cv2

    from facial_keypoints import FaceLandmarker
    image = Image.open(real_root / PHOTO).convert("RGB")
    frames = []
    for shift in (0, 4, 8, 12):
        moved = Image.new("RGB", image.size)
        moved.paste(image, (shift, shift // 2))
        buffer = io.BytesIO()
        moved.save(buffer, "JPEG", quality=85)
        frames.append(buffer.getvalue())
    from facial_keypoints.video.annotate import frame_record
    tracker = FaceLandmarker(threads=1).track()
    expected = []
    for n, data in enumerate(frames):
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        expected.append(frame_record(n, n * 0.04, [f.as_json() for f in tracker.update(bgr, n * 0.04, bgr=True)]))
    with client.websocket_connect("/v1/track", subprotocols=["fkd.track"]) as ws:
        lines = []
        for n, data in enumerate(frames):
            ws.send_text(json.dumps({"time_s": n * 0.04}) if n % 2 else str(n * 0.04))
            ws.send_bytes(data)
            lines.append(json.loads(ws.receive_text()))
        assert lines == json.loads(json.dumps(expected))
        assert lines[-1]["faces"][0]["id"] == lines[0]["faces"][0]["id"]
        ws.send_bytes(b"not a frame")
        assert json.loads(ws.receive_text()) | {"time_s": 0} == {
            "frame": 4, "time_s": 0, "status": 415, "error": "frame 4 is not an image this server can read "
                                                            "(JPEG, PNG, WebP, BMP, TIFF ...)"}
        ws.send_text("soon")
        assert json.loads(ws.receive_text())["status"] == 422
        ws.send_bytes(frames[0])
        assert json.loads(ws.receive_text())["frame"] == 5
    assert 'fkd_requests_total{endpoint="/v1/track",status="200"}' in client.get("/metrics").text


def test_health_readiness_info_metrics_and_openapi(client, photo):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"ready": True, "workers": 1, "workers_ready": 1, "detail": None}
    info = client.get("/v1/info").json()
    assert info["detector"] and info["backend"] == "onnx-int8" and len(info["points"]) == 21
    client.post("/v1/detect", content=photo)
    metrics = client.get("/metrics").text
    for line in ('fkd_requests_total{endpoint="/v1/detect",status="200"}', "fkd_request_seconds_bucket",
                 "fkd_faces_per_image_count", "fkd_queue_length 0.0", "fkd_workers_ready 1.0"):
        assert line in metrics, line
    schema = client.get("/openapi.json").json()
    assert {"/v1/detect", "/v1/landmarks", "/v1/info", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    detect = schema["paths"]["/v1/detect"]["post"]
    assert "multipart/form-data" in detect["requestBody"]["content"] and {"413", "415", "503"} <= set(detect["responses"])
    assert "DetectRecord" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == client.get("/redoc").status_code == 404  # no pages from a CDN
    page, script = client.get("/").text, client.get("/static/app.js").text
    assert "/static/app.js" in page and "/static/style.css" in page
    assert not re.search(r'(src|href)="(https?:)?//', page) and "https://" not in script  # nothing from elsewhere


def test_a_worker_that_dies_is_replaced_and_the_server_goes_on(client, photo):
    pool = client.app.state.pool
    (worker,) = pool.workers.values()
    os.kill(worker.handle.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (worker.id in pool.workers or not pool.ready_workers):
        time.sleep(0.1)
        client.get("/healthz")  # the loop turns while we wait
    assert pool.ready_workers == 1 and worker.id not in pool.workers
    assert client.post("/v1/detect", content=photo).status_code == 200


def test_a_worker_is_replaced_by_a_fresh_process_after_recycle_after_requests(client, photo):
    pool = client.app.state.pool
    (old,) = pool.workers.values()
    pool.settings.recycle_after = old.served + 2
    try:
        assert [client.post("/v1/detect", content=photo).status_code for _ in range(2)] == [200] * 2
    finally:
        pool.settings.recycle_after = 0  # one successor, no more
    assert old.successor is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and old.id in pool.workers:
        time.sleep(0.1)
        assert client.post("/v1/detect", content=png(64, 48)).status_code == 200  # served all along
    (new,) = pool.workers.values()
    assert new.id != old.id and new.ready and not old.handle.is_alive()


def test_serve_refuses_missing_extras_in_one_line_and_warns_off_loopback(monkeypatch, capsys):
    import importlib.util

    from facial_keypoints.cli import main as cli
    from facial_keypoints.serve import workers
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "uvicorn" else real(name, *rest))
    assert cli(["serve"]) == 2
    err = capsys.readouterr().err
    assert "needs uvicorn" in err and "pip install 'facial_keypoints[serve]'" in err and "Traceback" not in err
    monkeypatch.setattr(importlib.util, "find_spec", real)
    ran = {}
    monkeypatch.setattr(workers.InferencePool, "start", lambda self: ran.__setitem__("settings", self.settings))
    monkeypatch.setattr(workers.InferencePool, "stop", lambda self: None)
    monkeypatch.setattr("uvicorn.run", lambda app, **options: ran.update(options))
    monkeypatch.setenv("FKD_API_KEY", "")
    assert cli(["serve", "--host", "0.0.0.0", "--workers", "1", "--port", "9999"]) == 0
    assert "without an API key: anyone who can reach this address" in capsys.readouterr().err
    assert ran["host"] == "0.0.0.0" and ran["port"] == 9999 and ran["settings"].api_key is None
    monkeypatch.setenv("FKD_API_KEY", "from-the-environment")
    assert cli(["serve", "--host", "0.0.0.0", "--workers", "1"]) == 0
    assert "warning" not in capsys.readouterr().err and ran["settings"].api_key == "from-the-environment"
    assert cli(["serve", "--replicas", "2"]) == 2 and "for --ray" in capsys.readouterr().err
