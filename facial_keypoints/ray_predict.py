"""The landmarker on Ray Data, for photo collections larger than one machine (``pip install '.[ray]'``).

    facial-keypoints predict DIR --jsonl results.jsonl --ray --workers 8            # a local Ray instance
    facial-keypoints predict DIR --jsonl results.jsonl --ray --ray-address auto     # the Ray cluster this node is in
    facial-keypoints predict DIR --parquet results/ --ray                           # Parquet files instead

``predict_with_ray`` reads the photos' bytes with ``ray.data.read_binary_files``, runs them through
a pool of ``workers`` actors with ``map_batches`` (each actor loads the model once, one CPU each),
and either streams the records back to a JSON-lines file (the same lines, and the same resuming,
as ``predict --jsonl``) or has Ray write Parquet files (columns ``image``, ``faces``, ``record`` as
the JSON text, ``error``). The same call runs on a laptop and on a cluster; only the address differs.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np


class LandmarkerActor:
    """One model per actor; a batch of photo bytes in, a batch of records out."""

    def __init__(self, settings: dict):
        from .api import FaceLandmarker
        self.landmarker = FaceLandmarker(**settings)

    def __call__(self, batch: dict) -> dict:
        from .images import naming, open_photo
        out = {"image": [], "faces": [], "record": [], "error": []}
        for data, path in zip(batch["bytes"], batch["path"]):
            record, faces, error = "", 0, ""
            try:
                result = self.landmarker.process(open_photo(io.BytesIO(data)))
                record = json.dumps(result.as_json(path, str(self.landmarker.checkpoint),
                                                   self.landmarker.detector_name))
                faces = len(result.accepted)
            except Exception as problem:  # noqa: BLE001 - one photo's failure must not stop the rest
                error = naming(path, problem)
            out["image"].append(path)
            out["faces"].append(faces)
            out["record"].append(record)
            out["error"].append(error)
        return {key: np.array(values) for key, values in out.items()}


def predict_with_ray(photos: list, settings: dict, *, jsonl: Path | None = None, parquet: Path | None = None,
                     workers: int = 2, batch_size: int = 16, address: str | None = None,
                     progress: bool = True) -> dict:
    """Run ``photos`` (paths) through ``workers`` Ray actors; returns counts {"written", "failed", "skipped"}.

    ``settings``: FaceLandmarker's arguments (give each actor ``threads=1``: Ray gives it one CPU).
    ``jsonl``: append records there, skipping photos already in it (``bulk.done_photos``); ``parquet``:
    a folder for Ray's Parquet files. ``address``: None starts a local Ray instance, ``"auto"`` joins the
    cluster this machine belongs to, ``ray://host:10001`` a remote one.
    """
    import ray

    from .bulk import JsonlWriter, done_photos
    if (jsonl is None) == (parquet is None):
        raise ValueError("give the Ray path one output: a JSON-lines file or a Parquet folder")
    done = done_photos(jsonl) if jsonl is not None else set()
    todo = [str(p) for p in photos if str(p) not in done]
    counts = {"written": 0, "failed": 0, "skipped": len(photos) - len(todo)}
    if not todo:
        return counts
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    # Reading bytes is I/O: read tasks ask for no CPU, so the actors, one whole CPU each, cannot starve
    # them (with one CPU per read, 2 actors on a 2-CPU machine left the reads waiting for ever), and as
    # many run at once as there are actors (unbounded, Ray started a worker process per read task).
    dataset = ray.data.read_binary_files(todo, include_paths=True, num_cpus=0, concurrency=workers).map_batches(
        LandmarkerActor, fn_constructor_kwargs={"settings": settings}, concurrency=workers, num_cpus=1,
        batch_size=batch_size)
    if parquet is not None:
        dataset = dataset.materialize()
        dataset.write_parquet(str(parquet))
        failed = 0
        for row in dataset.select_columns(["error"]).iter_rows():
            if row["error"]:
                print(f"error: {row['error']} (skipped)")
                failed += 1
        counts.update(written=len(todo) - failed, failed=failed)
        return counts
    writer = JsonlWriter(jsonl)
    try:
        for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
            for record, error in zip(batch["record"], batch["error"]):
                if error:
                    print(f"error: {error} (skipped)")
                    counts["failed"] += 1
                else:
                    writer.write(json.loads(record))
                    counts["written"] += 1
    finally:
        writer.close()
    return counts
