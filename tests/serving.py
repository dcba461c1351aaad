"""A real ``facial-keypoints serve`` process on a free port of 127.0.0.1, for the browser and Ray tests."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import REPO


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``with Server(["--workers", "1"], log) as url:`` the server is ready (GET /readyz answers 200)
    inside, and ended (SIGTERM, then SIGKILL after ``stop_s``) after; its output goes to ``log``."""

    def __init__(self, args: list[str], log: Path, start_s: float = 90.0, stop_s: float = 30.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "facial_keypoints", "serve", "--port", str(self.port), *args]
        self.log, self.start_s, self.stop_s = Path(log), start_s, stop_s
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> str:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(self.command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.start_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server ended ({self.process.returncode}):\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return self.url
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.__exit__()
        raise RuntimeError(f"the server was not ready within {self.start_s:g} s:\n{self.log.read_text()}")

    def __exit__(self, *exc) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(self.stop_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
