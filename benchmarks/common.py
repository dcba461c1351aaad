"""Helpers the benchmark scripts share: machine description, timing, result files."""
from __future__ import annotations

import csv
import os
import platform
import statistics
import time
from pathlib import Path



def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch  # benchmarks/blazeface.py runs where torch is not installed
    except ImportError:
        return f"{cpu}, {os.cpu_count()} cores"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def ms_per_face(model, batch: int = 1, threads: int = 1, runs: int = 200, warmup: int = 20) -> float:
    """Median milliseconds per face of a forward pass at ``batch`` on ``threads`` CPU threads."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = model.eval().cpu()
        x = torch.randn(batch, 1, 112, 112)
        with torch.no_grad():
            for _ in range(warmup):
                model(x)
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000 / batch
    finally:
        torch.set_num_threads(previous)


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def append_row(path: Path, row: dict) -> None:
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def write_table(lines: list[str], path: Path) -> str:
    """Write a benchmark's markdown lines to ``path`` (under benchmarks/results/) and print them."""
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
    return text
