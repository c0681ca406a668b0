"""The paths to back up, read from files (restic's ``--files-from`` and ``--files-from-raw``).

A list file holds one path per line (blank lines skipped, and lines starting with ``#``, which
are comments as in restic's ``--files-from``; the rest of a line, spaces included, is the path)
or, raw, paths separated by NUL bytes (as ``find -print0`` writes them: any name, newlines and
a leading ``#`` included; empty names are skipped). ``-`` reads standard input. A path's bytes
are kept as they are (``os.fsdecode``), so names that are not UTF-8 work. A comment line that
names an existing file (``#draft#``, as ``git ls-files`` may list it) gets a warning: it is not
backed up.
"""

from __future__ import annotations

import logging
import os

from fogvault.userfiles import read_bounded

log = logging.getLogger("fogvault")

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
            lines = [ln.removesuffix(b"\r") for ln in data.split(b"\n")]
            for comment in (ln for ln in lines if ln.startswith(b"#")):
                if os.path.lexists(comment):
                    log.warning("%s: line %r is a comment, but names a file, which is not backed "
                                "up: list it with --files-from-raw", name, os.fsdecode(comment))
            entries = [ln for ln in lines if not ln.startswith(b"#")]
        paths += [os.fsdecode(entry) for entry in entries if entry]
    return paths
