"""The paths to back up, read from files (restic's ``--files-from``, ``--files-from-verbatim``
and ``--files-from-raw``).

* ``patterns``: one glob pattern a line, as in restic's ``--files-from``. Spaces around a line
  are dropped, blank lines and lines starting with ``#`` (comments) are skipped, and a line
  with wildcards (``*``, ``?``, ``[...]``, which match dot files too, as Go's ``filepath.Glob``
  does) stands for the paths it matches, sorted. A pattern that matches nothing is kept as it
  is, so the backup reports it as a path it cannot back up (a warning and exit 3), where
  restic only warns. A comment line that names an existing file (``#draft#``, as ``git
  ls-files`` may list it) gets a warning, as does a pattern that names an existing file but
  matches others (``file[1]`` beside ``file1``): the file is not backed up.
* ``verbatim``: one path a line, taken as it is (spaces included); only empty lines are skipped.
* ``raw``: paths separated by NUL bytes (as ``find -print0`` writes them: any name, newlines and
  a leading ``#`` included); empty names are skipped.

In both line forms a ``\\r`` before a newline is dropped (restic reads lines the same way). In
every form ``-`` reads standard input, and a path's bytes are kept as they are
(``os.fsdecode``), so names that are not UTF-8 work.
"""

from __future__ import annotations

import glob
import logging
import os
from typing import Literal

from fogvault.userfiles import read_bounded

log = logging.getLogger("fogvault")

#: a list of several million paths fits; /dev/zero does not
MAX_PATH_LIST = 1024**3

ListForm = Literal["patterns", "verbatim", "raw"]


def read_path_lists(names: list[str], form: ListForm) -> list[str]:
    """The paths in the list files ``names``, in order."""
    paths: list[bytes] = []
    for name in names:
        data = read_bounded(name, MAX_PATH_LIST, f"path list {name}")
        if form == "raw":
            paths += data.split(b"\0")
            continue
        lines = [line.removesuffix(b"\r") for line in data.split(b"\n")]
        paths += lines if form == "verbatim" else _expand(name, lines)
    return [os.fsdecode(path) for path in paths if path]


def _expand(name: str, lines: list[bytes]) -> list[bytes]:
    paths: list[bytes] = []
    for line in (line.strip() for line in lines):
        if line.startswith(b"#"):
            if os.path.lexists(line):
                log.warning("%s: line %r is a comment, but names a file, which is not backed "
                            "up: list it with --files-from-verbatim", name, os.fsdecode(line))
        elif glob.has_magic(line):
            matches = sorted(glob.glob(line, include_hidden=True))
            if matches and line not in matches and os.path.lexists(line):
                log.warning("%s: line %r names a file, but is a pattern that matches others, "
                            "which are backed up instead: list it with --files-from-verbatim",
                            name, os.fsdecode(line))
            paths += matches or [line]
        else:
            paths.append(line)
    return paths
