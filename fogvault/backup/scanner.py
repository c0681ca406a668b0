"""A background count of what a backup will read, so progress can show a total and an ETA.

It walks the same paths with the same exclude rules as the archiver, without reading file
content, and only ever adds to two counters; the backup never waits for it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Callable

from fogvault.backup.excludes import ExcludeRules
from fogvault.backup.short_paths import ShortPaths


class Scanner(threading.Thread):
    def __init__(
        self, paths: list[str], excludes: ExcludeRules, on_total: Callable[[int, int], None]
    ) -> None:
        super().__init__(name="scanner", daemon=True)
        self.paths = _outermost(
            {os.fsencode(os.path.abspath(os.path.expanduser(p))) for p in paths})
        self.excludes = excludes
        self.on_total = on_total
        self.files = 0
        self.bytes = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        paths = ShortPaths()  # the archiver's way to entries deeper than PATH_MAX
        # depth first: None leaves the folder entered last, once all below it was counted
        stack: list[bytes | None] = list(self.paths)
        held: list[contextlib.ExitStack] = []
        while stack and not self._stop_event.is_set():
            path = stack.pop()
            if path is None:
                held.pop().close()
                continue
            try:
                st = os.lstat(paths.of(path))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                names = self._names(paths, path)
                if names is not None:
                    held.append(names[0])
                    stack.append(None)
                    stack += [child for n in names[1]
                              if not self.excludes.excludes_path(child := os.path.join(path, n))]
            elif stat.S_ISREG(st.st_mode) and not self.excludes.excludes_size(st.st_size):
                self.files += 1
                self.bytes += st.st_size
                if self.files % 1000 == 0:
                    self.on_total(self.files, self.bytes)
        for folder in held:
            folder.close()
        self.on_total(self.files, self.bytes)

    def _names(self, paths: ShortPaths, folder: bytes
               ) -> tuple[contextlib.ExitStack, list[bytes]] | None:
        """The names in ``folder``, with the folder held for them (to close once they are
        counted); None if its contents are skipped or cannot be listed."""
        entered = contextlib.ExitStack()
        try:
            entered.enter_context(paths.inside(folder))
            here = paths.of(folder)
            if not self.excludes.excludes_dir_contents(here):
                return entered, os.listdir(here)
        except OSError:
            pass
        entered.close()
        return None


def _outermost(paths: set[bytes]) -> list[bytes]:
    """``paths`` but those below another one (``a`` and ``a/d``: ``a``), which the backup
    stores once; a --files-from list of every file and folder names each entry twice or more."""
    def inside_another(path: bytes) -> bool:
        above = os.path.dirname(path)
        while above != path:
            if above in paths:
                return True
            path, above = above, os.path.dirname(above)
        return False

    return [path for path in paths if not inside_another(path)]
