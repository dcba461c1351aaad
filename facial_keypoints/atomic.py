"""Files that appear whole or not at all: write beside the target, then rename over it."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path, suffix: str = ".tmp"):
    """Yield a fresh temporary path in ``path``'s folder; on success rename it over ``path``.

    A crash or an error leaves the old file intact (the temporary one is removed),
    and two writers never interleave their bytes in one file.  The result gets the
    permissions a plainly created file would (mkstemp's are owner-only), so a
    shipped model stays readable by every user of an installation.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def output_folder(path, flag: str = "--out") -> Path:
    """``path`` as a folder that outputs can go to, made now, before any work; a ValueError naming
    ``flag`` and the path if it is a file, cannot be made, or cannot be written to (a read-only disk)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):  # the one sure test: permissions say nothing to root
            pass
    except OSError as error:
        raise ValueError(f"{flag} {path}: cannot write there ({error.strerror or error})") from None
    return path


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists: a temporary file or lock that names a dead one is stale."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and another user's
        return True
    return True
