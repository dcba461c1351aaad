"""predict --jsonl: one line per photo, worker processes, resuming, and what a crash or a kill leaves."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from facial_keypoints.bulk.jsonl import JsonlError, done_photos
from facial_keypoints.cli import main as cli

from conftest import linked_photos


def records(path: Path) -> dict:
    """{image: record without its timings} of a results file; fails on a repeated photo."""
    out = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record.pop("timings_ms")
        assert record["image"] not in out, f"{record['image']} written twice"
        out[record["image"]] = record
    return out


@pytest.fixture
def photos(real_root, tmp_path):
    return linked_photos(real_root, tmp_path / "photos", 30)


def test_workers_write_what_one_process_writes_and_a_rerun_adds_nothing(photos, tmp_path, capsys):
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert cli(["predict", str(photos), "--jsonl", str(one), "--no-progress"]) == 1  # the broken photo
    assert cli(["predict", str(photos), "--jsonl", str(two), "--workers", "2", "--no-progress"]) == 1
    assert "broken.jpg" in capsys.readouterr().err
    assert records(two) == records(one) and len(records(one)) == 30
    assert cli(["predict", str(photos), "--jsonl", str(two), "--workers", "2", "--no-progress"]) == 1
    assert "30 of 31 photo(s) already in" in capsys.readouterr().out  # only the broken one is tried again
    assert len(records(two)) == 30


def test_a_torn_last_line_is_cut_off_and_a_foreign_line_is_named(tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    results.write_text('{"image": "a.jpg"}\n{"image": "b.jpg"}\n{"image": "c.j')
    assert done_photos(results) == {"a.jpg", "b.jpg"}
    assert results.read_text().endswith('"b.jpg"}\n') and "cut off" in capsys.readouterr().err
    results.write_text('{"image": "a.jpg"}\nimage,faces\n')
    with pytest.raises(JsonlError, match=r"r\.jsonl:2: not a predict record"):
        done_photos(results)


def test_jsonl_leaves_a_file_it_did_not_write_untouched_and_skips_blank_lines(tmp_path, capsys):
    mine = tmp_path / "mine.json"
    mine.write_text('{"notes":"keep"}')  # no newline at the end, and not a record: the user's file
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (64, 64), (90, 90, 90)).save(photos / "grey.jpg")
    assert cli(["predict", str(photos), "--jsonl", str(mine), "--no-progress"]) == 2
    assert "mine.json:1: not a predict record" in capsys.readouterr().err
    assert mine.read_text() == '{"notes":"keep"}'
    ours = tmp_path / "ours.jsonl"
    ours.write_text('{"image": "a.jpg"}\n\n{"image": "b.jpg"}\n\n')
    assert done_photos(ours) == {"a.jpg", "b.jpg"}
    assert ours.read_text() == '{"image": "a.jpg"}\n\n{"image": "b.jpg"}\n\n'


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def workers_of(pid: int) -> list[int]:
    """The worker processes of a predict run (not multiprocessing's resource tracker)."""
    return [child for child in children(pid) if "resource_tracker" not in Path(f"/proc/{child}/cmdline").read_text()]


def start(photos, results):
    command = [sys.executable, "-m", "facial_keypoints", "predict", str(photos), "--jsonl", str(results),
               "--workers", "2", "--no-progress"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_lines(results: Path, run, count: int = 3):
    deadline = time.monotonic() + 120
    while not (results.is_file() and results.read_text().count("\n") >= count):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)


def test_a_killed_worker_is_named_with_its_photo_and_a_killed_run_resumes_losing_nothing(photos, tmp_path):
    results = tmp_path / "r.jsonl"
    run = start(photos, results)
    wait_for_lines(results, run)
    workers = workers_of(run.pid)
    os.kill(workers[0], signal.SIGKILL)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1
    assert f"(pid {workers[0]}) died" in err and "killed by SIGKILL" in err and "the same command goes on" in err
    photo = err.split("died on ")[1].split(" (killed")[0] if "died on " in err else None
    assert photo is None or (Path(photo).parent == photos and photo not in records(results))

    run = start(photos, results)  # the whole run killed, mid-way
    wait_for_lines(results, run, len(records(results)) + 3)
    workers = workers_of(run.pid)
    run.kill()
    run.wait()
    deadline = time.monotonic() + 10  # a worker notices within a second, after the photo it is on

    def alive():
        return [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]]
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive()
    assert cli(["predict", str(photos), "--jsonl", str(results), "--workers", "2", "--no-progress"]) == 0
    assert len(records(results)) == 30  # every photo once


def test_ray_writes_what_predict_writes_and_resumes(photos, tmp_path):
    import pyarrow.parquet as parquet
    import ray

    from facial_keypoints.bulk.ray_predict import predict_with_ray
    images = sorted(photos.glob("*.jpg"))[:12]
    one = tmp_path / "one.jsonl"
    assert cli(["predict", *map(str, images), "--jsonl", str(one), "--no-progress"]) == 0
    settings = dict(threads=1)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        jsonl = tmp_path / "ray.jsonl"
        assert predict_with_ray(images[:5], settings, jsonl=jsonl, workers=2, progress=False)["written"] == 5
        # actors end after 2 photos, at their next batch: Ray restarts them and retries that batch
        counts = predict_with_ray(images, settings, jsonl=jsonl, workers=2, progress=False, batch_size=2,
                                  recycle_after=2)
        assert counts == {"written": 7, "failed": 0, "skipped": 5}
        assert records(jsonl) == records(one)  # photo for photo, nothing twice
        predict_with_ray(images[:4], settings, parquet=tmp_path / "parquet", workers=2, progress=False)
        counts = predict_with_ray(images, settings, parquet=tmp_path / "parquet", workers=2, progress=False)
        assert counts == {"written": 8, "failed": 0, "skipped": 4}  # a rerun adds only the photos not there
    finally:
        ray.shutdown()
    table = parquet.read_table(tmp_path / "parquet").to_pylist()
    from_parquet = {row["image"]: json.loads(row["record"]) for row in table}
    import jsonschema

    from facial_keypoints.output_schema import load_schema
    for record in from_parquet.values():
        jsonschema.validate(record, load_schema())
        record.pop("timings_ms")
    assert from_parquet == records(one) and all(row["error"] == "" for row in table)
