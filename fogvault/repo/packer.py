"""Writing blobs: collect sealed blobs into packs, upload packs in the background, and index
them often enough that an interrupted run loses little.

Thread-safe: the backup pipeline's workers call :meth:`PackWriter.put` concurrently, each
encrypting its blob straight into its place in the open pack without holding the lock; a pack is
uploaded once it is full and the last blob placed in it is written, by the thread that wrote
it. Memory is bounded: one open pack per blob type, full packs whose last places are still
being written (at most one per writing thread), a full pack whose thread waits for an upload
slot, and ``max_uploads`` packs in flight; of the packs uploaded, only the entries of those not
yet in an index file (the rest are in ``repo.index``).

Ordering (docs/format.md): a pack is uploaded to every target before any index file names it,
and :meth:`flush` returns only when every blob added so far is in an index file on every
target, so a snapshot written after ``flush`` never points at unindexed data.

A tree pack, once uploaded, is also copied into the local cache
(:meth:`~fogvault.repo.repository.Repository.cache_written_pack`), where the next backup reads
its parent's trees.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from fogvault.crypto import Buffer
from fogvault.repo.format import BlobType
from fogvault.repo.index import IndexFile
from fogvault.repo.pack import PackBuilder, PackEntry
from fogvault.repo.repository import Repository

_HEADER_ROOM = 1024 * 1024


@dataclass(slots=True)
class PackWriterOptions:
    max_uploads: int = 2  # finished packs in flight (memory: see the module docstring)
    index_every_packs: int = 8  # write an index file after this many new packs...
    index_every_seconds: float = 30.0  # ...or this long after the last one, whichever first


@dataclass(eq=False, slots=True)
class _OpenPack:
    builder: PackBuilder
    writing: int = 0  # places reserved and not yet written
    full: bool = False  # takes no more blobs: upload it once ``writing`` is 0
    broken: bool = False  # a place was not written: the pack must never be uploaded


@dataclass(slots=True)
class WriteStats:
    packs: int = 0
    blobs: int = 0
    bytes_stored: int = 0
    index_files: int = 0


class PackWriter:
    def __init__(
        self,
        repo: Repository,
        options: PackWriterOptions | None = None,
        before_index: Callable[[], None] | None = None,
    ) -> None:
        self.repo = repo
        # Called before each index file is written (the lock's ensure_fresh): an index naming
        # packs a prune may have deleted, while this process was stalled, must not appear.
        self._before_index = before_index or (lambda: None)
        self.options = options or PackWriterOptions()
        self.stats = WriteStats()
        self._lock = threading.Lock()
        self._open: dict[BlobType, _OpenPack] = {}
        self._writing = 0  # places reserved and not yet written, in every pack
        self._broken: BaseException | None = None
        self._reserved: set[bytes] = set()
        self._pool = ThreadPoolExecutor(max_workers=self.options.max_uploads)
        self._slots = threading.BoundedSemaphore(self.options.max_uploads)
        self._uploads: list[Future[None]] = []
        # Packs uploaded and not yet in an index file: the only entries the writer keeps, so
        # its memory does not grow with the blobs a run writes (they are in repo.index).
        self._unindexed: dict[bytes, list[PackEntry]] = {}
        self._index_lock = threading.Lock()
        self._last_index = time.monotonic()
        config = repo.config
        # A full pack plus the largest data blob that can cross the limit, and its header.
        self._capacity = config.pack_size + config.chunker.max_size + _HEADER_ROOM

    def reserve(self, blob_id: bytes) -> bool:
        """True if the caller should store ``blob_id`` (nobody has it or is storing it).

        Ids stay reserved only until their pack is indexed (so the set holds at most the blobs
        in flight, not every new blob of the run); checking the reservations before the index,
        under the lock, means no id is ever missed in between."""
        with self._lock:
            if blob_id in self._reserved or blob_id in self.repo.index:
                return False
            self._reserved.add(blob_id)
            return True

    def add(self, blob_type: BlobType, blob_id: bytes, sealed: Buffer, raw_length: int) -> None:
        """Add a blob sealed elsewhere (a repack copies blobs without decrypting them)."""

        def copy(place: memoryview) -> None:
            place[:] = sealed

        self.put(blob_type, blob_id, len(sealed), raw_length, copy)

    def put(
        self,
        blob_type: BlobType,
        blob_id: bytes,
        length: int,
        raw_length: int,
        write: Callable[[memoryview], None],
    ) -> None:
        """Add a blob of ``length`` sealed bytes, which ``write`` puts into the view of its
        place in the pack it is given (``pack.seal_payload_into``), outside the lock: several
        threads write into one pack at once, and no sealed blob is copied. If anything fails
        once a place is reserved, its pack is never uploaded and the writer fails."""
        self._raise_failed_upload()
        with self._lock:
            pack, place, closed = self._reserve(blob_type, blob_id, length, raw_length)
            pack.writing += 1
            self._writing += 1
            self.stats.blobs += 1
            if pack.builder.size >= self.repo.config.pack_size:
                pack.full = True
                del self._open[blob_type]
        try:
            with place:
                if closed is not None:
                    self._submit(closed)
                write(place)
        except BaseException as exc:
            with self._lock:
                pack.broken = True
                self._broken = self._broken or exc
            raise
        finally:
            with self._lock:
                pack.writing -= 1
                self._writing -= 1
                ready = pack.full and not pack.writing
                if pack.broken and not pack.writing:
                    pack.builder.discard()  # the error's traceback would keep its map alive
        if ready:
            self._submit(pack)

    def _reserve(self, blob_type: BlobType, blob_id: bytes, length: int, raw_length: int
                 ) -> tuple[_OpenPack, memoryview, _OpenPack | None]:
        """(the open pack a blob of ``length`` goes into, the blob's place in it, a pack
        closed to make room that is ready to upload). Called under the lock. A pack's map
        cannot grow while other blobs are being written into it, so a blob that does not fit
        (a tree blob larger than the largest chunk) closes the pack and starts one of its own
        size; the place is reserved first, so a failure (no memory for a map) changes nothing."""
        pack = self._open.get(blob_type)
        if pack is not None and pack.builder.fits(length):
            return pack, self._place(pack, blob_id, length, raw_length), None
        capacity = max(self._capacity, length + _HEADER_ROOM)
        fresh = _OpenPack(PackBuilder(blob_type, capacity))
        place = self._place(fresh, blob_id, length, raw_length)
        self._open[blob_type] = fresh
        if pack is None:
            return fresh, place, None
        pack.full = True
        return fresh, place, pack if len(pack.builder) and not pack.writing else None

    def _place(self, pack: _OpenPack, blob_id: bytes, length: int, raw_length: int
               ) -> memoryview:
        try:
            return pack.builder.reserve(blob_id, length, raw_length)
        except BaseException as exc:
            self._broken = self._broken or exc
            raise

    def _submit(self, pack: _OpenPack) -> None:
        if pack.broken:
            return
        self._slots.acquire()  # back-pressure: wait while max_uploads packs are in flight
        try:
            pack_id, data, entries = pack.builder.finish(self.repo.master.encryption)
        except BaseException as exc:
            self._slots.release()
            with self._lock:
                self._broken = self._broken or exc
            raise
        future = self._pool.submit(self._upload, pack_id, data, entries)  # releases the slot
        with self._lock:
            self._uploads.append(future)

    def _upload(self, pack_id: bytes, data: memoryview, entries: list[PackEntry]) -> None:
        try:
            self.repo.save_pack(pack_id, data)
            self.repo.cache_written_pack(pack_id, data, entries[0].blob_type)
        finally:
            self._slots.release()
        self.repo.index.add_pack(pack_id, entries)
        with self._lock:
            self._reserved.difference_update(e.blob_id for e in entries)
            self._unindexed[pack_id] = entries
            self.stats.packs += 1
            self.stats.bytes_stored += len(data)
        self._maybe_write_index()

    def _maybe_write_index(self) -> None:
        due = len(self._unindexed) >= self.options.index_every_packs or (
            time.monotonic() - self._last_index >= self.options.index_every_seconds
        )
        if due:
            self._write_index()

    def _write_index(self) -> None:
        with self._index_lock:
            with self._lock:
                packs, self._unindexed = self._unindexed, {}
            if packs:
                try:
                    self._before_index()
                    self.repo.save_index(IndexFile(packs=packs))
                except BaseException:
                    # Not indexed: keep them for the next try (salvage after Ctrl-C), or
                    # they would stay on the targets in no index file.
                    with self._lock:
                        self._unindexed.update(packs)
                    raise
                with self._lock:
                    self.stats.index_files += 1
            self._last_index = time.monotonic()

    def _raise_failed_upload(self) -> None:
        with self._lock:
            if self._broken is not None:
                raise self._broken
            done = [f for f in self._uploads if f.done()]
            self._uploads = [f for f in self._uploads if not f.done()]
        for future in done:
            if future.exception() is not None:
                with self._lock:  # raised by every later call and by flush, not just this one
                    self._broken = self._broken or future.exception()
                raise future.exception()

    def flush(self) -> None:
        """Upload every open pack and index everything uploaded; raises the first failure.
        Call it when no :meth:`put` is in progress."""
        self._submit_open()
        with self._lock:
            uploads, self._uploads = self._uploads, []
        errors = [f.exception() for f in uploads]
        self._write_index()
        for error in [self._broken, *errors]:
            if error is not None:
                raise error

    def salvage(self) -> None:
        """End an interrupted or failed run keeping what can be kept: upload the open packs
        if possible, wait for every upload, index everything uploaded. The upload pool is shut
        down rather than the recorded uploads waited for, as an interrupt can land between
        starting an upload and recording it: no pack may reach the targets after the last
        index file is written, or it would be stored and never indexed. Call it when no
        :meth:`put` is in progress; the writer takes no more blobs.

        Best effort: a second interrupt ends it; an interrupt while the pool starts a thread
        (its first uploads) can leave a thread the pool does not know of. A pack stored and
        not indexed wastes space until ``prune`` removes it; it loses nothing."""
        with contextlib.suppress(Exception):
            self._submit_open()
        self._pool.shutdown(wait=True)
        self._write_index()

    def _submit_open(self) -> None:
        """Upload every open pack. A pack that cannot be finished is the writer's failure,
        raised by :meth:`flush` once the packs already uploaded are indexed."""
        with self._lock:
            if self._writing:
                raise RuntimeError("PackWriter flushed while blobs are being written")
            packs = [p for p in self._open.values() if len(p.builder)]
            self._open.clear()
        for pack in packs:
            with contextlib.suppress(Exception):
                self._submit(pack)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
