"""The landmarker on Ray Data, for photo collections larger than one machine (``pip install '.[ray]'``).

    facial-keypoints predict DIR --jsonl results.jsonl --ray --workers 8            # a local Ray instance
    facial-keypoints predict DIR --jsonl results.jsonl --ray --ray-address auto     # the Ray cluster this node is in
    facial-keypoints predict DIR --parquet results/ --ray                           # Parquet files instead

``predict_with_ray`` reads the photos' bytes with ``ray.data.read_binary_files``, runs them through
a pool of ``workers`` actors with ``map_batches`` (each actor loads the model once, one CPU each),
and either streams the records back to a JSON-lines file (the same lines, and the same resuming,
as ``predict --jsonl``) or has Ray write Parquet files (columns ``image``, ``faces``, ``record`` as
the JSON text, ``error``). The same call runs on a laptop and on a cluster; only the address differs.
Either output resumes: a rerun skips the photos already written (in the JSON lines, or in the folder's
Parquet files without an error), and a run holds a lock on its output, so two runs never share one.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np


class LandmarkerActor:
    """One model per actor; a batch of photo bytes in, a batch of records out.

    After ``recycle_after`` photos the actor ends itself at its next batch, before working on it: Ray
    Data restarts a dead actor and retries its batch (its defaults ``max_restarts=-1`` and
    ``max_task_retries=-1``), so a fresh process, with fresh memory, does that batch.
    """

    def __init__(self, settings: dict, recycle_after: int):
        from facial_keypoints.api import FaceLandmarker
        self.landmarker = FaceLandmarker(**settings)
        self.recycle_after, self.done = recycle_after, 0

    def __call__(self, batch: dict) -> dict:
        from facial_keypoints.data.images import naming, open_photo
        if self.done >= self.recycle_after:
            os._exit(0)
        self.done += len(batch["path"])
        out = {"image": [], "faces": [], "record": [], "error": []}
        for data, path in zip(batch["bytes"], batch["path"]):
            record, faces, error = "", 0, ""
            try:
                result = self.landmarker.process(open_photo(io.BytesIO(data), name=path))
                record = json.dumps(result.as_json(path, str(self.landmarker.checkpoint),
                                                   self.landmarker.detector_name), allow_nan=False)
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
                     progress: bool = True, recycle_after: int | None = None) -> dict:
    """Run ``photos`` (paths) through ``workers`` Ray actors; returns counts {"written", "failed", "skipped"}.

    ``settings``: FaceLandmarker's arguments (give each actor ``threads=1``: Ray gives it one CPU).
    ``jsonl``: append records there, skipping photos already in it (``bulk.jsonl.done_photos``); ``parquet``:
    a folder for Ray's Parquet files, skipping photos its files hold already. ``address``: None starts a
    local Ray instance, ``"auto"`` joins the cluster this machine belongs to, ``ray://host:10001`` a
    remote one. ``recycle_after``: photos an actor does before a fresh one replaces it (None: bulk's).
    """
    import ray

    from facial_keypoints.bulk.jsonl import JsonlWriter, done_photos, folder_lock, photo_key

    from facial_keypoints.bulk.workers import RECYCLE_AFTER
    if (jsonl is None) == (parquet is None):
        raise ValueError("give the Ray path one output: a JSON-lines file or a Parquet folder")
    if address is None:
        from facial_keypoints.bulk.workers import check_memory
        check_memory(workers)  # a local instance: every actor is on this machine
    writer = JsonlWriter(jsonl) if jsonl is not None else None  # the file's lock, taken before any work
    lock = folder_lock(parquet) if parquet is not None else None
    try:
        done = done_photos(jsonl) if jsonl is not None else done_in_parquet(parquet)
        done = {photo_key(image) for image in done}
        todo = [os.path.abspath(p) for p in photos if photo_key(p) not in done]
        counts = {"written": 0, "failed": 0, "skipped": len(photos) - len(todo)}
        if todo:
            recycle_after = RECYCLE_AFTER if recycle_after is None else recycle_after
            _run(ray, todo, settings, writer, parquet, workers, batch_size, address, progress, counts, recycle_after)
    finally:
        if writer is not None:
            writer.close()
        if lock is not None:
            os.close(lock)
    return counts


def done_in_parquet(folder: Path) -> set[str]:
    """The ``image`` of every row written without an error in ``folder``'s Parquet files."""
    import pyarrow.parquet as pq
    done = set()
    for path in sorted(Path(folder).glob("*.parquet")):
        try:
            table = pq.read_table(path, columns=["image", "error"])
        except Exception as error:  # noqa: BLE001 - pyarrow's own errors: a file that is not ours
            raise ValueError(f"{path}: not a Parquet file of predict's ({error}); give --parquet another "
                             "folder") from None
        done.update(image for image, error in zip(table["image"].to_pylist(), table["error"].to_pylist())
                    if not error)
    return done


def _run(ray, todo, settings, writer, parquet, workers, batch_size, address, progress, counts, recycle_after):
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    # Reading bytes is I/O: read tasks ask for no CPU, so the actors, one whole CPU each, cannot starve
    # them (with one CPU per read, 2 actors on a 2-CPU machine left the reads waiting for ever), and as
    # many run at once as there are actors (unbounded, Ray started a worker process per read task).
    dataset = ray.data.read_binary_files(todo, include_paths=True, num_cpus=0, concurrency=workers).map_batches(
        LandmarkerActor, fn_constructor_kwargs={"settings": settings, "recycle_after": recycle_after}, concurrency=workers, num_cpus=1,
        batch_size=batch_size)
    if parquet is not None:
        dataset = dataset.materialize()
        dataset.write_parquet(str(parquet))
        for row in dataset.select_columns(["error"]).iter_rows():
            if row["error"]:
                print(f"error: {row['error']} (skipped)")
                counts["failed"] += 1
        counts["written"] = len(todo) - counts["failed"]
        return
    for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
        for record, error in zip(batch["record"], batch["error"]):
            if error:
                print(f"error: {error} (skipped)")
                counts["failed"] += 1
            else:
                writer.write(json.loads(record))
                counts["written"] += 1
