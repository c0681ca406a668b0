"""Human sizes on the command line and in config files (``512K``, ``16M``, ``2G``, ``1T``), and
counts in messages (``1 snapshot``, ``2 snapshots``)."""

from __future__ import annotations

import math
import re

from fogvault.errors import UsageError

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def format_size(n: float) -> str:
    """``1536`` -> ``"1.50 KiB"``: binary units, two decimals, bytes as a whole number."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} PiB"


def counted(n: int, noun: str, plural: str = "") -> str:
    """``n`` and ``noun`` in the number ``n`` asks for: ``1 snapshot``, ``2 snapshots``;
    ``plural`` for a noun that does not take an s (``repositories``)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise UsageError(f"not a size: {text!r} (use e.g. 512K, 16M, 2G)")
    size = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if not math.isfinite(size):  # digits beyond a float's range
        raise UsageError(f"not a size: {text!r} (too large)")
    return int(size)
