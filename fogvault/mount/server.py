"""Serving a :class:`~fogvault.mount.view.SnapshotView` at a mount point until it is unmounted.

:func:`serve` holds a shared lock on the repository for as long as the mount runs (a prune,
which deletes, waits; backups, forgets and other readers do not), loads the index under it,
and runs libfuse's loop (multi-threaded) on a thread of its own, with the signals that stop
the CLI blocked there. The calling thread waits, and so stays where Python delivers signals:

- unmounted from outside (``fusermount -u``, ``umount``): the loop ends and :func:`serve`
  returns;
- ``KeyboardInterrupt`` (the CLI turns SIGINT, SIGTERM and SIGHUP into it, and so does
  :func:`serve` itself for a SIGTERM or SIGHUP left at its default in the main thread): the
  mount point is unmounted, the loop ends, and the exception goes on. A mount still in use
  (a shell inside it, a file open) cannot be unmounted at once: it is detached
  (``fusermount -u -z``: new users no longer find it), with a warning. Then:

  - after SIGINT (Ctrl-C: a person at the terminal, who can press it again) it goes on serving
    those inside it, holding the lock, until the last one leaves; the kernel then ends the
    loop, and the exception goes on. Another stop signal meanwhile stops it at once. The
    warning names the process id: ``fusermount -u`` no longer reaches a detached mount.
  - after SIGTERM or SIGHUP (``kill``, systemd, ``timeout``, a closed terminal: nobody may
    be there to stop it again, and systemd would SIGKILL it, leaving its lock) it stops at
    once, as after any other ``KeyboardInterrupt``: what is open in it then fails (ENOTCONN),
    and the lock goes.

libfuse installs its own handlers for SIGINT, SIGTERM and SIGHUP only where they are at their
default, in which case a signal would stop its loop only at the next request: hence the
handlers above.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType, ModuleType

from fogvault.errors import FogVaultError, UsageError
from fogvault.mount.view import MountOptions, SnapshotView
from fogvault.repo.repository import Repository

log = logging.getLogger("fogvault")

FUSE_DEVICE = "/dev/fuse"
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
POLL_S = 0.5  # how often the waiting thread looks at a loop starting (signals interrupt waits)
FUSE_CONF = "/etc/fuse.conf"
LOOP_END_S = 10.0  # how long an unmount may take to end the loop before serve gives up on it


class FuseUnavailable(FogVaultError):
    """This machine cannot mount FUSE file systems: no libfuse, or no usable /dev/fuse."""


def check_mountpoint(mountpoint: str) -> None:
    """Refuse a mount point that is missing, not a folder, or not empty (usage errors)."""
    try:
        entries = os.listdir(mountpoint)
    except FileNotFoundError:
        raise UsageError(f"mount point {mountpoint} does not exist") from None
    except NotADirectoryError:
        raise UsageError(f"mount point {mountpoint} is not a folder") from None
    except OSError as exc:
        raise UsageError(f"mount point {mountpoint} cannot be read: {exc.strerror}") from None
    if entries:
        raise UsageError(f"mount point {mountpoint} is not empty")


def require_fuse() -> ModuleType:
    """The FUSE adapter module, once libfuse loads and the FUSE device opens."""
    try:
        from fogvault.mount import fuse_ops
    except (OSError, AttributeError) as exc:  # mfusepy: no libfuse, or one it cannot use
        raise FuseUnavailable(f"FUSE is not available: libfuse cannot be loaded ({exc}); "
                              "install Debian's fuse3 or fuse package") from None
    try:
        os.close(os.open(FUSE_DEVICE, os.O_RDWR))
    except OSError as exc:
        raise FuseUnavailable(f"FUSE is not available: cannot open {FUSE_DEVICE}: "
                              f"{exc.strerror} (load the fuse module; in a container, pass "
                              "the device in)") from None
    return fuse_ops


def check_allow_other() -> None:
    """UsageError unless this user may mount for others: root, or any user if /etc/fuse.conf
    says ``user_allow_other`` (fusermount refuses otherwise, with a message of its own, once
    the repository is open)."""
    if os.geteuid() == 0:
        return
    try:
        with open(FUSE_CONF) as conf:
            if any(line.split("#", 1)[0].strip() == "user_allow_other" for line in conf):
                return
    except OSError:
        pass
    raise UsageError(f"--allow-other needs 'user_allow_other' in {FUSE_CONF} (or root)")


def serve(repo: Repository, mountpoint: str, options: MountOptions | None = None,
          on_ready: Callable[[SnapshotView], None] | None = None) -> None:
    """Show the snapshots of ``repo`` at ``mountpoint`` until it is unmounted, or until
    ``KeyboardInterrupt`` (which unmounts, or detaches a mount in use, and is raised again; after
    SIGINT a detached mount is served until it is left). ``on_ready`` is called once the kernel
    has the mount. ``options.allow_other`` lets other users in, with the kernel checking each
    entry's stored owner and mode (FUSE's ``default_permissions``); otherwise only the user who
    mounted may enter, and reads all."""
    check_mountpoint(mountpoint)
    fuse_ops = require_fuse()
    options = options or MountOptions()
    if options.allow_other:
        check_allow_other()
    with repo.lock(writes=False):
        repo.load_index()  # under the lock: a prune that ran since cannot have deleted its packs
        view = SnapshotView(repo, options)
        try:
            with _stop_signals_recorded() as received:
                _Session(fuse_ops, view, os.path.abspath(mountpoint), received).run(on_ready)
        finally:
            view.close()


class _Session:
    """libfuse's loop on a thread of its own, and the waiting for it to end."""

    def __init__(self, fuse_ops: ModuleType, view: SnapshotView, mountpoint: str,
                 received: list[int]) -> None:
        self.fuse_ops = fuse_ops
        # Others are let in only with the kernel checking owners and modes: without
        # default_permissions the mount would let anyone read every file of every snapshot.
        self.permissions = ({"allow_other": True, "default_permissions": True}
                            if view.options.allow_other else {})
        self.view = view
        self.mountpoint = mountpoint
        self.received = received  # the stop signals that reached the main thread, in order
        self.ready = threading.Event()
        # Set when the loop has ended. Not Thread.is_alive: on Python 3.11 a KeyboardInterrupt
        # in Thread.join marks a running thread as stopped (the bpo-45274 handler releases the
        # lock the thread holds while it runs), so that an interrupted mount was not waited for.
        self.ended = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="fuse", daemon=True)

    def run(self, on_ready: Callable[[SnapshotView], None] | None) -> None:
        self.thread.start()
        try:
            while not self.ready.wait(POLL_S):
                if self.ended.is_set():
                    raise FogVaultError(f"could not mount at {self.mountpoint}: "
                                        f"{_why(self.failure)}")
            if on_ready is not None:
                on_ready(self.view)
            self.ended.wait()  # a signal's KeyboardInterrupt interrupts it
        except BaseException:
            self._stop()
            raise
        if self.failure is not None:
            raise FogVaultError(f"the mount at {self.mountpoint} failed: {_why(self.failure)}")

    def _loop(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # libfuse's threads inherit it
        try:
            operations = self.fuse_ops.FogVaultOperations(self.view, self.ready)
            self.fuse_ops.mfusepy.FUSE(
                operations, self.mountpoint, foreground=True, ro=True, use_ino=True,
                fsname="fogvault", subtype="fogvault", encoding=self.fuse_ops.ENCODING,
                errors=self.fuse_ops.ERRORS, **self.permissions)
        except BaseException as exc:  # told by run(): a thread's exception would print itself
            self.failure = exc
        finally:
            self.ended.set()

    def _stop(self) -> None:
        """Unmount, once the mount is there if it is on its way (an interrupt while libfuse
        mounts), and let the loop end; a mount in use is detached, and served until it is left
        only after Ctrl-C."""
        deadline = time.monotonic() + LOOP_END_S
        while not self.ready.is_set() and not self.ended.is_set() and time.monotonic() < deadline:
            self.ready.wait(0.05)
        if not self.ready.is_set():
            return  # never mounted: libfuse gave up, or is stuck before mounting
        if unmount(self.mountpoint):
            self.ended.wait(LOOP_END_S)
        elif not unmount(self.mountpoint, lazy=True):
            log.warning("could not unmount %s: unmount it with 'fusermount -u %s'",
                        self.mountpoint, self.mountpoint)
        elif self.received[:1] == [signal.SIGINT]:
            self._serve_until_left()
        else:  # kill, systemd, timeout, a closed terminal: nobody may be there to stop it again
            self._warn_stopped_in_use()

    def _serve_until_left(self) -> None:
        """Wait for the loop of a detached mount, which ends when its last user leaves it
        (or for another ``KeyboardInterrupt``)."""
        try:
            # Not fusermount: a detached mount point no longer leads to this mount.
            log.warning("%s is in use: detached, it goes on serving what is open in it until "
                        "the last user leaves; another Ctrl-C or 'kill %d' stops it at once",
                        self.mountpoint, os.getpid())
            self.ended.wait()
        except KeyboardInterrupt:
            self._warn_stopped_in_use()
            raise

    def _warn_stopped_in_use(self) -> None:
        log.warning("stopped while %s was in use: what is open in it fails from now on",
                    self.mountpoint)


def _why(failure: BaseException | None) -> str:
    if isinstance(failure, RuntimeError):  # mfusepy: fuse_main's status; libfuse said why
        return f"libfuse stopped with status {failure} (its message above says why)"
    return f"{type(failure).__name__}: {failure}" if failure else "libfuse stopped"


def unmount(mountpoint: str, *, lazy: bool = False) -> bool:
    """Unmount ``mountpoint``; ``lazy``: detach it even if it is in use (it goes away when the
    last user leaves it). False if no command could (one in use, unless ``lazy``)."""
    return any(subprocess.run([*command, mountpoint], capture_output=True, check=False)
               .returncode == 0 for command in _unmount_commands(lazy))


def _unmount_commands(lazy: bool) -> list[list[str]]:
    """fusermount3 or fusermount (any user), else umount (root)."""
    candidates = [["fusermount3", "-u"], ["fusermount", "-u"], ["umount"]]
    return [[*command, "-z" if command[0] != "umount" else "-l"] if lazy else command
            for command in candidates if shutil.which(command[0])]


@contextlib.contextmanager
def _stop_signals_recorded() -> Iterator[list[int]]:
    """Record each stop signal that reaches the main thread while serving, in the list
    yielded, then act on it as before: the handler already there acts (the CLI's raises
    KeyboardInterrupt), and one at its default raises KeyboardInterrupt (otherwise libfuse
    would take it). Ignored ones (nohup) stay ignored. The list tells Ctrl-C from kill."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # signals are delivered to the main thread only
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    taken = {s: h for s, h in previous.items() if h == signal.SIG_DFL or callable(h)}

    def record(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        handler = taken[signum]
        if not callable(handler):
            raise KeyboardInterrupt
        handler(signum, frame)

    for signum in taken:
        signal.signal(signum, record)
    try:
        yield received
    finally:
        for signum, handler in taken.items():
            signal.signal(signum, handler)
