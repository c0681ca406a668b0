"""What a command that fails is expected to print: one line, never a traceback."""

from __future__ import annotations

import subprocess


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The one line a failed command wrote to stderr: ``error: ...``, no traceback, not the
    catch-all "unexpected error" (an exception the command did not expect)."""
    stderr = done.stderr.decode() if isinstance(done.stderr, bytes) else done.stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "unexpected error" not in lines[0], stderr
    return lines[0]
