"""What ``pip install .`` costs on disk: a fresh virtual environment with the wheel and no extras.

    python benchmarks/install_size.py                    # the light install
    python benchmarks/install_size.py --extras train     # and with PyTorch, for comparison

Builds the wheel, installs it into a new venv (pip takes the packages from this machine's wheel
cache or index), and prints the venv's total size and its largest packages. Writes
benchmarks/results/install_size.md.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def install(extras: str | None, folder: Path) -> tuple[float, float, list[tuple[str, float]]]:
    """(seconds to install, venv MB, [(package folder, MB)] largest first) for the wheel with ``extras``."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder / "dist"), str(REPO)],
                   check=True)
    wheel = next((folder / "dist").glob("*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
    started = time.perf_counter()
    target = f"{wheel}[{extras}]" if extras else str(wheel)
    subprocess.run([str(folder / "venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", target], check=True)
    seconds = time.perf_counter() - started
    site = next((folder / "venv" / "lib").glob("python*/site-packages"))
    parts = sorted(((p.name, size_mb(p)) for p in site.iterdir() if p.is_dir()), key=lambda item: -item[1])
    return seconds, size_mb(folder / "venv"), parts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extras", default=None, help="install these extras too (e.g. train)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "install_size.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        seconds, total, parts = install(args.extras, Path(folder))
    label = f"pip install '.[{args.extras}]'" if args.extras else "pip install ."
    rows = ["| package folder | MB |", "|---|---:|"] + [f"| {name} | {mb:.0f} |" for name, mb in parts[:8]]
    text = (f"# Install size: `{label}`\n\n`python benchmarks/install_size.py"
            f"{' --extras ' + args.extras if args.extras else ''}` on Python {sys.version.split()[0]}: a fresh venv "
            f"of **{total:.0f} MB**, installed in {seconds:.0f} s from this machine's wheel cache.\n\n"
            + "\n".join(rows) + "\n")
    if args.extras is None:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
