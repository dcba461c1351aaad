"""Photos on worker processes of one machine, their records appended to a results file (``jsonl``).

``facial-keypoints predict DIR --jsonl results.jsonl --workers N`` appends one line per photo to
``results.jsonl`` (the record ``predict`` writes as NAME.json) in the order the photos finish. Each
worker process loads the model once and decodes, detects and places points on its photos; the main
process only hands out paths, a bounded number at a time, and writes lines. A second run with the
same file skips the photos already in it, so a killed run resumes, losing and repeating nothing.

The workers are plain ``multiprocessing`` processes rather than a Pool or a DataLoader: those do not
say which task a killed worker was on, and a crash must name its photo. A worker is replaced by a
fresh one after ``recycle_after`` photos, so that memory a library leaks (the YuNet wheel keeps about
35 KB per call) stays bounded (``benchmarks/worker_memory.py``).
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys

from facial_keypoints.bulk.jsonl import JsonlWriter

WORKER_MEMORY = 400 * 2**20  # a worker's peak with YuNet just before it is replaced (worker_memory.md), bytes
RECYCLE_AFTER = 5000         # photos a worker processes before a fresh process takes its place


def check_memory(workers: int, each: int = WORKER_MEMORY) -> None:
    """Refuse more worker processes than this machine's free memory holds (``each`` bytes apiece)."""
    available = _available_memory()
    if available is not None and workers * each > available:
        raise ValueError(f"--workers {workers} needs about {workers * each / 2**30:.1f} GiB ({each / 2**20:.0f} MiB "
                         f"each), and this machine has {available / 2**30:.1f} GiB free: give at most "
                         f"{max(1, available // each)}")


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def photo_record(landmarker, path) -> dict:
    """The record ``predict`` writes for one photo (raises ImageError for a photo that cannot be read)."""
    from facial_keypoints.data.images import open_photo
    result = landmarker.process(open_photo(path))
    return result.as_json(os.path.abspath(path), str(landmarker.checkpoint), landmarker.detector_name)


def _one_photo(landmarker, path) -> tuple[str, dict | str]:
    """("done", its record), or ("failed", a message naming it): one photo's failure must not stop the rest."""
    from facial_keypoints.data.images import naming
    try:
        return "done", photo_record(landmarker, path)
    except Exception as error:  # noqa: BLE001 - whatever went wrong, it is this photo's alone
        return "failed", naming(path, error)


def _die_with_parent(parent: int) -> None:
    """End this worker when the main process ends, whatever it is doing (loading its model, say): Linux's
    parent-death signal, and a check that the parent did not end before it was set."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl here: the task loop below watches the parent instead
        pass
    if os.getppid() != parent:
        os._exit(0)


def _worker(number: int, settings: dict, tasks, results, current, parent: int, recycle_after: int) -> None:
    """A worker process: one model, then photos from ``tasks`` until None, or until it has done
    ``recycle_after`` of them (it then says "retired" and a fresh process takes its place);
    ``current[number]`` holds the photo being worked on, in shared memory, so it survives the worker's death."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    try:
        from facial_keypoints.api import FaceLandmarker
        landmarker = FaceLandmarker(**settings)
    except Exception as error:  # noqa: BLE001 - reported by the main process as one line
        results.put(("init", number, f"{error}"))
        return
    for _ in range(recycle_after):
        while True:
            if os.getppid() != parent:  # the main process was killed: nobody reads results any more, so
                results.cancel_join_thread()  # do not wait at exit for them to be read
                return
            try:
                task = tasks.get(timeout=1.0)
                break
            except queue.Empty:
                continue
        if task is None:
            return
        index, path = task
        current[number] = index
        kind, payload = _one_photo(landmarker, path)
        results.put((kind, index, payload))
        current[number] = -1
    results.put(("retired", number, None))


class WorkerDied(RuntimeError):
    """A worker process ended without finishing its photo; the message names the photo."""


def _death(process, photo) -> str:
    code = process.exitcode
    how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
    where = f"on {photo}" if photo is not None else "between photos"
    return f"a worker process (pid {process.pid}) died {where} ({how})"


def annotate(photos: list, writer: JsonlWriter, settings: dict, workers: int = 0, progress: bool = True,
             counts: dict | None = None, recycle_after: int = RECYCLE_AFTER) -> dict:
    """Run every photo of ``photos`` (paths) and append its record to ``writer``; returns counts.

    ``workers`` 0: in this process; N: N worker processes, each with ``settings`` (FaceLandmarker's
    arguments) and a model of its own. A photo that cannot be read is reported and skipped (it is not
    written, so a later run tries it again); a worker that dies raises WorkerDied naming its photo.
    ``counts`` ({"written", "failed"}) is filled as photos finish, so it is right after an exception too.
    A worker is replaced by a fresh process after ``recycle_after`` photos (``counts["recycled"]``).
    """
    from tqdm import tqdm
    counts = counts if counts is not None else {}
    counts.update(written=0, failed=0, recycled=0)
    bar = tqdm(total=len(photos), unit="photo", disable=not progress)

    def handle(kind, payload):
        if kind == "done":
            writer.write(payload)
            counts["written"] += 1
        else:
            print(f"error: {payload} (skipped)", file=sys.stderr)
            counts["failed"] += 1
        bar.update(1)

    try:
        if workers == 0:
            from facial_keypoints.api import FaceLandmarker
            landmarker = FaceLandmarker(**settings)
            for path in photos:
                handle(*_one_photo(landmarker, path))
        else:
            _run_workers(photos, settings, workers, handle, recycle_after, counts)
    finally:
        bar.close()
    return counts


class _Pool:
    """``workers`` processes fed from a bounded queue: at most 2N photos in flight, a retired worker
    replaced by a fresh one, a dead one named with its photo."""

    def __init__(self, photos: list, settings: dict, workers: int, recycle_after: int):
        # spawn, not fork: the parent may hold OpenMP and ONNX Runtime thread pools, which a fork copies broken
        self.context = multiprocessing.get_context("spawn")
        self.tasks, self.results = self.context.Queue(maxsize=3 * workers), self.context.Queue()
        self.current = self.context.Array("q", [-1] * workers, lock=False)
        self.photos, self.settings, self.recycle_after = photos, settings, recycle_after
        self.pending, self.in_flight, self.fed_all = iter(enumerate(photos)), 0, False
        self.processes = [self.start(n) for n in range(workers)]

    def start(self, number: int):
        process = self.context.Process(target=_worker, daemon=True, args=(
            number, self.settings, self.tasks, self.results, self.current, os.getpid(), self.recycle_after))
        process.start()
        return process

    def feed(self) -> None:
        while not self.fed_all and self.in_flight < 2 * len(self.processes):
            task = next(self.pending, None)
            if task is None:
                self.fed_all = True
                for _ in self.processes:
                    self.tasks.put(None)
            else:
                self.tasks.put((task[0], str(task[1])))
                self.in_flight += 1

    def check(self) -> None:
        """Raise WorkerDied, naming its photo, for a worker that ended with an error or a signal."""
        for number, process in enumerate(self.processes):
            if process.exitcode is not None and process.exitcode != 0:
                photo = self.photos[self.current[number]] if self.current[number] >= 0 else None
                raise WorkerDied(_death(process, photo))

    def replace(self, number: int) -> None:
        self.processes[number].join()
        self.processes[number] = self.start(number)

    def close(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(timeout=5)


def _run_workers(photos: list, settings: dict, workers: int, handle, recycle_after: int, counts: dict) -> None:
    pool = _Pool(photos, settings, workers, recycle_after)
    try:
        while True:
            pool.feed()
            if pool.fed_all and pool.in_flight == 0:
                break
            pool.check()
            try:
                kind, index, payload = pool.results.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == "init":
                raise WorkerDied(f"a worker process could not load the model: {payload}")
            if kind == "retired":  # it did its share of photos: a fresh process, with fresh memory, goes on
                pool.replace(index)
                counts["recycled"] += 1
                continue
            pool.in_flight -= 1
            handle(kind, payload)
    finally:
        pool.close()
