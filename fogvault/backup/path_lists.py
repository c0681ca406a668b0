"""The paths to back up, read from files (restic's ``--files-from`` and ``--files-from-raw``).

A list file holds one path per line (blank lines and lines starting with ``#`` skipped; the
rest of a line, spaces included, is the path) or, raw, paths separated by NUL bytes (as ``find
-print0`` writes them: any name, newlines included). ``-`` reads standard input. A path's bytes
are kept as they are (``os.fsdecode``), so names that are not UTF-8 work.
"""

from __future__ import annotations

import os

from fogvault.userfiles import read_bounded

#: a list of several million paths fits; /dev/zero does not
MAX_PATH_LIST = 1024**3


def read_path_lists(names: list[str], *, raw: bool = False) -> list[str]:
    """The paths in the list files ``names``, in order."""
    paths: list[str] = []
    for name in names:
        data = read_bounded(name, MAX_PATH_LIST, f"path list {name}")
        if raw:
            entries = data.split(b"\0")
        else:
            entries = [ln for ln in data.split(b"\n") if not ln.startswith(b"#")]
            entries = [ln.removesuffix(b"\r") for ln in entries]
        paths += [os.fsdecode(entry) for entry in entries if entry]
    return paths
