"""The errors a user can cause (bad labels, photos, checkpoints, paths), and how scripts report them."""
from __future__ import annotations

import signal
import sys

from facial_keypoints.data.images import ImageError
from facial_keypoints.data.labels import LabelError


class CheckpointError(RuntimeError):
    """A checkpoint that is not one of this project's, or asks to run code when loaded; names the file."""


class MissingExtra(ValueError):
    """A part of the library that needs an extra which is not installed; names the extra."""


def require_train(what: str) -> None:
    """Refuse, in one line naming the ``[train]`` extra, ``what`` where PyTorch is not installed."""
    import importlib.util
    if importlib.util.find_spec("torch") is None:
        raise MissingExtra(f"{what} needs PyTorch, which this installation lacks: pip install "
                           "'facial_keypoints[train]' (or, in a checkout, pip install -r requirements.txt)")


# Each of these carries a message naming the file (and line) at fault; no traceback is needed.
USER_ERRORS = (LabelError, ImageError, CheckpointError, FileNotFoundError, ValueError)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the program is, so that it cleans up exactly as on Ctrl-C: temporary
    files removed, finished outputs renamed into place, worker processes ended."""


def _terminate(signum, frame):
    raise Terminated()


def terminate_as_interrupt() -> None:
    """Make SIGTERM (``kill``, a scheduler's stop) raise ``Terminated`` in the main thread."""
    import threading
    if threading.current_thread() is threading.main_thread():  # only the main thread may set a handler
        signal.signal(signal.SIGTERM, _terminate)


def run_reporting_errors(body, *args) -> int:
    """Run ``body(*args)``; a user error becomes ``error: ...`` on stderr and exit code 2; Ctrl-C and
    SIGTERM become one line and exit codes 130 and 143 (the shell's 128 + the signal's number)."""
    terminate_as_interrupt()
    try:
        result = body(*args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full or read-only disk met while writing: every output is whole or absent
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print("terminated" if isinstance(interrupt, Terminated) else "interrupted", file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130
    return result if isinstance(result, int) else 0
