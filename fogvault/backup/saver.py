"""Turning bytes into stored blobs: id, dedup check, compression and encryption in a pool.

The caller's thread computes the keyed id (BLAKE3 releases the GIL) and decides whether the
blob is new; new blobs larger than ``INLINE_LIMIT`` are sealed by worker threads (zstd and
libsodium release the GIL too) and handed to the PackWriter. A semaphore bounds the blobs in
flight, so memory stays bounded however large the input.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from fogvault.repo.format import BlobType
from fogvault.repo.pack import seal_blob
from fogvault.repo.packer import PackWriter
from fogvault.repo.repository import Repository

INLINE_LIMIT = 64 * 1024  # smaller blobs cost less to seal than to hand to a thread

class BlobSaver:
    def __init__(self, repo: Repository, writer: PackWriter, workers: int = 2) -> None:
        self.repo = repo
        self.writer = writer
        self.level = repo.config.compression_level
        self.blobs_added = {BlobType.DATA: 0, BlobType.TREE: 0}
        self.bytes_added = 0
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seal")
        self._in_flight = threading.BoundedSemaphore(2 * workers)
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._pending: set[Future[None]] = set()

    def save(self, blob_type: BlobType, data: bytes, blob_id: bytes | None = None) -> bytes:
        """Store ``data`` unless the repository has it; return its id."""
        if blob_id is None:
            blob_id = self.repo.blob_id(data)
        self._raise_error()
        if not self.writer.reserve(blob_id):
            return blob_id
        if len(data) < INLINE_LIMIT:
            self._seal_and_add(blob_type, blob_id, data)
            return blob_id
        self._in_flight.acquire()
        future = self._pool.submit(self._seal_and_add, blob_type, blob_id, data)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)
        return blob_id

    def _seal_and_add(self, blob_type: BlobType, blob_id: bytes, data: bytes) -> None:
        sealed = seal_blob(self.repo.master.encryption, blob_type, blob_id, data, self.level)
        self.writer.add(blob_type, blob_id, sealed, len(data))
        with self._lock:
            self.blobs_added[blob_type] += 1
            self.bytes_added += len(sealed)

    def _done(self, future: Future[None]) -> None:
        self._in_flight.release()
        with self._lock:
            self._pending.discard(future)
            if future.exception() is not None:
                self._errors.append(future.exception())

    def _raise_error(self) -> None:
        with self._lock:
            if self._errors:
                raise self._errors[0]

    def wait(self) -> None:
        """Wait until every blob handed in is in the PackWriter; raise the first failure."""
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                break
            for future in pending:
                future.exception()
        self._raise_error()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
