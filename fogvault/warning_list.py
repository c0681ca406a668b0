"""The warnings a run keeps for its summary and its snapshot.

Each warning is reported as it happens (progress on stderr, the job log); the run keeps the
first ``MAX_WARNINGS`` and then a single line saying how many more there were, so that a run
over millions of unreadable files neither holds them all (about 200 bytes each) nor writes them
all into its summary or snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_WARNINGS = 1000


class WarningList(list[str]):
    """A list of at most ``MAX_WARNINGS`` warnings and, past that, a last line counting the
    rest; ``total`` counts them all. Built from an iterable it is a plain copy (as
    ``dataclasses.asdict`` makes); :meth:`of` bounds a list of warnings."""

    def __init__(self, lines: Iterable[str] = ()) -> None:
        super().__init__(lines)
        self.total = len(self)

    @classmethod
    def of(cls, warnings: Iterable[str]) -> WarningList:
        bounded = cls()
        for text in warnings:
            bounded.add(text)
        return bounded

    def add(self, text: str) -> None:
        self.total += 1
        if self.total <= MAX_WARNINGS:
            self.append(text)
            return
        more = f"... and {self.total - MAX_WARNINGS} more warnings"
        if self.total == MAX_WARNINGS + 1:
            self.append(more)
        else:
            self[-1] = more
