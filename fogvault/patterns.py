"""Path patterns shared by backup excludes and restore includes/excludes.

A pattern is split at ``/`` and each part is matched with shell wildcards (``*``, ``?``,
``[...]``) against one path component; ``**`` matches any number of components. A pattern
that starts with ``/`` must match the whole absolute path; any other pattern matches any tail
of the path (``*.tmp`` matches ``/a/b/x.tmp``; ``cache/*`` matches ``/home/u/cache/x``).
``~`` and ``$VARS`` are expanded.
"""

from __future__ import annotations

import os
from fnmatch import fnmatchcase


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


def _match(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _match(rest, parts[1:])


class PathPatterns:
    def __init__(self, patterns: list[str]) -> None:
        self._compiled: list[tuple[bool, list[str]]] = []
        for raw in patterns:
            pattern = os.path.expandvars(os.path.expanduser(raw.strip()))
            if pattern:
                self._compiled.append((pattern.startswith("/"), _components(pattern)))

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def matches(self, path: bytes | str) -> bool:
        parts = _components(os.fsdecode(path))
        for anchored, pattern in self._compiled:
            starts = [0] if anchored else range(len(parts))
            if any(_match(pattern, parts[i:]) for i in starts):
                return True
        return False
