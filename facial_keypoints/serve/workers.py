"""The bounded inference pool: worker processes (or threads), each with its own model, behind one queue.

The event loop never runs a model. A request becomes a job; ``InferencePool.run`` queues it and awaits
its answer, which a reader thread hands back to the loop. Each worker has at most ``PIPELINE`` jobs at
once (one running, one waiting in its pipe), so that the rest wait in the server's queue: past
``max_queue`` waiting jobs a new one is refused at once (``PoolBusy``, 503 with Retry-After), and a job
not answered within ``timeout`` seconds is given up (``PoolTimeout``, 504; if it had not started it
never does). A camera session is pinned to one worker, which keeps its tracker; its frames go to that
worker only. A worker process that dies fails its jobs (``JobFailed``) and a fresh one takes its place;
one that has served ``recycle_after`` jobs and holds no session is replaced the same way, so memory any
library leaks stays bounded.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import math
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field

from facial_keypoints.serve.errors import JobFailed, PoolBusy, PoolTimeout
from facial_keypoints.serve.jobs import run_worker
from facial_keypoints.serve.settings import ServeSettings

PIPELINE = 2        # jobs a worker holds at once
START_TIMEOUT = 300  # seconds the first worker may take to load its model


@dataclass
class _Job:
    id: int
    kind: str
    payload: object
    future: asyncio.Future | None
    session: "Session | None" = None
    given_up: bool = False
    started: float = 0.0


@dataclass
class Session:
    """A camera connection's place in the pool: the worker that holds its tracker."""

    id: str
    worker: int = -1


@dataclass
class _Worker:
    id: int
    handle: object            # a multiprocessing Process or a Thread
    tasks: object
    ready: bool = False
    draining: bool = False
    jobs: dict = field(default_factory=dict)
    served: int = 0
    sessions: int = 0
    successor: int | None = None  # the worker loading to replace this one; it drains once that one is ready


class InferencePool:
    """``settings.workers`` workers; ``start()`` (blocking, until one has its model), ``attach(loop)``,
    then ``await run(kind, payload)`` from the loop; ``stop()``."""

    def __init__(self, settings: ServeSettings):
        self.settings = settings
        self.workers: dict[int, _Worker] = {}
        self.waiting: collections.deque[_Job] = collections.deque()
        self.pinned: dict[int, collections.deque[_Job]] = collections.defaultdict(collections.deque)
        self.info: dict = {}
        self.failure: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.seconds_per_job = 0.05
        self._ids, self._job_ids = itertools.count(), itertools.count()
        self._closing = threading.Event()
        self._reader: threading.Thread | None = None
        if settings.pool == "process":
            import multiprocessing  # spawn: a fork would copy the server's threads (and ONNX Runtime's) broken
            self.context = multiprocessing.get_context("spawn")
            self.results = self.context.Queue()
        else:
            self.context, self.results = None, queue.Queue()

    def start(self) -> None:
        """Start the workers; return once one has loaded its model (ValueError naming the problem if none can)."""
        for _ in range(self.settings.workers):
            self._spawn()
        deadline = time.monotonic() + START_TIMEOUT
        while not any(w.ready for w in self.workers.values()):
            try:
                message = self.results.get(timeout=0.5)
            except queue.Empty:
                if time.monotonic() > deadline or not any(w.handle.is_alive() for w in self.workers.values()):
                    self.stop()
                    raise ValueError("no inference worker could start") from None
                continue
            self._on_message(*message)
            if self.failure is not None:
                self.stop()
                raise ValueError(f"the model could not be loaded: {self.failure}")

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand answers to ``loop`` from now on (a reader thread)."""
        self.loop = loop
        self._reader = threading.Thread(target=self._read, name="inference-results", daemon=True)
        self._reader.start()

    def stop(self) -> None:
        self._closing.set()
        for worker in self.workers.values():
            worker.tasks.put(None)
        for worker in self.workers.values():
            worker.handle.join(timeout=5)
            if self.context is not None and worker.handle.is_alive():
                worker.handle.terminate()
        if self._reader is not None:
            self._reader.join(timeout=2)
        for job in [j for w in self.workers.values() for j in w.jobs.values()] + list(self.waiting):
            self._settle(job, "error", "the server is shutting down")

    def _spawn(self) -> _Worker:
        number = next(self._ids)
        settings, factory = self.settings.landmarker, self.settings.landmarker_factory
        if self.context is not None:
            tasks = self.context.Queue()
            handle = self.context.Process(target=run_worker, daemon=True, name=f"inference-{number}",
                                          args=(number, settings, factory, tasks, self.results, os.getpid()))
        else:
            tasks = queue.Queue()
            handle = threading.Thread(target=run_worker, daemon=True, name=f"inference-{number}",
                                      args=(number, settings, factory, tasks, self.results, None))
        handle.start()
        self.workers[number] = worker = _Worker(number, handle, tasks)
        return worker

    @property
    def queued(self) -> int:
        return len(self.waiting) + sum(len(q) for q in self.pinned.values())

    @property
    def ready_workers(self) -> int:
        return sum(w.ready and not w.draining for w in self.workers.values())

    async def run(self, kind: str, payload, session: Session | None = None) -> tuple[str, object]:
        """Queue a job and await its (status, body); PoolBusy, PoolTimeout or JobFailed where it cannot be."""
        if self.failure is not None and not self.ready_workers:
            raise JobFailed(f"the model could not be loaded: {self.failure}", 503)
        if self.queued >= self.settings.max_queue and not self._free_worker(session):
            wait = self.queued * self.seconds_per_job / max(1, self.ready_workers)
            raise PoolBusy(f"the server is busy: {self.queued} requests are waiting (--max-queue "
                           f"{self.settings.max_queue}); retry later", max(1, math.ceil(wait)))
        job = _Job(next(self._job_ids), kind, payload, self.loop.create_future(), session)
        if session is not None:
            self._place(session)
        (self.pinned[session.worker] if session is not None else self.waiting).append(job)
        self._dispatch()
        try:
            answer = await asyncio.wait_for(asyncio.shield(job.future), self.settings.timeout)
        except asyncio.TimeoutError:
            job.given_up = True
            for waiting in (self.waiting, *self.pinned.values()):
                if job in waiting:
                    waiting.remove(job)
            raise PoolTimeout(f"no answer within the server's timeout of {self.settings.timeout:g} s") from None
        if answer[0] == "died":
            raise JobFailed(answer[1])
        return answer

    def open_session(self, session_id: str) -> Session:
        session = Session(session_id)
        self._place(session)
        return session

    def close_session(self, session: Session) -> None:
        worker = self.workers.get(session.worker)
        if worker is not None:
            worker.sessions -= 1
            job = _Job(next(self._job_ids), "untrack", session.id, None, session)
            self.pinned[worker.id].append(job)
            self._dispatch()

    def _place(self, session: Session) -> None:
        """Pin ``session`` to the worker with the fewest sessions, unless its worker is still there."""
        if session.worker in self.workers and not self.workers[session.worker].draining:
            return
        live = [w for w in self.workers.values() if not w.draining] or list(self.workers.values())
        worker = min(live, key=lambda w: (not w.ready, w.sessions, len(w.jobs)))
        worker.sessions += 1
        session.worker = worker.id

    def _free_worker(self, session: Session | None) -> bool:
        """Whether the job could start at once (a full queue does not refuse it then)."""
        workers = [self.workers.get(session.worker)] if session is not None else self.workers.values()
        return any(w is not None and w.ready and not w.draining and len(w.jobs) < PIPELINE for w in workers)

    def _dispatch(self) -> None:
        for worker in list(self.workers.values()):
            while worker.ready and len(worker.jobs) < PIPELINE:
                own = self.pinned.get(worker.id)
                source = own if own else (self.waiting if not worker.draining else None)
                if not source:
                    break
                job = source.popleft()
                if job.given_up:
                    continue
                worker.jobs[job.id], job.started = job, time.perf_counter()
                worker.tasks.put((job.id, job.kind, job.payload))
            if worker.draining and worker.ready and not worker.jobs and not self.pinned.get(worker.id):
                worker.tasks.put(None)  # it ends; _check_workers forgets it then
                worker.ready = False

    def _on_message(self, number: int, job_id, status: str, body) -> None:
        worker = self.workers.get(number)
        if worker is None:
            return
        if status == "ready":
            worker.ready, self.info, self.failure = True, body, None
            for old in self.workers.values():
                old.draining = old.draining or old.successor == number
        elif status == "init":
            self.failure = body
            print(f"error: an inference worker could not load the model: {body}", file=sys.stderr)
        else:
            job = worker.jobs.pop(job_id, None)
            worker.served += 1
            if job is not None:
                self.seconds_per_job = 0.9 * self.seconds_per_job + 0.1 * (time.perf_counter() - job.started)
                self._settle(job, status, body)
            self._recycle(worker)
        self._dispatch()

    def _recycle(self, worker: _Worker) -> None:
        every = self.settings.recycle_after
        if self.context is None or not every or worker.served < every or worker.sessions or \
                worker.successor is not None:
            return
        worker.successor = self._spawn().id  # this one serves on until its successor has its model

    def _check_workers(self) -> None:
        """Forget workers that ended; a process that died is replaced, its jobs failed."""
        for worker in list(self.workers.values()):
            if worker.handle.is_alive() or self._closing.is_set():
                continue
            del self.workers[worker.id]
            pinned = self.pinned.pop(worker.id, ())
            if worker.draining and not worker.jobs:
                continue
            code = getattr(worker.handle, "exitcode", None)
            for job in [*worker.jobs.values(), *pinned]:
                self._settle(job, "died", f"the inference worker died on this request (exit code {code}); "
                                          "a fresh one replaces it")
            if self.failure is None:
                self._spawn()
        self._dispatch()

    @staticmethod
    def _settle(job: _Job, status: str, body) -> None:
        if job.future is not None and not job.future.done():
            job.future.set_result((status, body))

    def _read(self) -> None:
        """The reader thread: every answer, and every half second a look at the workers, onto the loop."""
        last_check = time.monotonic()
        while not self._closing.is_set():
            try:
                message = self.results.get(timeout=0.5)
                self.loop.call_soon_threadsafe(self._on_message, *message)
            except queue.Empty:
                pass
            except (EOFError, OSError, RuntimeError):  # the queue, or the loop, is gone: the server is ending
                return
            if time.monotonic() - last_check > 0.5:
                last_check = time.monotonic()
                try:
                    self.loop.call_soon_threadsafe(self._check_workers)
                except RuntimeError:
                    return
