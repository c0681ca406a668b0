"""Progress callbacks: the engine reports, front ends (tqdm, JSON lines) render.

The base class ignores everything, so the engine never checks for a missing reporter.
Callbacks run on the engine's thread and must be cheap.
"""

from __future__ import annotations


class BackupProgress:
    def file_started(self, path: bytes, size: int) -> None:
        pass

    def bytes_done(self, n: int) -> None:
        pass

    def file_done(self, path: bytes) -> None:
        pass

    def warning(self, message: str) -> None:
        pass
