"""What to do at once when a command is interrupted (Ctrl-C, SIGTERM, SIGHUP).

Every open set of targets registers a callback that makes them give up hanging requests
(``TargetSet`` registers its ``interrupt`` when it is made and takes it back when it is closed),
so an interrupt reaches the targets while a repository is being opened, initialised or used,
by any command or job. The CLI's signal handler (``fogvault.cli.signals``) calls :func:`notify`,
then raises ``KeyboardInterrupt``. The exception unwinds the command, joining thread pools whose
workers may be waiting on a silent S3 server; interrupted targets stop retrying and give such a
request up within seconds (``Storage.interrupt``), where it would otherwise have waited out the
stall limit on every retry (about 10 minutes at the default).

The callbacks run on a thread of their own, which the handler waits for (at most
:data:`NOTIFY_WAIT_S`): a signal handler runs on the main thread between two bytecodes,
perhaps while that thread holds a lock a callback needs, and calling it there could deadlock.
That thread is started with ``_thread``, not ``threading``, whose ``Thread.start`` takes a lock
of the module that the main thread may hold (while it starts a pool's worker).

Notifying twice is harmless: ``Storage.interrupt`` may be called any number of times.
"""

from __future__ import annotations

import _thread
import logging
import weakref
from collections.abc import Callable

log = logging.getLogger("fogvault")

#: How long :func:`notify` waits for the callbacks before it returns anyway.
NOTIFY_WAIT_S = 1.0

Callback = Callable[[], object]

# Bound methods are held weakly: a TargetSet that nobody closed (an exception before its
# owner's try) is collected, its threads and connections with it, as before it registered.
_callbacks: list[Callable[[], Callback | None]] = []


def register(callback: Callback) -> None:
    """Have :func:`notify` call ``callback`` until it is unregistered (a bound method: or until
    its object is collected)."""
    ref = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else lambda: callback
    _callbacks[:] = [r for r in _callbacks if r() is not None] + [ref]


def unregister(callback: Callback) -> None:
    """Stop calling ``callback``."""
    _callbacks[:] = [r for r in _callbacks if r() not in (None, callback)]


def notify(wait: float = NOTIFY_WAIT_S) -> None:
    """Call every registered callback, on a thread of its own; return once they have returned,
    or after ``wait`` seconds. Safe in a signal handler."""
    callbacks = tuple(c for c in (r() for r in _callbacks) if c is not None)
    if not callbacks:
        return
    done = _thread.allocate_lock()
    done.acquire()
    try:
        _thread.start_new_thread(_call_all, (callbacks, done))
    except RuntimeError:  # no thread to be had (out of resources, or exiting): go on without
        return
    done.acquire(timeout=wait)


def _call_all(callbacks: tuple[Callback, ...], done: _thread.LockType) -> None:
    try:
        for callback in callbacks:
            try:
                callback()
            except Exception as exc:  # one failing callback must not keep the others from running
                log.warning("while interrupting: %s", exc)
    finally:
        done.release()
