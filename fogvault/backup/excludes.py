"""Which paths a backup skips: patterns, exclude files, cache folders, marker files, sizes.

Patterns follow :mod:`fogvault.patterns` (``folded`` ones ignore case). An excluded folder is
not entered. A folder tagged as a cache (``CACHEDIR.TAG`` with the standard signature, with
``exclude_caches``) or holding one of the ``if_present`` marker files is kept, empty: its
contents are skipped. A regular file larger than ``larger_than`` bytes is skipped.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from fogvault.errors import UsageError
from fogvault.patterns import PathPatterns
from fogvault.userfiles import read_bounded

MAX_PATTERN_FILE = 16 * 1024 * 1024  # more is not a list of patterns (/dev/zero, a wrong file)
CACHEDIR_TAG = b"CACHEDIR.TAG"
CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


@dataclass(slots=True)
class ExcludeRules:
    patterns: list[str] = field(default_factory=list)
    exclude_caches: bool = False
    if_present: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    larger_than: int | None = None
    _compiled: PathPatterns = field(init=False)

    def __post_init__(self) -> None:
        for marker in self.if_present:  # '' would mark every folder: nothing would be stored
            if not marker or "/" in marker or marker in (".", ".."):
                raise UsageError(f"--exclude-if-present takes a file name, not {marker!r}")
        if self.larger_than is not None and self.larger_than < 0:
            raise UsageError("--exclude-larger-than cannot be negative")
        self._compiled = PathPatterns(self.patterns, self.folded)

    @staticmethod
    def read_files(files: list[str]) -> list[str]:
        """Patterns from exclude files: one per line, ``#`` comments and blank lines ignored.
        A file's bytes are kept as they are (``os.fsdecode``), so a pattern can name a file
        whose name is not UTF-8."""
        patterns: list[str] = []
        for name in files:
            data = read_bounded(Path(name).expanduser(), MAX_PATTERN_FILE, f"exclude file {name}")
            lines = os.fsdecode(data).split("\n")  # not splitlines: a name may hold \x1c
            patterns += [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
        return patterns

    def excludes_path(self, path: bytes) -> bool:
        # Asked for every entry of a backup: without patterns, skip decoding and splitting it.
        return bool(self._compiled) and self._compiled.matches(path)

    def excludes_size(self, size: int) -> bool:
        """True if a regular file of ``size`` bytes is skipped."""
        return self.larger_than is not None and size > self.larger_than

    def excludes_dir_contents(self, path: bytes) -> bool:
        """True if a folder's contents are to be skipped (the folder itself is kept)."""
        for marker in self.if_present:
            if os.path.lexists(os.path.join(path, os.fsencode(marker))):
                return True
        return self.exclude_caches and _is_cache_dir(path)


def _is_cache_dir(path: bytes) -> bool:
    """Whether ``path`` holds a CACHEDIR.TAG file (a symlink to one counts) that starts with
    the signature. Anything else of that name is not opened: a fifo would block the backup
    until a writer came, and opening a device may act on it."""
    tag = os.path.join(path, CACHEDIR_TAG)
    try:
        if not stat.S_ISREG(os.stat(tag).st_mode):
            return False
        fd = os.open(tag, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)  # replaced since: no wait
    except OSError:
        return False
    try:
        return (stat.S_ISREG(os.fstat(fd).st_mode)
                and os.read(fd, len(CACHEDIR_SIGNATURE)) == CACHEDIR_SIGNATURE)
    except OSError:
        return False
    finally:
        os.close(fd)
