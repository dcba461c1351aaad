"""Video: the filters, the tracker's ids and detector schedule, and the video files predict writes."""
import csv
import json
import wave

import cv2
import numpy as np
import pytest
from PIL import Image

from facial_keypoints.api import FaceLandmarker
from facial_keypoints.cli import main as cli
from facial_keypoints.video.smoothing import FaceMotionFilter, OneEuroFilter
from facial_keypoints.video.annotate import annotate_video
from facial_keypoints.video.frames import read_frames

TWO_FACES, ONE_FACE = "I/000010.jpg", "II/004002.jpg"


def test_one_euro_filter_steadies_a_still_signal_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    still = OneEuroFilter(min_cutoff=1.0, beta=2.0)
    raw = 10 + rng.normal(0, 0.05, 300)
    smoothed = np.array([still(x, t / 30) for t, x in enumerate(raw)])
    assert np.abs(np.diff(smoothed[30:])).mean() < 0.25 * np.abs(np.diff(raw[30:])).mean()
    moving = OneEuroFilter(min_cutoff=1.0, beta=2.0)
    ramp = np.arange(60) * 0.2  # 6 units per second
    followed = np.array([moving(x, t / 30) for t, x in enumerate(ramp)])
    lag_frames = (ramp[-1] - followed[-1]) / 0.2
    assert lag_frames < 2.0
    slow = OneEuroFilter(min_cutoff=1.0, beta=0.0)  # no speed term: a plain low-pass lags far more
    assert (ramp[-1] - [slow(x, t / 30) for t, x in enumerate(ramp)][-1]) / 0.2 > 2 * lag_frames
    moving.reset()
    assert moving(5.0, 10.0) == 5.0  # after a reset the first value passes unchanged
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0)


def rigid(points: np.ndarray, t: int, turn: bool) -> np.ndarray:
    """``points`` at frame ``t``: still, or (``turn``) panning 3 px, rolling 1 degree and growing 0.3 % a frame."""
    if not turn:
        return points
    angle = np.radians(t)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = points.mean(axis=0)
    return (points - centre) @ rotation.T * (1 + 0.003 * t) + centre + [3 * t, 0]


def test_the_face_motion_filter_follows_a_turning_head_and_steadies_a_still_one():
    rng = np.random.default_rng(0)
    face = rng.normal(0, 30, (21, 2)) + 200
    errors = {}
    for name, make in [("face motion", FaceMotionFilter), ("one-euro", lambda: OneEuroFilter(0.5, 20.0))]:
        for turn in (False, True):
            smoother = make()
            truth = [rigid(face, t, turn) for t in range(60)]
            out = [smoother(p + rng.normal(0, 0.5, p.shape), t / 30, scale=100.0) for t, p in enumerate(truth)]
            if turn:  # the lag: the mean distance to the truth over the last second
                errors[name, turn] = np.mean([np.linalg.norm(o - p, axis=1).mean() for o, p in zip(out[30:], truth[30:])])
            else:  # the jitter: the mean frame-to-frame motion of a still face's points
                errors[name, turn] = np.abs(np.diff(np.stack(out[30:]), axis=0)).mean()
    raw_jitter = np.abs(np.diff(rng.normal(0, 0.5, (30, 21, 2)), axis=0)).mean()
    assert errors["face motion", False] < 0.4 * raw_jitter  # steady at rest
    assert errors["face motion", True] < 0.6 * errors["one-euro", True]  # and far less lag than one filter
    assert errors["face motion", True] < 1.0  # under the noise's own size (0.5 px per axis)
    roll = FaceMotionFilter()  # a face rolling past 180 degrees stays whole: no jump in the filtered roll
    spun = [roll(rigid(face, 170 + t, True) - [3 * (170 + t), 0], t / 30, 100.0) for t in range(20)]
    assert np.linalg.norm(spun[-1] - (rigid(face, 189, True) - [3 * 189, 0]), axis=1).mean() < 3.0
    assert np.allclose(FaceMotionFilter()(face, 0.0, 100.0), face)  # the first frame passes unchanged


def write_clip(path, frames, fps=25):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def scenes(real_root):
    """(frames of a slowly panning two-face photo, then a cut to a one-face photo), with sensor noise."""
    rng = np.random.default_rng(0)
    photos = [np.asarray(Image.open(real_root / name).convert("RGB").resize((320, 276)))
              for name in (TWO_FACES, ONE_FACE)]
    frames = []
    for i in range(24):
        shift = np.float32([[1, 0, (i % 16) * 0.5], [0, 1, 0]])
        frame = cv2.warpAffine(photos[i >= 16], shift, (320, 276), borderMode=cv2.BORDER_REPLICATE)
        frames.append(np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def landmarker():
    return FaceLandmarker(threads=2)


def test_the_tracker_keeps_ids_detects_on_schedule_and_catches_a_scene_cut_at_once(scenes, landmarker):
    tracker = landmarker.track(detect_every=8)
    ids = [[f.id for f in tracker.update(frame, t / 25)] for t, frame in enumerate(scenes)]
    assert all(sorted(i) == [0, 1] for i in ids[:16])  # the same two faces, the same ids
    assert ids[16] == [2] and all(i == [2] for i in ids[16:])  # the cut: a new face, a new id, on its frame
    assert tracker.detections == 3  # frames 0 and 8, then the cut at 16 (the lost faces ask for it)
    faces = tracker.update(scenes[-1], 24 / 25)
    assert faces[0].keypoints.shape == (21, 2) and faces[0].keypoints.dtype == np.float32
    assert "id" in faces[0].as_json()


def test_a_face_missed_for_a_moment_comes_back_with_its_id(scenes, landmarker):
    blank = np.full_like(scenes[0], 128)
    tracker = landmarker.track()
    first = {f.id for f in tracker.update(scenes[0], 0.0)}
    assert [f.id for f in tracker.update(blank, 0.04)] == []  # gone: the detector finds nothing
    again = {f.id for f in tracker.update(scenes[1], 0.08)}
    assert len(first) == 2 and again == first
    tracker = landmarker.track()
    tracker.keep_lost = 0
    first = {f.id for f in tracker.update(scenes[0], 0.0)}
    tracker.update(blank, 0.04)
    assert not {f.id for f in tracker.update(scenes[1], 0.08)} & first  # forgotten at once: new ids


def test_smoothing_steadies_the_points_of_a_still_face(real_root, landmarker):
    rng = np.random.default_rng(1)
    still = np.asarray(Image.open(real_root / ONE_FACE).convert("RGB").resize((320, 426)))
    frames = [np.clip(still + rng.normal(0, 4, still.shape), 0, 255).astype(np.uint8) for _ in range(20)]
    jitter = {}
    for smooth in (False, True):
        tracker = landmarker.track(detect_every=100, smooth=smooth)
        points = np.stack([tracker.update(frame, t / 30)[0].keypoints for t, frame in enumerate(frames)])
        jitter[smooth] = np.abs(np.diff(points[5:], axis=0)).mean()
    assert jitter[True] < 0.5 * jitter[False]


def test_predict_on_a_video_writes_a_line_per_frame_and_an_annotated_video(scenes, tmp_path, capsys):
    clip = write_clip(tmp_path / "clip.mp4", scenes)
    out = tmp_path / "out"
    assert cli(["predict", str(clip), "--out", str(out), "--no-progress", "--threads", "2"]) == 0
    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(len(scenes)))
    assert lines[1]["time_s"] == pytest.approx(1 / 25, abs=1e-3)
    assert {face["id"] for face in lines[0]["faces"]} == {0, 1}
    assert sum(1 for _ in read_frames(out / "clip.mp4")) == len(scenes)
    assert sorted(p.name for p in out.iterdir()) == ["clip.jsonl", "clip.mp4"]  # no temporary file left
    assert "24 frames" in capsys.readouterr().out


def test_predict_csv_has_a_row_per_face_per_frame_matching_the_json_lines(scenes, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", scenes[:6])
    out = tmp_path / "out"
    assert cli(["predict", str(clip), "--out", str(out), "--no-progress", "--threads", "2", "--csv"]) == 0
    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    with open(out / "clip.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(len(line["faces"]) for line in lines) == 12 and len(rows[0]) == 12 + 3 * 21
    first = lines[5]["faces"][1]
    row = rows[11]
    assert (int(row["frame"]), int(row["id"])) == (5, first["id"])
    assert [float(row[k]) for k in ("x1", "y1", "x2", "y2")] == first["box"]
    assert [float(row["nose_tip_x"]), float(row["nose_tip_y"])] == first["keypoints"]["nose_tip"]


def test_an_interrupted_video_keeps_the_frames_done_whole(scenes, landmarker, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", scenes)
    tracker = landmarker.track()
    real_update, seen = tracker.update, []

    def stop_after_five(frame, time_s=None, bgr=False):
        if len(seen) == 5:
            raise KeyboardInterrupt
        seen.append(time_s)
        return real_update(frame, time_s, bgr)

    tracker.update = stop_after_five
    with pytest.raises(KeyboardInterrupt):
        annotate_video(tracker, clip, tmp_path / "out", "clip", progress=False, csv=True)
    lines = (tmp_path / "out" / "clip.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line) for line in lines)
    rows = (tmp_path / "out" / "clip.csv").read_text().splitlines()
    assert rows[0].startswith("frame,time_s,id,") and rows[-1].startswith("4,")
    assert sum(1 for _ in read_frames(tmp_path / "out" / "clip.mp4")) == 5


def test_bad_videos_get_one_line_each_and_the_rest_of_the_batch_goes_on(scenes, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    good = write_clip(videos / "good.mp4", scenes[:4])
    (videos / "empty.mp4").write_bytes(b"")                                   # zero length
    (videos / "garbage.avi").write_bytes(np.random.default_rng(0).bytes(5000))  # not a video at all
    (videos / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with wave.open(str(videos / "sound.mov"), "wb") as sound:                   # a file with no video stream
        sound.setnchannels(1), sound.setsampwidth(2), sound.setframerate(8000)
        sound.writeframes(b"\0\0" * 800)
    out = tmp_path / "out"
    assert cli(["predict", str(videos), "--out", str(out), "--no-progress", "--threads", "2"]) == 1
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 4 and all(line.endswith("(skipped)") for line in errors)
    for name in ("empty.mp4", "garbage.avi", "truncated.mp4", "sound.mov"):
        assert sum(name in line for line in errors) == 1, name
    assert sorted(p.name for p in out.iterdir()) == ["good.jsonl", "good.mp4"]  # nothing half-written


def test_predict_never_writes_its_annotated_video_over_the_input(scenes, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", scenes[:4])
    original = clip.read_bytes()
    assert cli(["predict", str(clip), "--out", str(tmp_path), "--no-progress", "--threads", "2"]) == 0
    assert clip.read_bytes() == original
    assert (tmp_path / "clip_.mp4").is_file() and (tmp_path / "clip_.jsonl").is_file()
