"""How the ``fogvault`` process answers SIGINT, SIGTERM and SIGHUP, from FogVault's first line
to the process's end: exit code 130 and the one line ``interrupted`` on stderr, whenever the
signal comes (docs/user-guide.md, exit codes). SIGINT and SIGHUP that the parent left ignored
('&', nohup) stay ignored.

:func:`install` is the first thing the entry points do (``fogvault/__main__.py``, before it
loads the CLI; ``app.main``), and from then on the handler acts by phase:

* While the command runs (:func:`run_command`), it tells the open targets
  (:func:`fogvault.interrupts.notify`) and raises ``KeyboardInterrupt``, which unwinds the
  command (a backup still indexes what it uploaded; hooks are stopped). Once it is unwound, the
  process ends as interrupted (:func:`end_interrupted`), whatever the command raised or
  returned: the exception may have become another (Python 3.11 wraps one raised in a class's
  ``__set_name__`` in a RuntimeError, while a module loads), or a request that the interrupt
  gave up may have failed the command.
* Before (the CLI loading, the command being built) and after (the report, the exit: threads
  joined, atexit callbacks), nothing is to be unwound: it ends the process at once
  (:func:`end_interrupted`). A ``KeyboardInterrupt`` there would have escaped ``app.main``
  (a traceback), or been printed as "Exception ignored" during the exit.
* Python drops an exception raised in a weakref callback or a ``__del__`` (it prints "Exception
  ignored" and goes on): a ``KeyboardInterrupt`` raised there would leave the command running.
  The unraisable hook (:func:`_on_unraisable`) keeps that quiet and raises it again in the
  command a moment later (SIGALRM, 1 ms), outside the callback.
* The last atexit callback (the first registered, by :func:`install`) flushes the output and
  leaves the signals ignored: the interpreter then resets Python's handlers to the default
  action, which kills the process (exit 143, 129), and tears its modules down, where no Python
  handler could run. A signal there is ignored: the command has ended, its output and exit
  code are complete.

Not covered: the interpreter's start-up before FogVault's first line (a signal kills the
process, nothing written; SIGINT after Python installed its own handler raises a traceback).
A signal that comes while the process is on its way into a blocking read (between the last
bytecode and the system call) is handled when the read returns: CPython runs handlers between
bytecodes. For a password read from a fifo that nobody writes, that is never; a second signal
interrupts the read.

Only the standard library and ``fogvault.errors`` are imported here, so that :func:`install`
comes early.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys

from fogvault.errors import EXIT_INTERRUPTED

TYPE_CHECKING = False  # typing is not loaded: 2.7 ms of the time before install()
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType
    from typing import TypeVar

    T = TypeVar("T")

#: The signals taken: SIGTERM always (as before this module), the others unless ignored.
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_taken: list[int] = []
_installed = False
_command_running = False
_interrupted = False  # a signal raised KeyboardInterrupt in the command
_ending = False
_next_unraisable_hook = sys.unraisablehook
#: The delay before a KeyboardInterrupt lost in a callback is raised again: long enough that
#: the callback has returned.
_AGAIN_AFTER = 0.001


def install() -> None:
    """Take the signals (once; later calls do nothing), hook exceptions that Python cannot
    raise, and register the last atexit callback."""
    global _installed, _next_unraisable_hook
    if _installed:
        return
    _installed = True
    _taken[:] = [s for s in _SIGNALS
                 if s == signal.SIGTERM or signal.getsignal(s) is not signal.SIG_IGN]
    _take()
    _next_unraisable_hook = sys.unraisablehook
    sys.unraisablehook = _on_unraisable
    atexit.register(_at_exit)


def run_command(command: Callable[[], T]) -> T:
    """Call ``command`` with the signals raising ``KeyboardInterrupt`` in it; then take them
    back from any handler it set (``daemon`` sets its own), and end the process as interrupted
    if a signal reached the command."""
    global _command_running
    _command_running = True
    try:
        return command()
    finally:
        _command_running = False
        _take()
        if _interrupted:
            end_interrupted()


def end_interrupted() -> None:
    """Flush what the command printed, write ``interrupted`` to stderr and end the process with
    exit code 130 at once: the command has been unwound, or has not started, or is done, so
    threads and atexit callbacks are not waited for (a hung request could keep them, where the
    user asked to stop). Called again meanwhile (a second signal), it returns and lets the
    first call end the process: one line, however many signals."""
    global _ending
    _flush()  # a signal while this blocks (a full pipe) comes back in here and ends the process
    if _ending:
        return
    _ending = True
    with contextlib.suppress(OSError):
        os.write(2, b"interrupted\n")
    os._exit(EXIT_INTERRUPTED)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # In run_command's own frame (the command not called yet, or returned) the exception would
    # escape the caller's handling: that is "after", as is everything once it has returned.
    global _interrupted
    if _command_running and frame is not None and frame.f_code is not run_command.__code__:
        _interrupted = True
        # Not imported here (an import in a signal handler could wait for an import lock):
        # whoever registered a callback has imported it.
        registry = sys.modules.get("fogvault.interrupts")
        if registry is not None:
            registry.notify()
        raise KeyboardInterrupt
    end_interrupted()


def _on_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    if _interrupted and isinstance(unraisable.exc_value, KeyboardInterrupt):
        # Ours, raised where Python cannot propagate it. Python runs signal handlers on the
        # main thread only, so this is the main thread, where signal.signal may be called.
        signal.signal(signal.SIGALRM, _on_signal)
        signal.setitimer(signal.ITIMER_REAL, _AGAIN_AFTER)
        return
    _next_unraisable_hook(unraisable)


def _take() -> None:
    for signum in _taken:
        signal.signal(signum, _on_signal)


def _at_exit() -> None:
    """The last atexit callback: flush while a signal still ends the process as interrupted,
    then ignore the signals for the interpreter's teardown (see the module's docstring)."""
    _flush()
    for signum in _taken:
        signal.signal(signum, signal.SIG_IGN)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # closed, a broken pipe, or already flushing
            stream.flush()
