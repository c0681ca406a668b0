"""Turning bytes into stored blobs: id, dedup check, compression and encryption in a pool.

The caller's thread computes the keyed id (BLAKE3 releases the GIL) and decides whether the
blob is new; worker threads compress new blobs and encrypt them straight into their places in
the PackWriter's packs (zstd and libsodium release the GIL too). Blobs under ``BATCH_LIMIT`` go
to the workers in batches compressed by one call: sealed one at a time, each small blob made the
worker take the GIL back after a few microseconds, and the walking thread waited for it at its
next system call (or sealed them itself, on one core). A semaphore bounds the work in flight, so
memory stays bounded however large the input.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from fogvault.compression import pack_payload, pack_payloads
from fogvault.repo.format import BlobType
from fogvault.repo.pack import seal_payload_into, sealed_size
from fogvault.repo.packer import PackWriter
from fogvault.repo.repository import Repository

BATCH_LIMIT = 64 * 1024  # smaller blobs are sealed in batches
BATCH_BYTES = 1024 * 1024  # a batch goes to a worker when it holds this many bytes...
BATCH_BLOBS = 512  # ...or this many blobs

_Blob = tuple[BlobType, bytes, bytes]  # type, id, data


class BlobSaver:
    def __init__(self, repo: Repository, writer: PackWriter, workers: int = 2) -> None:
        self.repo = repo
        self.writer = writer
        self.level = repo.config.compression_level
        self.blobs_added = {BlobType.DATA: 0, BlobType.TREE: 0}
        self.bytes_added = 0
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seal")
        self._in_flight = threading.BoundedSemaphore(2 * workers)  # blobs or batches
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._pending: set[Future[None]] = set()
        self._batch: list[_Blob] = []
        self._batch_bytes = 0

    def save(self, blob_type: BlobType, data: bytes, blob_id: bytes | None = None) -> bytes:
        """Store ``data`` unless the repository has it; return its id. Called from one thread;
        the blob is in the PackWriter after :meth:`wait`."""
        if blob_id is None:
            blob_id = self.repo.blob_id(data)
        self._raise_error()
        if not self.writer.reserve(blob_id):
            return blob_id
        if len(data) >= BATCH_LIMIT:
            self._submit(self._seal_one, blob_type, blob_id, data)
            return blob_id
        self._batch.append((blob_type, blob_id, data))
        self._batch_bytes += len(data)
        if self._batch_bytes >= BATCH_BYTES or len(self._batch) >= BATCH_BLOBS:
            self._submit_batch()
        return blob_id

    def _submit_batch(self) -> None:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if batch:
            self._submit(self._seal_batch, batch)

    def _submit(self, work: Callable[..., None], *args: object) -> None:
        self._in_flight.acquire()
        future = self._pool.submit(work, *args)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _seal_one(self, blob_type: BlobType, blob_id: bytes, data: bytes) -> None:
        self._put(blob_type, blob_id, pack_payload(data, self.level), len(data))

    def _seal_batch(self, batch: list[_Blob]) -> None:
        payloads = pack_payloads([data for _, _, data in batch], self.level)
        for (blob_type, blob_id, data), payload in zip(batch, payloads, strict=True):
            self._put(blob_type, blob_id, payload, len(data))

    def _put(self, blob_type: BlobType, blob_id: bytes, payload: bytes, raw_length: int) -> None:
        """Encrypt the payload straight into its place in a pack."""
        size = sealed_size(payload)
        key = self.repo.master.encryption
        self.writer.put(blob_type, blob_id, size, raw_length,
                        partial(seal_payload_into, key, blob_type, blob_id, payload))
        with self._lock:
            self.blobs_added[blob_type] += 1
            self.bytes_added += size

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
        self._submit_batch()
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
