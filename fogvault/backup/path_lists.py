"""The paths to back up, read from files (restic's ``--files-from`` and ``--files-from-raw``).

A list file holds one path per line (blank lines and lines starting with ``#`` skipped; the
rest of a line, spaces included, is the path) or, raw, paths separated by NUL bytes (as ``find
-print0`` writes them: any name, newlines included). ``-`` reads standard input. A path's bytes
are kept as they are (``os.fsdecode``), so names that are not UTF-8 work.
"""

from __future__ import annotations

import os
import sys

from fogvault.errors import UsageError


def read_path_lists(names: list[str], *, raw: bool = False) -> list[str]:
    """The paths in the list files ``names``, in order."""
    paths: list[str] = []
    for name in names:
        data = _read(name)
        if raw:
            entries = data.split(b"\0")
        else:
            entries = [ln for ln in data.split(b"\n") if not ln.startswith(b"#")]
            entries = [ln.removesuffix(b"\r") for ln in entries]
        paths += [os.fsdecode(entry) for entry in entries if entry]
    return paths


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        with open(os.path.expanduser(name), "rb") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read path list {name}: {exc.strerror}") from exc
