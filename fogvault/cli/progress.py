"""Rendering engine progress: a tqdm bar on a terminal, JSON lines with --json, or nothing.

tqdm is imported only when a bar is shown: without a terminal it would be start-up time for
nothing.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING

from fogvault.backup.progress import BackupProgress
from fogvault.cli.common import Printer, warning_line
from fogvault.maintenance.progress import PhaseProgress
from fogvault.restore.progress import RestoreProgress

if TYPE_CHECKING:
    from tqdm import tqdm

JSON_INTERVAL_S = 1.0


class BarProgress(BackupProgress, RestoreProgress):
    """A byte-counting bar with the current file; a total (and so an ETA) once known."""

    def __init__(self, description: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=description, file=sys.stderr, dynamic_ncols=True, leave=False)
        self.files_done = 0
        self._lock = threading.Lock()

    def set_total(self, files: int, total_bytes: int) -> None:
        with self._lock:
            self.bar.total = total_bytes
            self.bar.refresh()

    def start(self, total_bytes: int) -> None:
        self.set_total(0, total_bytes)

    def file_started(self, path: bytes, size: int) -> None:
        name = os.fsdecode(path)
        self.bar.set_postfix_str(f"{self.files_done} files, {name[-40:]}", refresh=False)

    def bytes_done(self, n: int) -> None:
        with self._lock:
            self.bar.update(n)

    def file_done(self, path: bytes) -> None:
        self.files_done += 1

    def warning(self, message: str) -> None:
        self.bar.write(warning_line(message), file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


class JsonProgress(BackupProgress, RestoreProgress):
    """``{"message_type": "status", ...}`` lines at most once a second, on stdout."""

    def __init__(self, out: Printer) -> None:
        self.out = out
        self.files_done = 0
        self.bytes_done_total = 0
        self.total_files = 0
        self.total_bytes = 0
        self.current = ""
        self._last = 0.0
        self._lock = threading.Lock()

    def set_total(self, files: int, total_bytes: int) -> None:
        self.total_files, self.total_bytes = files, total_bytes

    def start(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes

    def file_started(self, path: bytes, size: int) -> None:
        self.current = os.fsdecode(path)

    def bytes_done(self, n: int) -> None:
        with self._lock:
            self.bytes_done_total += n
        self._maybe_emit()

    def file_done(self, path: bytes) -> None:
        self.files_done += 1
        self._maybe_emit()

    def warning(self, message: str) -> None:
        self.out.json_line({"message_type": "warning", "message": message})

    def _maybe_emit(self) -> None:
        now = time.monotonic()
        if now - self._last < JSON_INTERVAL_S:
            return
        self._last = now
        self.out.json_line({
            "message_type": "status",
            "files_done": self.files_done,
            "bytes_done": self.bytes_done_total,
            "total_files": self.total_files,
            "total_bytes": self.total_bytes,
            "current_file": self.current,
        })

    def close(self) -> None:
        pass


class QuietProgress(BackupProgress, RestoreProgress):
    """No progress; warnings still go to stderr (with -q too: they explain exit code 3)."""

    def warning(self, message: str) -> None:
        print(warning_line(message), file=sys.stderr)

    def set_total(self, files: int, total_bytes: int) -> None:
        pass

    def close(self) -> None:
        pass


def make_progress(out: Printer, description: str) -> BarProgress | JsonProgress | QuietProgress:
    if out.json_mode:
        return JsonProgress(out)
    if out.opts.quiet or not sys.stderr.isatty():
        return QuietProgress()
    return BarProgress(description)


class PhaseBar(PhaseProgress):
    """One tqdm bar per maintenance phase, on stderr."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def phase(self, name: str, total: int | None = None) -> None:
        from tqdm import tqdm

        self.close()
        self.bar = tqdm(total=total, desc=name, file=sys.stderr, dynamic_ncols=True, leave=False)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def warning(self, message: str) -> None:
        from tqdm import tqdm

        tqdm.write(warning_line(message), file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class PhaseLines(PhaseProgress):
    """``{"message_type": "phase", ...}`` JSON lines (one per phase) with --json."""

    def __init__(self, out: Printer) -> None:
        self.out = out

    def phase(self, name: str, total: int | None = None) -> None:
        self.out.json_line({"message_type": "phase", "phase": name, "total": total})

    def warning(self, message: str) -> None:
        self.out.json_line({"message_type": "warning", "message": message})

    def close(self) -> None:
        pass


class QuietPhases(PhaseProgress):
    def warning(self, message: str) -> None:
        print(warning_line(message), file=sys.stderr)

    def close(self) -> None:
        pass


def make_phase_progress(out: Printer) -> PhaseBar | PhaseLines | QuietPhases:
    if out.json_mode:
        return PhaseLines(out)
    if out.opts.quiet or not sys.stderr.isatty():
        return QuietPhases()
    return PhaseBar()
