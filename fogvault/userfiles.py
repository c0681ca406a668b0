"""Reading the files a user names for their contents (password files, exclude files, path
lists, ``-`` for standard input): with a limit, so that a wrong name (``/dev/zero``, a disk
image) is a one-line error instead of memory exhausted, and with the error a user can act on."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fogvault.errors import UsageError
from fogvault.sizes import format_size


def read_bounded(path: Path | str, limit: int, what: str) -> bytes:
    """The bytes of ``path`` (``-``: standard input); UsageError naming ``what`` if it cannot
    be read or holds more than ``limit`` bytes."""
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(os.path.expanduser(path), "rb") as f:
                data = f.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what}: {exc.strerror}") from exc
    if len(data) > limit:
        raise UsageError(f"{what} holds more than {format_size(limit)}: is it the right file?")
    return data
