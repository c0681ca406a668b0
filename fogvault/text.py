"""Text for one line of output: control characters (a newline in a file name) escaped."""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with its control characters escaped as Python would write them."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line, whole: control characters escaped, not cut at the first
    newline, which dropped what followed a file name holding one (the reason)."""
    text = str(exc)
    return printable(text) if text else type(exc).__name__
