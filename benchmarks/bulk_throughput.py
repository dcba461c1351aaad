"""Photos per second for large collections: predict as it writes per-photo files, --jsonl in one process,
--jsonl on worker processes, and Ray Data, as commands a user runs, side by side.

    python benchmarks/bulk_throughput.py --data-root ../shared/data      # stage3/test.txt's photos

Each variant runs as a command twice per round, on one photo and on all of them; its start-up is
the one-photo run's wall time and its throughput (N - 1) / (time for N - time for 1), so model loads,
process and Ray start-up count once. The variants take turns within each round; medians over
``--rounds``. The Ray path's records are compared with --jsonl's, photo for photo (timings aside).
Writes benchmarks/results/bulk_throughput.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)

from facial_keypoints.data.list_files import read_list  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "predict: NAME.json + NAME.jpg per photo, 1 process": ["--out", "{out}/files"],
    "predict --jsonl, 1 process": ["--jsonl", "{out}/r.jsonl"],
    "predict --jsonl --workers 1": ["--jsonl", "{out}/r.jsonl", "--workers", "1"],
    "predict --jsonl --workers 2": ["--jsonl", "{out}/r.jsonl", "--workers", "2"],
    "predict --jsonl --ray --workers 2 (local Ray)": ["--jsonl", "{out}/r.jsonl", "--ray", "--workers", "2"],
}


def run(photos: list[str], flags: list[str]) -> tuple[float, Path]:
    """Wall seconds of one predict command on ``photos``, and its output folder (kept for comparison)."""
    out = Path(tempfile.mkdtemp(prefix="bulk_"))
    command = [sys.executable, "-m", "facial_keypoints", "predict", *photos, "--no-progress",
               *[flag.format(out=out) for flag in flags]]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, RAY_DEDUP_LOGS="0"))
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:6])} ... failed:\n{result.stderr[-2000:]}")
    return seconds, out


def records(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record.pop("timings_ms")
        out[record["image"]] = record
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bulk_throughput.md")
    args = parser.parse_args(argv)
    root = resolve_data_root(args.data_root)
    photos = sorted(str(root / p) for p in {r.image for r in read_list(REPO / "stage3" / "test.txt")})
    startup, per_photo, outputs = {}, {}, {}
    for round_ in range(args.rounds):
        for name, flags in VARIANTS.items():
            one, _ = run(photos[:1], flags)
            many, out = run(photos, flags)
            startup.setdefault(name, []).append(one)
            per_photo.setdefault(name, []).append((many - one) / (len(photos) - 1))
            outputs[name] = out
            print(f"round {round_ + 1}: {name}: start-up {one:.1f} s, {1 / per_photo[name][-1]:.1f} photos/s",
                  flush=True)
    plain = records(outputs["predict --jsonl, 1 process"] / "r.jsonl")
    same = {name: records(out / "r.jsonl") == plain for name, out in outputs.items() if (out / "r.jsonl").is_file()}
    base = statistics.median(per_photo["predict: NAME.json + NAME.jpg per photo, 1 process"])
    lines = [f"Machine: {machine()}; {len(photos)} test photos; median of {args.rounds} rounds, the variants taking "
             "turns; defaults otherwise (YuNet, the int8 network, all cores split among the processes).", "",
             "| variant | start-up, s | photos/s after start-up | × per-photo-files predict | records = --jsonl's |",
             "|---|---:|---:|---:|---|"]
    for name in VARIANTS:
        seconds = statistics.median(per_photo[name])
        lines.append(f"| {name} | {statistics.median(startup[name]):.1f} | {1 / seconds:.1f} | {base / seconds:.2f} "
                     f"| {'yes' if same.get(name) else ('—' if name not in same else 'NO')} |")
    write_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
