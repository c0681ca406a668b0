"""Restore progress callbacks; the base class ignores everything (see backup.progress)."""

from __future__ import annotations


class RestoreProgress:
    def start(self, total_bytes: int) -> None:
        pass

    def bytes_done(self, n: int) -> None:
        pass

    def warning(self, message: str) -> None:
        pass
