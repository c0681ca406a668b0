"""Progress callbacks for maintenance (check, prune): named phases with a total and steps."""

from __future__ import annotations


class PhaseProgress:
    """Ignores everything; front ends override what they show."""

    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def warning(self, message: str) -> None:
        pass
