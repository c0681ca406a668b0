"""Process-wide tuning of the C allocator (one arena for the pipelines' threads, handing free
heap memory back to the system) and large buffers kept out of the heap."""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import sys
from collections.abc import Callable

_M_ARENA_MAX = -8  # glibc <malloc.h>
_heap_tuned = False


def use_one_malloc_arena() -> None:
    """Have every thread allocate from glibc's main heap.

    Each thread that allocates (backup's reader, seal and upload pools, restore's fetch and
    write threads, target writers) otherwise gets its own malloc arena, and multi-MiB windows,
    sealed blobs and packs freed in one arena are not reused by another: on a backup of large
    files that retained 30-50 MiB, on a restore 45-55 MiB (peak RSS 110-118 MiB with arenas,
    61-66 MiB without, same speed, both benchmark corpora). Call it before the process starts
    threads that allocate (opening a repository loads index files in 8 threads): their arenas
    would be reused by later threads (peak RSS of a big-file backup 166-180 MiB when it was
    called after opening, 137-153 MiB before). The CLI calls it before opening a repository,
    the job runner too. Fixed mmap thresholds would cut more memory but cost a page fault per
    page of every buffer, which made backup and restore slower. No-op without glibc."""
    global _heap_tuned
    if _heap_tuned:
        return
    _heap_tuned = True
    mallopt = _glibc("mallopt")
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, 1)


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``).

    Freed memory inside the heap stays in the process until the heap's top is free. Restore
    calls this after each batch of files: its planning frees tree reads of up to 4 MiB and
    index lookups' objects in between live ones, and the restoring process held about 13 MiB
    more than it used while its worker processes wrote (peak RSS of the three 95-96 MiB with
    this, 108-111 MiB without, same speed). No-op without glibc."""
    malloc_trim = _glibc("malloc_trim")
    if malloc_trim is not None:
        malloc_trim(0)


def zeroed_map(size: int, *, huge_pages: bool = False) -> mmap.mmap:
    """``size`` zero bytes of private anonymous memory, outside the C heap: pages cost nothing
    until written and go back to the system when the map is closed or collected. Private, not
    ``mmap``'s default shared mapping: shared anonymous pages are shared memory (tmpfs), whose
    first touch cost 40 % more system time here.

    ``huge_pages`` asks for transparent huge pages (``MADV_HUGEPAGE``; a hint, ignored where
    the system has none or grants none): one fault per 2 MiB instead of per 4 KiB, and fewer
    TLB misses for whoever reads or writes the whole map. For a backup's packs, written once
    and read once (hash, upload), that took its big-file backup from 3.94 to 3.31 s and 0.8 to
    0.5 s of system time, with no more peak RSS (docs/performance-log.md, "Session 12")."""
    buffer = mmap.mmap(-1, max(size, mmap.PAGESIZE), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if huge_pages and hasattr(mmap, "MADV_HUGEPAGE"):
        with contextlib.suppress(OSError):  # EINVAL: a kernel without transparent huge pages
            buffer.madvise(mmap.MADV_HUGEPAGE)
    return buffer


def append_to_map(buffer: mmap.mmap, end: int, data: bytes | memoryview) -> mmap.mmap:
    """``buffer`` with ``data`` written at ``end``, grown first if need be (see
    :func:`grown_map`: use the result in place of ``buffer``)."""
    needed = end + len(data)
    if needed > len(buffer):
        buffer = grown_map(buffer, max(2 * len(buffer), needed), end)
    buffer[end:needed] = data
    return buffer


def grown_map(buffer: mmap.mmap, size: int, used: int) -> mmap.mmap:
    """``buffer`` grown to ``size`` bytes, its first ``used`` kept: in place where the platform
    can (``mremap``: no copy, no second buffer at the peak), else a larger copy, which the
    caller must use in place of ``buffer`` (macOS has no ``mremap``). Raises BufferError while
    views of ``buffer`` are held."""
    try:
        buffer.resize(size)
    except (OSError, SystemError):  # SystemError: "resizing not available"
        larger = zeroed_map(size)
        with memoryview(buffer) as old:
            larger[:used] = old[:used]
        buffer = larger
    return buffer


class MapPool:
    """Private anonymous maps of one capacity, each handed out again once nothing uses it.

    A page of fresh memory costs a page fault and zeroing when it is first written (about 0.7
    ms per MiB on the benchmark machine, against 0.1 ms per MiB to write memory written before;
    docs/performance-log.md, "Session 12"). A map is handed out again only when no buffer of it is
    exported: every memoryview of a map (and every slice of one, and every buffer a C library
    holds of it) keeps the map's export count above zero, which CPython checks before it lets
    a map be resized, whatever the size (``_exported``). Up to ``keep`` maps are kept; when none
    is free a fresh one is mapped (and kept if there is room). A kept map holds the pages its
    users wrote: ``take`` hands back those beyond the size asked for, and all of a kept map's
    pages once it has not been handed out for ``2 * keep`` calls. Not thread-safe: one user
    thread. On interpreters other than CPython every map is fresh."""

    def __init__(self, capacity: int, keep: int) -> None:
        self.capacity = capacity
        self.keep = keep
        self._maps: list[mmap.mmap] = []
        self._written: list[int] = []  # bytes of each kept map that may hold pages
        self._last_taken: list[int] = []
        self._takes = 0

    def take(self, size: int) -> mmap.mmap:
        """A map of ``capacity`` bytes of which the caller writes at most the first ``size``;
        its content is whatever an earlier user left there."""
        if not 0 <= size <= self.capacity:
            raise ValueError("size out of the pool's range")
        if not _EXPORTS_VISIBLE:
            return zeroed_map(self.capacity)
        self._takes += 1
        chosen = None
        for i, buffer in enumerate(self._maps):
            if _exported(buffer):
                continue
            if chosen is None:
                chosen = i
            elif self._takes - self._last_taken[i] > 2 * self.keep:
                self._written[i] = _keep_written(buffer, self._written[i], 0)
        if chosen is None:
            fresh = zeroed_map(self.capacity)
            if len(self._maps) < self.keep:
                self._maps.append(fresh)
                self._written.append(size)
                self._last_taken.append(self._takes)
            return fresh
        self._written[chosen] = _keep_written(self._maps[chosen], self._written[chosen], size)
        self._last_taken[chosen] = self._takes
        return self._maps[chosen]


def _exported(buffer: mmap.mmap) -> bool:
    """Whether a buffer of ``buffer`` is exported (a view of it is alive). CPython refuses to
    resize a map with exports (BufferError) before it looks at the size or at the platform's
    ``mremap``, so resizing to the same size asks exactly that, for one system call."""
    try:
        buffer.resize(len(buffer))
    except BufferError:
        return True
    except (OSError, SystemError):  # no mremap (macOS): refused after the exports check
        return False
    return False


def _keep_written(buffer: mmap.mmap, written: int, size: int) -> int:
    """Hand back the pages of ``buffer`` beyond ``size`` that an earlier user wrote; return how
    much of it may hold pages now."""
    keep = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
    if written <= keep:
        return max(written, size)
    if hasattr(buffer, "madvise"):
        buffer.madvise(mmap.MADV_DONTNEED, keep, written - keep)
        return keep
    return written


_EXPORTS_VISIBLE = sys.implementation.name == "cpython"


def _glibc(name: str) -> Callable[..., int] | None:
    """The C library's function ``name``, or None where there is none (not glibc)."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
