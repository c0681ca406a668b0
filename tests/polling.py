"""Waiting for a condition another process or thread brings about: polled against a deadline,
never a guessed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], what: str, deadline_s: float = 20.0) -> None:
    """Poll ``condition`` until it holds, failing with ``what`` after ``deadline_s`` seconds."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {deadline_s} s"
        time.sleep(0.02)


def blocked_reading_a_pipe(pid: int) -> bool:
    """Whether process ``pid`` sleeps in the kernel reading a pipe or fifo (its wait channel is
    ``pipe_read``, ``anon_pipe_read`` on recent kernels). A signal sent then interrupts the
    read; one sent while the process is on its way into it is handled only once the read
    returns (CPython runs handlers between bytecodes)."""
    with open(f"/proc/{pid}/wchan") as wchan:
        return "pipe_read" in wchan.read()
