"""YuNet's time per detection under OpenMP's wait policies and thread counts, alone and beside a busy thread.

    python benchmarks/yunet_threads.py --data-root ../shared/data

libfacedetection runs on OpenMP, whose waiting threads spin for a while by default (300,000 turns,
``GOMP_SPINCOUNT``'s default, which the first row sets explicitly since the library sets
``OMP_WAIT_POLICY=PASSIVE`` unless told otherwise). Each setting runs in a fresh process (libgomp reads
its environment once, when it loads), on a photo shrunk to 416 px as ``predict`` shrinks it: 30
detections alone, 30 beside a Python thread of the same process that keeps a core busy with NumPy (as
the video writer does), and 30 beside another process that keeps a core busy (another program). The
settings take turns, ``--rounds`` times; the table gives each one's median.
Writes benchmarks/results/yunet_threads.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import machine, write_table  # noqa: E402  (benchmarks/common.py, beside this file)

REPO = Path(__file__).resolve().parents[1]
SETTINGS = (("PASSIVE, GOMP_SPINCOUNT=300000 (OpenMP's default)", 2), ("PASSIVE", 2), ("PASSIVE", 1))

CHILD = r"""
import json, sys, threading, time
import numpy as np
from PIL import Image
from facial_keypoints.runtime.yunet import YuNet
threads, photo = int(sys.argv[1]), sys.argv[2]
image = Image.open(photo).convert("RGB")
scale = 416 / max(image.size)
bgr = np.ascontiguousarray(np.asarray(image.resize((round(image.width * scale), round(image.height * scale))))[..., ::-1])
yunet = YuNet(threads)
for _ in range(5):
    yunet(bgr)
def timed():
    started = time.perf_counter()
    for _ in range(30):
        yunet(bgr)
    return (time.perf_counter() - started) / 30 * 1e3
alone = timed()
stop = threading.Event()
def busy():
    a = np.random.rand(300, 300)
    while not stop.is_set():
        a @ a
        time.sleep(0.001)
worker = threading.Thread(target=busy)
worker.start()
beside = timed()
stop.set()
worker.join()
import subprocess
burner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 60: sum(range(9999))"])
time.sleep(0.5)
other = timed()
burner.kill()
print(json.dumps([alone, beside, other]))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=None, help="None: $FKD_DATA_ROOT, else data/")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from facial_keypoints.data.lists import resolve_data_root
    photo = str(resolve_data_root(args.data_root) / "II" / "004002.jpg")
    times = {setting: [] for setting in SETTINGS}
    for _ in range(args.rounds):
        for policy, threads in SETTINGS:
            env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1"}
            if "GOMP_SPINCOUNT" in policy:
                env["GOMP_SPINCOUNT"] = "300000"
            out = subprocess.run([sys.executable, "-c", CHILD, str(threads), photo], env=env, check=True,
                                 capture_output=True, text=True, cwd=REPO).stdout
            times[policy, threads].append(json.loads(out))
    lines = [f"`python benchmarks/yunet_threads.py --rounds {args.rounds}` on {machine()}: ms per YuNet detection on "
             "a photo shrunk to 416 px (median of the rounds).", "",
             "| OpenMP waiting | threads | alone | beside a busy thread | beside a busy process |", "|---|---:|---:|---:|---:|"]
    for (policy, threads), runs in times.items():
        alone = statistics.median(r[0] for r in runs)
        beside = statistics.median(r[1] for r in runs)
        other = statistics.median(r[2] for r in runs)
        lines.append(f"| {policy} | {threads} | {alone:.1f} | {beside:.1f} | {other:.1f} |")
    write_table(lines, REPO / "benchmarks" / "results" / "yunet_threads.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
