"""The errors a user can cause (bad labels, photos, checkpoints, paths), and how scripts report them."""
from __future__ import annotations

import sys

from .checkpoint import CheckpointError
from .images import ImageError
from .labels import LabelError

# Each of these carries a message naming the file (and line) at fault; no traceback is needed.
USER_ERRORS = (LabelError, ImageError, CheckpointError, FileNotFoundError, ValueError)


def run_reporting_errors(body, *args) -> int:
    """Run ``body(*args)``; a user error becomes ``error: ...`` on stderr and exit code 2."""
    try:
        result = body(*args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
