"""A background count of what a backup will read, so progress can show a total and an ETA.

It walks the same paths with the same exclude rules as the archiver, without reading file
content, and only ever adds to two counters; the backup never waits for it.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable

from fogvault.backup.excludes import ExcludeRules


class Scanner(threading.Thread):
    def __init__(
        self, paths: list[str], excludes: ExcludeRules, on_total: Callable[[int, int], None]
    ) -> None:
        super().__init__(name="scanner", daemon=True)
        self.paths = [os.fsencode(os.path.abspath(os.path.expanduser(p))) for p in paths]
        self.excludes = excludes
        self.on_total = on_total
        self.files = 0
        self.bytes = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        stack = list(self.paths)
        while stack and not self._stop_event.is_set():
            path = stack.pop()
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if self.excludes.excludes_dir_contents(path):
                    continue
                try:
                    names = os.listdir(path)
                except OSError:
                    continue
                stack += [
                    child for n in names
                    if not self.excludes.excludes_path(child := os.path.join(path, n))
                ]
            elif stat.S_ISREG(st.st_mode) and not self.excludes.excludes_size(st.st_size):
                self.files += 1
                self.bytes += st.st_size
                if self.files % 1000 == 0:
                    self.on_total(self.files, self.bytes)
        self.on_total(self.files, self.bytes)
