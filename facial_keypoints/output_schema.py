"""The version of predict's output records, and the JSON Schema that describes them.

Every record ``predict`` (and ``serve``) writes carries ``"schema": SCHEMA``: a photo's record
(``STEM.json``, a line of ``--jsonl``, the ``record`` column of ``--parquet``) and a video frame's line
(``STEM.jsonl``). ``output_schema.json`` beside this module is their JSON Schema (draft 2020-12);
docs/output.md gives every field with its units and coordinate frame. The number changes when a field
changes meaning or goes; new optional fields keep it.
"""
from __future__ import annotations

import json
from pathlib import Path

SCHEMA = "facial_keypoints/2"
SCHEMA_PATH = Path(__file__).with_name("output_schema.json")


def load_schema() -> dict:
    """The JSON Schema of the records (validate with ``jsonschema.validate(record, load_schema())``)."""
    return json.loads(SCHEMA_PATH.read_text())
