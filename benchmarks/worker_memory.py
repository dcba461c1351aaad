"""A worker's memory over a long run of ``predict --jsonl --workers 1``, with and without recycling.

A worker that never ends must not grow (the yuface wheel's own ``detect`` kept 35 KB per call;
``runtime/yunet.py`` calls its library without it). Each run hands one worker process ``--photos``
copies of one small face photo through ``bulk.workers.annotate`` (the code behind ``predict --jsonl
--workers``) and samples the worker's resident memory every ``--every`` photos; one run never recycles its worker, the other replaces it every
``--recycle-after`` photos.

    python benchmarks/worker_memory.py --never-only         # 20,000 photos (about 6 minutes)
    python benchmarks/worker_memory.py                      # and again, replacing the worker
    python benchmarks/worker_memory.py --photos 2000 --recycle-after 500    # a quick look
    python benchmarks/worker_memory.py --detector mtcnn --never-only        # MTCNN on ONNX Runtime

Prints one row per sample and writes benchmarks/results/worker_memory.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine  # noqa: E402
from facial_keypoints.bulk.jsonl import JsonlWriter
from facial_keypoints.bulk.workers import annotate  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root  # noqa: E402

PHOTO = "II/004002.jpg"  # one face; shrunk to 320 px wide so that the detector's calls dominate


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid``, MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def workers_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and "multiprocessing" in Path(stat.parent, "cmdline").read_text(errors="ignore"):
            found.append(int(stat.parent.name))
    return found


def one_run(photo: Path, photos: int, recycle_after: int, every: int, folder: Path,
            detector: str = "yunet") -> list[tuple[int, float]]:
    """(photos done, the worker's resident MiB) every ``every`` photos."""
    results = folder / f"run{recycle_after}.jsonl"
    writer, counts, samples, peak = JsonlWriter(results), {}, [], {"rss": 0.0}
    stop = threading.Event()

    def watch():  # the largest worker RSS since the last sample, so a recycled worker's peak is not missed
        while not stop.is_set():
            peak["rss"] = max([peak["rss"], *(rss_mib(pid) for pid in workers_of(os.getpid()))])
            time.sleep(0.2)

    def sample_on_progress():
        done = counts.get("written", 0) + counts.get("failed", 0)
        while not stop.is_set():
            done_now = counts.get("written", 0) + counts.get("failed", 0)
            if done_now // every > done // every:
                samples.append((done_now // every * every, peak["rss"]))
                print(f"recycle after {recycle_after:>6}: {samples[-1][0]:>6} photos, worker peak "
                      f"{samples[-1][1]:.0f} MiB", flush=True)
                peak["rss"], done = 0.0, done_now
            time.sleep(0.2)

    threads = [threading.Thread(target=watch, daemon=True), threading.Thread(target=sample_on_progress, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        annotate([photo] * photos, writer, dict(threads=1, detector=detector), workers=1, progress=False,
                 counts=counts, recycle_after=recycle_after)
    finally:
        stop.set()
        writer.close()
        for thread in threads:
            thread.join()
    return samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=20000)
    parser.add_argument("--recycle-after", type=int, default=5000)
    parser.add_argument("--every", type=int, default=2000, help="photos between samples")
    parser.add_argument("--detector", default="yunet", choices=("yunet", "mtcnn", "haar"))
    parser.add_argument("--never-only", action="store_true", help="only the run that never replaces its worker")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=None,
                        help="None: benchmarks/results/worker_memory.md (worker_memory_DETECTOR.md for another one)")
    args = parser.parse_args(argv)
    args.out = args.out or Path(__file__).parent / "results" / (
        "worker_memory.md" if args.detector == "yunet" else f"worker_memory_{args.detector}.md")
    from PIL import Image
    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "face.jpg"
        image = Image.open(resolve_data_root(args.data_root) / PHOTO)
        image.resize((320, round(image.height * 320 / image.width))).save(photo)
        plans = [("never", args.photos + 1)]
        if not args.never_only:
            plans.append((str(args.recycle_after), args.recycle_after))
        runs = {label: one_run(photo, args.photos, recycle, args.every, Path(folder), args.detector)
                for label, recycle in plans}
    rows = ["| photos done | " + " | ".join(f"recycled: {label}" for label in runs) + " |",
            "|---:|" + "---:|" * len(runs)]
    for n, (done, _) in enumerate(runs["never"]):
        rows.append(f"| {done:,} | " + " | ".join(f"{samples[n][1]:.0f} MiB" if n < len(samples) else "-"
                                                 for samples in runs.values()) + " |")
    command = " ".join(["python benchmarks/worker_memory.py", f"--photos {args.photos}"]
                       + ([f"--detector {args.detector}"] if args.detector != "yunet" else [])
                       + (["--never-only"] if args.never_only else [f"--recycle-after {args.recycle_after}"]))
    text = (f"# A worker's peak resident memory over {args.photos:,} photos\n\n"
            f"`{command}` on {machine()}: one worker, the {args.detector} face detector, one 320-px face photo "
            "again and again.\n\n"
            + "\n".join(rows) + "\n")
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
