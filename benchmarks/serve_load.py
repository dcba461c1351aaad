"""``facial-keypoints serve`` under load: a real uvicorn process on 127.0.0.1, photos posted at concurrency
1, 8 and 32, beside ``predict --jsonl --workers 2`` on the same photos, in the same run.

    python benchmarks/serve_load.py --data-root ../shared/data                    # 10,000 requests
    python benchmarks/serve_load.py --data-root ../shared/data --requests 1000    # a quick look

The server runs with its defaults on this machine (``--workers`` 2 here, one thread each) and
``--recycle-after 0``, so that the memory figure is what 10,000 requests leave, not what a recycled
worker forgets. The client is a small asyncio HTTP/1.1 client with keep-alive (it shares the CPUs).
Throughput: ``--rounds`` rounds in which predict and serve at concurrency 8 (twice as many requests as
photos) take turns, medians (the machine may be shared: only turns side by side compare). Latency: of
``--requests``, 5 % at concurrency 1, 20 % at 8, 20 % at 32, the rest at 8 again. The total resident
memory of the server and its workers (every descendant process) is read after a warm-up and after
the last request. ``/healthz`` is polled every quarter second throughout. Everything is
bounded: ``--max-seconds`` for the whole run, 60 s per request; the server is stopped at the end,
whatever happened. Writes benchmarks/results/serve_load.md.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from serving import Server  # noqa: E402  (tests/serving.py: a serve process on a free port)


async def post(reader, writer, host: str, body: bytes) -> int:
    """One POST /v1/detect on an open keep-alive connection; the status."""
    writer.write(f"POST /v1/detect HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/jpeg\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def phase(port: int, photos: list[bytes], count: int, concurrency: int, deadline: float) -> list[tuple]:
    """``count`` requests by ``concurrency`` connections; [(status or error, seconds)]."""
    results, numbers = [], iter(range(count))

    async def connection():
        reader = writer = None
        for n in numbers:
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                status = await asyncio.wait_for(post(reader, writer, f"127.0.0.1:{port}", photos[n % len(photos)]), 60)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as error:
                status, writer = type(error).__name__, None
            results.append((status, time.perf_counter() - started))
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return results


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, grew = {pid}, True
    while grew:
        more = {p for p, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    total = 0
    for member in tree:
        try:
            status = Path(f"/proc/{member}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024
        except (OSError, StopIteration):
            pass
    return total


class HealthPoller(threading.Thread):
    """GET /healthz every quarter second: how many failed, and the slowest answer."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop, self.times, self.failed = url, threading.Event(), [], 0

    def run(self):
        while not self.stop.wait(0.25):
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as answer:
                    ok = answer.status == 200
            except OSError:
                ok = False
            self.times.append(time.perf_counter() - started)
            self.failed += not ok


def predict_rate(photo_paths: list[Path], workers: int) -> float:
    """Photos per second of ``predict --jsonl --workers N``: (N - 20) / (time for N - time for 20)."""
    seconds = []
    for subset in (photo_paths[:20], photo_paths):
        out = Path(tempfile.mkdtemp(prefix="serve_load_")) / "r.jsonl"
        command = [sys.executable, "-m", "facial_keypoints", "predict", *map(str, subset), "--jsonl", str(out),
                   "--workers", str(workers), "--no-progress"]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    return (len(photo_paths) - 20) / (seconds[1] - seconds[0])


def summary(name: str, results: list[tuple], seconds: float) -> tuple[str, dict]:
    ok = [t for status, t in results if status == 200]
    busy = sum(status == 503 for status, _ in results)
    errors = len(results) - len(ok) - busy
    ms = sorted(t * 1000 for t in ok) or [float("nan")]
    cut = statistics.quantiles(ms, n=100) if len(ms) > 1 else ms * 99
    row = (f"| {name} | {len(results):,} | {len(ok):,} | {busy} | {errors} | {len(ok) / seconds:.1f} | "
           f"{cut[49]:.0f} | {cut[94]:.0f} | {cut[98]:.0f} |")
    return row, {"ok": len(ok), "busy": busy, "errors": errors, "rate": len(ok) / seconds, "n": len(results)}


def compare(port: int, photos: list[bytes], paths: list[Path], workers: int, args, deadline: float) -> dict:
    """Rounds in which predict and serve at concurrency 8 take turns on the same photos: the machine is
    shared, so only turns taken side by side compare."""
    rates = {"predict": [], "serve, concurrency 8": []}
    for round_ in range(args.rounds):
        rates["predict"].append(predict_rate(paths, workers))
        started = time.perf_counter()
        results = asyncio.run(phase(port, photos, len(paths) * 2, 8, deadline))
        rates["serve, concurrency 8"].append(sum(s == 200 for s, _ in results) / (time.perf_counter() - started))
        print(f"round {round_ + 1}: " + ", ".join(f"{name} {values[-1]:.1f}" for name, values in rates.items())
              + " photos/s", flush=True)
    return {name: statistics.median(values) for name, values in rates.items()} | {"_done": args.rounds * 2 * len(paths)}


def run_phases(port: int, photos: list[bytes], args, deadline: float) -> tuple[list[str], dict]:
    """Concurrency 1, 8, 32, then 8 again for the rest of ``--requests``: a table row each."""
    total = args.requests
    plan = [("concurrency 1", max(20, total // 20), 1), ("concurrency 8", total // 5, 8),
            ("concurrency 32", total // 5, 32)]
    plan.append(("concurrency 8, the rest", max(0, total - sum(count for _, count, _ in plan)), 8))
    rows, stats = [], {}
    for name, count, concurrency in plan:
        started = time.perf_counter()
        results = asyncio.run(phase(port, photos, count, concurrency, deadline))
        row, stats[name] = summary(name, results, time.perf_counter() - started)
        rows.append(row)
        print(row, flush=True)
    return rows, stats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--requests", type=int, default=10_000, help="requests after the warm-up, in all")
    parser.add_argument("--photos", type=int, default=200, help="distinct photos (the first of II/), posted in turn")
    parser.add_argument("--rounds", type=int, default=3, help="turns of predict and serve for the throughput")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="the whole run stops by then")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serve_load.md")
    args = parser.parse_args(argv)
    root = Path(args.data_root or os.environ.get("FKD_DATA_ROOT") or "data")
    paths = sorted((root / "II").glob("*.jpg"))[:args.photos]
    photos = [p.read_bytes() for p in paths]
    workers = min(os.cpu_count() or 1, 4)
    log = Path(tempfile.mkdtemp(prefix="serve_load_")) / "server.log"
    server = Server(["--no-access-log", "--recycle-after", "0"], log)
    deadline = time.monotonic() + args.max_seconds
    with server as url:
        port = int(url.rsplit(":", 1)[1])
        poller = HealthPoller(url)
        poller.start()
        try:
            asyncio.run(phase(port, photos, 100, 8, deadline))  # warm-up: imports, first allocations
            rss_before = tree_rss(server.process.pid)
            rates = compare(port, photos, paths, workers, args, deadline)
            rows, stats = run_phases(port, photos, args, deadline)
            stats["rss"] = (rss_before, tree_rss(server.process.pid))
            stats["done"] = rates.pop("_done") + sum(s["n"] for name, s in stats.items() if name != "rss")
        finally:
            poller.stop.set()
            poller.join()
    write_report(args, argv, rows, stats, rates, workers, poller, len(photos))
    return 0


def write_report(args, argv, rows, stats, rates, workers, poller, distinct) -> None:
    c8 = stats["concurrency 8"]
    serve, plain = rates["serve, concurrency 8"], rates["predict"]
    before, after = stats["rss"]
    command = "python benchmarks/serve_load.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# facial-keypoints serve under load", "",
        f"    {command}", "",
        f"Machine: {machine()}. Server: `facial-keypoints serve --no-access-log --recycle-after 0` (its defaults "
        f"otherwise: {workers} worker processes, one thread each), on 127.0.0.1 beside the client; {distinct} distinct "
        "photos of II/ posted as raw JPEG bodies to /v1/detect, in turn.", "",
        "| phase | requests | 200 | 503 | other errors | photos/s | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|", *rows, "",
        f"- Throughput, medians of {args.rounds} rounds in which they take turns on the {distinct} photos: serve at "
        f"concurrency 8 **{serve:.1f} photos/s**, `predict --jsonl --workers {workers}` {plain:.1f} photos/s: "
        f"**{serve / plain:.2f}×** (predict's rate is (N - 20) / (time for N - time for 20 photos)).",
        f"- Answered 200 at concurrency 8: {100 * c8['ok'] / max(1, c8['n']):.2f} %; errors other than 503 in all: "
        f"{sum(s['errors'] for name, s in stats.items() if isinstance(s, dict))}.",
        f"- Resident memory of the server and its workers: {before / 2**20:.0f} MiB after the warm-up, "
        f"{after / 2**20:.0f} MiB after {stats['done']:,} more requests: **{(after - before) / 2**20:+.0f} MiB**.",
        f"- /healthz, polled every 0.25 s throughout: {len(poller.times)} answers, {poller.failed} failed, slowest "
        f"{max(poller.times, default=0) * 1000:.0f} ms.",
    ]
    write_table(lines, args.out)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM ends the run as Ctrl-C: the server stops
    sys.exit(main())
