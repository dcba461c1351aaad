"""The results file of a photo collection: one JSON record per line, appended whole, one run at a time.

Each line reaches the file in one ``write`` call on a file opened for appending, so a line is
whole or absent; only a machine that dies mid-write can leave a torn last line, and the next run
cuts it off (and says so) before appending. A run holds a lock on its results file (``flock``,
released by the kernel however the run ends), so a second run on the same file is refused rather
than writing every photo twice. Photos are known by their absolute path, links resolved
(``photo_key``), so ``photos``, ``./photos`` and ``$PWD/photos`` resume each other.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

try:
    import fcntl  # the results file's lock; Windows has none, and there two runs must not share a file
except ImportError:
    fcntl = None

class JsonlError(ValueError):
    """A results file this module did not write (a line that is not a JSON record); names file and line."""


RECORD_START = b'{"image": '  # how every record predict writes begins (PhotoResult.as_json's first key)


def photo_key(path) -> str:
    """A photo's absolute path with links resolved: the same however the path is spelled."""
    return os.path.realpath(path)


def done_photos(path: Path) -> set[str]:
    """The ``image`` of every record already in ``path`` (none if it does not exist), read line by line.

    Blank lines are skipped.  A torn last line (no newline at the end) that begins as a record does is
    cut off, with a warning, so the file ends whole; anything else in the file is not predict's, and
    the file is refused untouched.  Call it while holding the file's lock (``JsonlWriter``).
    """
    path = Path(path)
    if not path.is_file():
        return set()
    done, whole, number, last = set(), 0, 0, b""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                last = line
                break  # a last line without its newline: looked at below
            whole += len(line)
            if not line.strip():
                continue
            try:
                done.add(json.loads(line)["image"])
            except (ValueError, KeyError, TypeError):
                raise JsonlError(f"{path}:{number}: not a predict record (a JSON object with an \"image\"); "
                                 "give --jsonl a new file or one an earlier run wrote") from None
    if last.strip():
        torn = last.startswith(RECORD_START) or RECORD_START.startswith(last)
        if not torn or _parses(last):  # one write puts a whole record and its newline: a full one is not ours
            raise JsonlError(f"{path}:{number}: not a predict record, and no newline ends it; give --jsonl a new "
                             "file or one an earlier run wrote")
        print(f"warning: {path}: the last line was cut off by an interrupted write ({len(last)} bytes); removed, "
              "its photo runs again", file=sys.stderr)
        with open(path, "r+b") as handle:
            handle.truncate(whole)
    return done


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


class JsonlWriter:
    """Appends records to a results file, each in one write call, so no line is ever half there.

    Opening it checks that the file can be written and takes its lock (a ValueError naming the file if
    either fails), before any photo is worked on.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder; give the results file's path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.created = not self.path.exists()
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as error:
            raise ValueError(f"{self.path}: cannot write the results file ({error.strerror or error})") from None
        if fcntl is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel when we end
            except BlockingIOError:
                os.close(self.fd)
                raise ValueError(f"{self.path}: another run is writing to this file; let it finish, or give "
                                 "another file") from None

    def write(self, record: dict) -> None:
        data = (json.dumps(record, allow_nan=False) + "\n").encode()
        if os.write(self.fd, data) != len(data):  # only a full disk writes less; say so rather than tear on
            raise OSError(28, "the disk is full", str(self.path))

    def close(self) -> None:
        empty = self.created and os.fstat(self.fd).st_size == 0
        if empty:  # nothing was written to the file this run made: leave no empty file behind
            self.path.unlink(missing_ok=True)
        os.close(self.fd)


def folder_lock(folder: Path) -> int:
    """Make ``folder`` (an output folder) and take its lock: the descriptor to close when done; a
    ValueError naming the folder if it is a file, cannot be made, or another run holds it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; give a folder for the Parquet files")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o666)
    except OSError as error:
        raise ValueError(f"{folder}: cannot write there ({error.strerror or error})") from None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(f"{folder}: another run is writing into this folder; let it finish, or give "
                             "another one") from None
    return fd
