"""Helpers for tests that mount: a ``fogvault mount`` subprocess, waiting with a deadline,
unmounting whatever state a test left (``fusermount -u``, else ``umount -l``), damaging a
stored chunk, counting a file's opens, and measuring what a block of code leaves held."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fogvault.repo.format import pack_name
from fogvault.repo.index import IndexEntry

MOUNT_DEADLINE_S = 30.0


def fuse_missing() -> str | None:
    """Why this machine cannot mount FUSE file systems, or None."""
    if not (ctypes.util.find_library("fuse") or ctypes.util.find_library("fuse3")):
        return "libfuse is not installed (Debian: apt-get install fuse)"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as exc:
        return f"/dev/fuse cannot be opened: {exc.strerror}"
    return None


def is_mounted(point: Path) -> bool:
    """From the mount table: ``os.path.ismount`` says False for a FUSE mount whose process
    died (stat fails with ENOTCONN), which still needs unmounting."""
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == str(point) for line in mounts)


def force_unmount(point: Path) -> None:
    for command in (["fusermount", "-u"], ["umount"], ["umount", "-l"]):
        if not is_mounted(point):
            return
        subprocess.run([*command, str(point)], capture_output=True, check=False)


class MountProcess:
    """``fogvault mount ARGS POINT`` running; its output goes to files (a pipe nobody reads
    could fill up and stop it)."""

    def __init__(self, point: Path, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.point = point
        self.log = cwd / f"mount-{point.name}-{time.monotonic_ns()}"
        with open(f"{self.log}.out", "wb") as out, open(f"{self.log}.err", "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fogvault", "mount", *args, str(point)], env=env,
                cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)

    @property
    def stdout(self) -> str:
        return Path(f"{self.log}.out").read_text()

    @property
    def stderr(self) -> str:
        return Path(f"{self.log}.err").read_text()

    def wait_mounted(self) -> MountProcess:
        deadline = time.monotonic() + MOUNT_DEADLINE_S
        while not os.path.ismount(self.point):
            code = self.process.poll()
            assert code is None, f"mount exited with {code}: {self.stderr}"
            assert time.monotonic() < deadline, f"not mounted in time: {self.stderr}"
            time.sleep(0.02)  # polling the mount table, with the deadline above
        return self

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)

    def clean_up(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        force_unmount(self.point)


def flip_a_byte(repo: Path, entry: IndexEntry) -> None:
    """Damage the stored blob of ``entry`` in the local repository at ``repo``: one byte in its
    middle inverted (inverted again, it is repaired)."""
    with open(repo / pack_name(entry.pack_id), "r+b") as pack:
        pack.seek(entry.offset + entry.length // 2)
        byte = pack.read(1)
        pack.seek(-1, os.SEEK_CUR)
        pack.write(bytes([byte[0] ^ 0xFF]))


class OpenCounter:
    """How many times a file has been opened since this was made, by any process (inotify): a
    local target opens a pack for each read. The kernel merges an event into the one before it
    if they are alike and unread, so closes are watched too, to come between the opens (opens
    that overlap still count as one)."""

    IN_OPEN, IN_CLOSE_NOWRITE = 0x20, 0x10
    EVENT = struct.Struct("iIII")  # wd, mask, cookie, length of the name that follows

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        mask = self.IN_OPEN | self.IN_CLOSE_NOWRITE
        if self.fd < 0 or libc.inotify_add_watch(self.fd, os.fsencode(path), mask) < 0:
            raise OSError(ctypes.get_errno(), f"cannot watch {path}")
        self.opens = 0

    def count(self) -> int:
        """The opens so far (the kernel queued their events before the opens returned)."""
        while True:
            try:
                events = os.read(self.fd, 65536)
            except BlockingIOError:
                return self.opens
            offset = 0
            while offset < len(events):
                _, mask, _, name_length = self.EVENT.unpack_from(events, offset)
                self.opens += bool(mask & self.IN_OPEN)
                offset += self.EVENT.size + name_length

    def close(self) -> None:
        os.close(self.fd)


@dataclass(slots=True)
class Held:
    bytes: int = 0  # allocated by the block and still held when it ended


@contextmanager
def held_memory() -> Iterator[Held]:
    """What the block allocates and still holds when it ends (tracemalloc), with the cycle
    collector off, so that what only a reference cycle keeps (an error's traceback holding its
    frames' buffers) counts as held, as it is until a collection runs."""
    held = Held()
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        yield held
        held.bytes = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.enable()
