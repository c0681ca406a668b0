"""Writing blobs: collect sealed blobs into packs, upload packs in the background, and index
them often enough that an interrupted run loses little.

Thread-safe: the backup pipeline's workers call :meth:`PackWriter.add` concurrently. Memory is
bounded: at most one open pack per blob type plus ``max_uploads`` finished packs in flight.

Ordering (docs/format.md): a pack is uploaded to every target before any index file names it,
and :meth:`flush` returns only when every blob added so far is in an index file on every
target, so a snapshot written after ``flush`` never points at unindexed data.
"""

from __future__ import annotations

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
    max_uploads: int = 2  # finished packs in flight; bounds memory to ~(2 + max_uploads) packs
    index_every_packs: int = 8  # write an index file after this many new packs...
    index_every_seconds: float = 30.0  # ...or this long after the last one, whichever first


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
        self._builders: dict[BlobType, PackBuilder] = {}
        self._reserved: set[bytes] = set()
        self._pool = ThreadPoolExecutor(max_workers=self.options.max_uploads)
        self._slots = threading.BoundedSemaphore(self.options.max_uploads)
        self._uploads: list[Future[None]] = []
        self._unindexed: dict[bytes, list[PackEntry]] = {}
        self.written: dict[bytes, list[PackEntry]] = {}  # every pack this writer uploaded
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
        self._raise_failed_upload()
        with self._lock:
            builder = self._builders.get(blob_type)
            if builder is None:
                builder = self._builders[blob_type] = PackBuilder(blob_type, self._capacity)
            builder.add(blob_id, sealed, raw_length)
            self.stats.blobs += 1
            if builder.size < self.repo.config.pack_size:
                return
            del self._builders[blob_type]
        self._submit(builder)

    def _submit(self, builder: PackBuilder) -> None:
        self._slots.acquire()  # back-pressure: wait while max_uploads packs are in flight
        pack_id, data, entries = builder.finish(self.repo.master.encryption)
        future = self._pool.submit(self._upload, pack_id, data, entries)
        with self._lock:
            self._uploads.append(future)

    def _upload(self, pack_id: bytes, data: memoryview, entries: list[PackEntry]) -> None:
        try:
            self.repo.save_pack(pack_id, data)
        finally:
            self._slots.release()
        self.repo.index.add_pack(pack_id, entries)
        with self._lock:
            self._reserved.difference_update(e.blob_id for e in entries)
            self._unindexed[pack_id] = entries
            self.written[pack_id] = entries
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
                self._before_index()
                self.repo.save_index(IndexFile(packs=packs))
                with self._lock:
                    self.stats.index_files += 1
            self._last_index = time.monotonic()

    def _raise_failed_upload(self) -> None:
        with self._lock:
            done = [f for f in self._uploads if f.done()]
            self._uploads = [f for f in self._uploads if not f.done()]
        for future in done:
            future.result()

    def flush(self) -> None:
        """Upload every open pack and index everything uploaded; raises the first failure."""
        with self._lock:
            builders = [b for b in self._builders.values() if len(b)]
            self._builders.clear()
        for builder in builders:
            self._submit(builder)
        with self._lock:
            uploads, self._uploads = self._uploads, []
        errors = [f.exception() for f in uploads]
        self._write_index()
        for error in errors:
            if error is not None:
                raise error

    def close(self) -> None:
        self._pool.shutdown(wait=True)
