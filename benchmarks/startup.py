"""What a user waits for and pays in memory before the first result: fresh processes, timed end to end.

For each checkout given (default: this one), in a fresh Python process each time:
- ``facial-keypoints --help``;
- ``FaceLandmarker().detect(photo)`` from ``python`` starting to the first faces, with the process's
  peak resident memory and whether torch was imported.

    python benchmarks/startup.py --data-root ../shared/data
    git worktree add /tmp/before <commit> && python benchmarks/startup.py --checkout /tmp/before --checkout .

The checkouts take turns, ``--rounds`` times; the table gives medians.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine  # noqa: E402
from facial_keypoints.data.lists import resolve_data_root  # noqa: E402

FIRST_RESULT = """
import resource, sys, time
started = float(sys.argv[2])
from facial_keypoints import FaceLandmarker
faces = FaceLandmarker().detect(sys.argv[1])
import json
print(json.dumps({"seconds": time.time() - started, "faces": len(faces), "torch": "torch" in sys.modules,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def one_round(checkout: Path, photo: Path) -> dict:
    env = {"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"}
    started = time.time()
    subprocess.run([sys.executable, "-m", "facial_keypoints", "--help"], cwd=checkout, env=env, check=True,
                   capture_output=True)
    help_s = time.time() - started
    out = subprocess.run([sys.executable, "-c", FIRST_RESULT, str(photo), repr(time.time())], cwd=checkout, env=env,
                         check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]), help_seconds=help_s)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, action="append", default=None,
                        help="a checkout of this repository (repeat to compare; default: this one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "startup.md")
    args = parser.parse_args(argv)
    checkouts = [c.resolve() for c in (args.checkout or [Path(__file__).resolve().parents[1]])]
    photo = resolve_data_root(args.data_root).resolve() / "II" / "004002.jpg"
    rounds = {c: [] for c in checkouts}
    for n in range(args.rounds):
        for checkout in checkouts:
            rounds[checkout].append(one_round(checkout, photo))
            print(f"round {n + 1}: {checkout}: {rounds[checkout][-1]}", flush=True)
    rows = ["| checkout | `--help`, s | first faces from `python` start, s | peak memory, MiB | torch imported |",
            "|---|---:|---:|---:|---|"]
    for checkout, runs in rounds.items():
        median = {key: statistics.median(r[key] for r in runs) for key in ("help_seconds", "seconds", "peak_mib")}
        rows.append(f"| {checkout.name} | {median['help_seconds']:.2f} | {median['seconds']:.2f} | "
                    f"{median['peak_mib']:.0f} | {'yes' if runs[0]['torch'] else 'no'} |")
    text = (f"# Start-up: the first result and its memory\n\n`python benchmarks/startup.py` on {machine()}, "
            f"medians of {args.rounds} rounds taking turns; the shipped model, `FaceLandmarker()` defaults, "
            f"one photo.\n\n" + "\n".join(rows) + "\n")
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
