"""Nothing lost, round two: outputs never replace a user's file, failed runs leave what was there,
results files take one run at a time, and bad values are refused before any work.

Each test drives the command line or the public API, so it holds whatever the library's layout.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facial_keypoints import FaceLandmarker
from facial_keypoints.bulk.jsonl import JsonlWriter
from facial_keypoints.bulk.workers import check_memory
from facial_keypoints.cli import main as cli
from facial_keypoints.video.frames import VideoFrames, read_frames
from facial_keypoints.video.annotate import annotate_video

from conftest import REPO, linked_photos

FACE = "II/004002.jpg"
FAST = ["--no-progress", "--threads", "2"]


def one_line_error(capsys, *needles) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture(scope="module")
def face(real_root):
    return np.asarray(Image.open(real_root / FACE).convert("RGB").resize((192, 166)))


@pytest.fixture(scope="module")
def landmarker():
    return FaceLandmarker(threads=2)


def write_clip(path, frames, fps=25, fourcc="mp4v"):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return Path(path)


# 1, 5: an output never replaces a file predict did not write ---------------------------------------

def test_predict_writes_beside_a_users_video_and_photo_and_replaces_only_its_own_outputs(face, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", [face] * 4, fourcc="MJPG")
    users_mp4 = tmp_path / "clip.mp4"
    users_mp4.write_bytes(b"the user's own video")
    album = tmp_path / "album"
    (album / "new").mkdir(parents=True)
    Image.fromarray(face).save(album / "new" / "holiday.jpg")
    users_photo = album / "holiday.jpg"
    users_photo.write_bytes(b"the user's own photo")
    assert cli(["predict", str(clip), "--out", str(tmp_path), *FAST]) == 0
    assert cli(["predict", str(album / "new" / "holiday.jpg"), "--out", str(album), *FAST]) == 0
    assert users_mp4.read_bytes() == b"the user's own video"
    assert users_photo.read_bytes() == b"the user's own photo"
    assert (tmp_path / "clip_.mp4").is_file() and (album / "holiday_.jpg").is_file()
    # a rerun replaces its own outputs, under the same names
    assert cli(["predict", str(album / "new" / "holiday.jpg"), "--out", str(album), *FAST]) == 0
    assert sorted(p.name for p in album.iterdir()) == ["holiday.jpg", "holiday_.jpg", "holiday_.json", "new"]
    # another photo of the same name is not the same input: its outputs go beside, not over, the first one's
    first = (album / "holiday_.json").read_bytes()
    (album / "other").mkdir()
    Image.fromarray(face[:, ::-1].copy()).save(album / "other" / "holiday.jpg")
    assert cli(["predict", str(album / "other" / "holiday.jpg"), "--out", str(album), *FAST]) == 0
    assert (album / "holiday_.json").read_bytes() == first and (album / "holiday__.json").is_file()


# 2: a failed video run leaves the earlier result as it was -----------------------------------------

def test_a_video_run_that_fails_renames_nothing_and_keeps_the_earlier_result(face, landmarker, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", [face] * 8)
    out = tmp_path / "out"
    annotate_video(landmarker.track(), clip, out, "clip", progress=False, csv=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    tracker = landmarker.track()
    real_update = tracker.update

    def full_disk_after_three(frame, time_s=None, bgr=False):
        if tracker.frames == 3:
            raise OSError(28, "No space left on device")
        return real_update(frame, time_s, bgr)

    tracker.update = full_disk_after_three
    with pytest.raises(OSError):
        annotate_video(tracker, clip, out, "clip", progress=False, csv=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing renamed, nothing left


def test_an_annotated_video_opencv_failed_to_write_whole_is_an_error_and_keeps_the_earlier_one(face, tmp_path):
    import resource
    clip = write_clip(tmp_path / "clip.mp4", [np.roll(face, n, axis=1) for n in range(30)])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "facial_keypoints", "predict", str(clip), "--out", str(out), *FAST]
    assert subprocess.run(command, cwd=REPO, capture_output=True).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    limit = len(before["clip.mp4"]) // 2  # OpenCV's writer stops at the limit and says nothing
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert run.returncode == 1 and "clip.mp4" in run.stderr and "(skipped)" in run.stderr, run.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# 8: SIGTERM cleans up as Ctrl-C does, and a killed run's leftovers go ------------------------------

def test_sigterm_keeps_the_frames_done_and_stale_partials_of_a_killed_run_are_removed(face, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", [face] * 400)
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = out / f".clip.partial.{dead.pid}.abc123.mp4"
    stale.write_bytes(b"left by a run killed with SIGKILL")
    run = subprocess.Popen([sys.executable, "-m", "facial_keypoints", "predict", str(clip), "--out", str(out),
                            "--threads", "1"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".clip.partial.") and p.stat().st_size > 1000 and p.suffix == ".jsonl"
                  for p in out.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 143 and "terminated" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["clip.jsonl", "clip.mp4"]  # no partial, stale one gone
    lines = (out / "clip.jsonl").read_text().splitlines()
    assert 0 < len(lines) < 400 and all(json.loads(line) for line in lines)


# 9, 10: frames of another size, and the stream's own timestamps ------------------------------------

def test_frames_of_another_size_are_letterboxed_into_the_video_and_said(face, landmarker, tmp_path, monkeypatch):
    import facial_keypoints.video.annotate as video
    small = cv2.resize(face, (96, 83))
    frames = [face] * 5 + [small] * 5 + [face] * 2

    class Stream:  # a camera or a stream whose size changes midway (OpenCV's files keep one size)
        fps = 25.0

        def __iter__(self):
            return ((n, n / self.fps, frame) for n, frame in enumerate(frames))

    monkeypatch.setattr(video, "read_frames", lambda source: Stream())
    counts = annotate_video(landmarker.track(), 0, tmp_path, "stream", progress=False)
    assert counts["frames"] == 12 and counts["letterboxed"] == 5
    assert sum(1 for _ in read_frames(tmp_path / "stream.mp4")) == 12
    lines = [json.loads(line) for line in (tmp_path / "stream.jsonl").read_text().splitlines()]
    assert len(lines) == 12
    small_face = lines[6]["faces"][0]["box"]  # in the small frame's own pixels
    assert max(small_face) <= 96 + 5


def test_frame_times_come_from_the_stream_not_from_the_nominal_rate(face, tmp_path):
    frames = VideoFrames(write_clip(tmp_path / "clip.mp4", [face] * 4, fps=10))

    class VariableRate:  # a capture whose timestamps are 0, 0.5, 0.6 and 2.0 s at a nominal 10 fps
        times = iter([0.0, 500.0, 600.0, 2000.0])

        def read(self):
            return True, np.zeros((8, 8, 3), np.uint8)

        def get(self, prop):
            return next(self.times) if prop == cv2.CAP_PROP_POS_MSEC else 0.0

        def release(self):
            pass

    frames.capture = VariableRate()
    times = [t for _, t, _ in itertools_take(frames, 4)]
    assert times == [0.0, 0.5, 0.6, 2.0]


def itertools_take(iterable, n):
    import itertools
    return list(itertools.islice(iter(iterable), n))


# 11, 13, 17, 18: values the API refuses before any work -------------------------------------------

def test_the_api_refuses_non_finite_times_settings_and_empty_images(landmarker, face):
    tracker = landmarker.track()
    tracker.update(face, 0.0)
    for time_s in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            tracker.update(face, time_s)
    assert all(np.isfinite(f.keypoints).all() for f in tracker.update(face, 0.04))  # the track goes on
    for settings in (dict(min_cutoff=float("nan")), dict(beta=float("nan")), dict(min_cutoff=float("inf"))):
        with pytest.raises(ValueError, match="finite"):
            landmarker.track(**settings)
    for bad in (dict(face_threshold=float("nan")), dict(face_threshold=5.0), dict(min_face=1)):
        with pytest.raises(ValueError):
            FaceLandmarker(**bad)
    for empty in (np.zeros((0, 0, 3), np.uint8), np.zeros((0, 5), np.uint8), Image.new("RGB", (0, 0))):
        with pytest.raises(ValueError, match="pixels"):
            landmarker.detect(empty)
        with pytest.raises(ValueError, match="pixels"):
            landmarker.track().update(empty)


def test_a_32_bit_grey_image_of_8_bit_values_finds_the_face_the_8_bit_one_does(landmarker, face):
    grey = Image.fromarray(face).convert("L")
    as_int32 = Image.fromarray(np.asarray(grey).astype(np.int32))
    assert as_int32.mode == "I"
    expected = landmarker.detect(grey)
    got = landmarker.detect(as_int32)
    assert len(got) == len(expected) == 1
    assert np.allclose(got[0].keypoints, expected[0].keypoints)


def test_detect_on_a_list_names_the_bad_item_before_any_work(landmarker, face, monkeypatch):
    calls = []
    real = landmarker.predictor.predict_photo
    monkeypatch.setattr(landmarker.predictor, "predict_photo", lambda image: calls.append(1) or real(image))
    with pytest.raises(ValueError, match=r"image 1 of the 3 given: .*uint8"):
        landmarker.detect([face, face.astype(np.float32), face])
    assert calls == []  # nothing was computed, then lost
    assert len(landmarker.detect([face, face])) == 2


# 6: one run per results file, and photos known however their path is spelled ----------------------

@pytest.fixture
def three_photos(real_root, tmp_path):
    return linked_photos(real_root, tmp_path / "photos", 3)


def test_a_second_run_on_a_busy_results_file_is_refused(three_photos, tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    holder = JsonlWriter(results)  # another run, writing
    try:
        assert cli(["predict", str(three_photos), "--jsonl", str(results), "--no-progress"]) == 2
        one_line_error(capsys, "r.jsonl: another run is writing to this file")
    finally:
        holder.close()
    assert not results.exists()  # the empty file the holder made is not left behind


def test_a_rerun_with_the_path_spelled_another_way_adds_nothing(three_photos, tmp_path, capsys, monkeypatch):
    results = tmp_path / "r.jsonl"
    monkeypatch.chdir(tmp_path)
    assert cli(["predict", "photos", "--jsonl", "r.jsonl", "--no-progress"]) == 0
    assert cli(["predict", str(three_photos) + "/../photos", "--jsonl", str(results), "--no-progress"]) == 0
    assert "all 3 photo(s) are already in" in capsys.readouterr().out
    images = [json.loads(line)["image"] for line in results.read_text().splitlines()]
    assert len(images) == 3 and all(Path(image).is_absolute() for image in images)
    with open(results, "a") as handle:
        handle.write("   ")  # a blank last line, without its newline
    assert cli(["predict", "photos", "--jsonl", "r.jsonl", "--no-progress"]) == 0


def test_results_paths_that_cannot_be_written_are_one_line_before_any_work(three_photos, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    for target, needle in ((tmp_path, "is a folder"), (blocker / "r.jsonl", "cannot write the results file")):
        assert cli(["predict", str(three_photos), "--jsonl", str(target), "--no-progress"]) == 2
        one_line_error(capsys, str(target), needle)
    assert cli(["predict", str(three_photos), "--ray", "--parquet", str(blocker), "--no-progress"]) == 2
    one_line_error(capsys, "is a file")
    assert blocker.read_text() == "keep"


def test_a_full_disk_while_appending_stops_with_one_line_and_whole_lines(three_photos, tmp_path, capsys,
                                                                        monkeypatch):
    results = tmp_path / "r.jsonl"
    real_write, written = JsonlWriter.write, []

    def full_after_one(self, record):
        if written:
            raise OSError(28, "No space left on device", str(self.path))
        written.append(record)
        real_write(self, record)

    monkeypatch.setattr(JsonlWriter, "write", full_after_one)
    assert cli(["predict", str(three_photos), "--jsonl", str(results), "--no-progress"]) == 1
    one_line_error(capsys, "No space left on device", "1 photo(s) written")
    assert [json.loads(line)["image"] for line in results.read_text().splitlines()] == [written[0]["image"]]


def test_workers_beyond_free_memory_are_refused(capsys):
    with pytest.raises(ValueError, match="give at most"):
        check_memory(10**6)
    check_memory(1)


# 14: workers are recycled, and every photo is still written once -----------------------------------

def test_workers_are_replaced_after_their_share_of_photos_and_nothing_is_lost(real_root, tmp_path):
    from facial_keypoints.bulk.workers import annotate
    photos = sorted((real_root / "II").glob("*.jpg"))[:9]
    results = tmp_path / "r.jsonl"
    writer, counts = JsonlWriter(results), {}
    try:
        annotate(photos, writer, dict(threads=1), workers=2, progress=False, counts=counts, recycle_after=2)
    finally:
        writer.close()
    images = [json.loads(line)["image"] for line in results.read_text().splitlines()]
    assert sorted(images) == sorted(map(str, photos)) and counts["recycled"] >= 3


# 17: a corrupt ONNX file beside a checkpoint, and outputs on a read-only disk ----------------------

def test_a_garbage_int8_model_beside_a_checkpoint_is_named_and_not_used(tmp_path, capsys):
    from facial_keypoints.weights import DEFAULT_CHECKPOINT
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(DEFAULT_CHECKPOINT.read_bytes())
    (tmp_path / "model.int8.onnx").write_bytes(b"\x08garbage" * 10)
    landmarker = FaceLandmarker(checkpoint)
    assert landmarker.backend == "torch"
    one_line_error(capsys, "model.int8.onnx is not a readable ONNX model")


@pytest.fixture
def read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a read-only file system needs root (permissions alone do not stop root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_evaluate_and_predict_refuse_a_read_only_output_before_any_work(read_only_folder, real_root, tmp_path,
                                                                        capsys):
    data = real_root / "II"
    for flags in (["--out", str(read_only_folder)], ["--cache-dir", str(read_only_folder / "cache")]):
        started = time.monotonic()
        assert cli(["evaluate", "--data", str(data), "--no-progress", *flags]) == 2
        one_line_error(capsys, str(read_only_folder), "cannot write there")
        assert time.monotonic() - started < 30
    assert cli(["predict", str(data / "004002.jpg"), "--jsonl", str(read_only_folder / "r.jsonl")]) == 2
    one_line_error(capsys, "cannot write the results file")


def test_export_refuses_an_opset_it_cannot_write(capsys):
    with pytest.raises(SystemExit) as stop:
        cli(["export", "--opset", "5"])
    assert stop.value.code == 2
    one_line_error(capsys, "from 11 to 23")


def test_a_ray_error_line_names_the_photo_not_a_buffer(tmp_path):
    from facial_keypoints.bulk.ray_predict import LandmarkerActor
    actor = LandmarkerActor(dict(threads=1), recycle_after=10)
    out = actor({"bytes": [b"not a photo"], "path": ["/photos/broken.jpg"]})
    assert "/photos/broken.jpg" in out["error"][0] and "BytesIO" not in out["error"][0]
