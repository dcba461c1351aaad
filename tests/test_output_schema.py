"""Every writer's real output against the JSON Schema that ships in the package (docs/output.md)."""
import csv
import json

import cv2
import jsonschema
import numpy as np
import pytest
from PIL import Image

from facial_keypoints.cli import main as cli
from facial_keypoints.keypoints import POINT_NAMES
from facial_keypoints.output_schema import SCHEMA, load_schema


@pytest.fixture(scope="module")
def schema():
    jsonschema.Draft202012Validator.check_schema(load_schema())
    return load_schema()


@pytest.fixture
def photos(real_root, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for source in sorted((real_root / "II").glob("*.jpg"))[:3]:
        (folder / source.name).write_bytes(source.read_bytes())
    return folder


def test_the_photo_records_and_their_json_lines_follow_the_schema(schema, photos, tmp_path):
    assert cli(["predict", str(photos), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "out").glob("*.json"))]
    assert cli(["predict", str(photos), "--jsonl", str(tmp_path / "all.jsonl"), "--no-progress"]) == 0
    records += [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert len(records) == 6 and sum(len(r["faces"]) for r in records) >= 6
    for record in records:
        jsonschema.validate(record, schema)
        assert record["schema"] == SCHEMA
        for face in record["faces"]:
            assert set(face) >= {"quality", "point_confidence", "pose"}


def test_a_videos_frame_lines_and_csv_follow_the_schema(schema, real_root, tmp_path):
    photo = np.asarray(Image.open(sorted((real_root / "II").glob("*.jpg"))[0]).convert("RGB").resize((320, 400)))
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 400))
    for shift in range(12):
        writer.write(cv2.cvtColor(np.roll(photo, 2 * shift, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    assert cli(["predict", str(clip), "--out", str(tmp_path / "out"), "--csv", "--no-progress"]) == 0
    lines = [json.loads(line) for line in (tmp_path / "out" / "clip.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and all(line["faces"] for line in lines)
    for line in lines:
        jsonschema.validate(line, schema)
    with open(tmp_path / "out" / "clip.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    first = lines[0]["faces"][0]
    assert float(rows[0]["quality"]) == first["quality"] and float(rows[0]["yaw"]) == first["pose"]["yaw"]
    assert [float(rows[0][f"{name}_confidence"]) for name in POINT_NAMES] == list(first["point_confidence"].values())


def test_the_schema_refuses_a_record_that_breaks_it(schema, photos, tmp_path):
    assert cli(["predict", str(photos), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    record = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    for broken in ({**record, "schema": "facial_keypoints/1"},
                   {**record, "faces": [{**record["faces"][0], "keypoints": {"nose_tip": [1, 2]}}]},
                   {key: value for key, value in record.items() if key != "width"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
