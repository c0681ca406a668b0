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

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from fogvault.compression import pack_payload, pack_payloads
from fogvault.repo.format import BlobType
from fogvault.repo.pack import seal_payload_into, sealed_size
from fogvault.repo.packer import PackWriter, PackWriterOptions
from fogvault.repo.repository import Repository

BATCH_LIMIT = 64 * 1024  # smaller blobs are sealed in batches
BATCH_BYTES = 1024 * 1024  # a batch goes to a worker when it holds this many bytes...
BATCH_BLOBS = 512  # ...or this many blobs

_Blob = tuple[BlobType, bytes, bytes]  # type, id, data


class BlobSaver:
    def __init__(self, repo: Repository, writer: PackWriter | DryRunWriter, workers: int = 2
                 ) -> None:
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


@contextlib.contextmanager
def stored_blobs(repo: Repository, *, dry_run: bool = False, workers: int = 2,
                 writer: PackWriterOptions | None = None,
                 before_index: Callable[[], None] | None = None) -> Iterator[BlobSaver]:
    """A BlobSaver whose blobs are all stored and indexed when the block ends (with
    ``dry_run``, counted only). If the block fails or is interrupted, what was uploaded is
    indexed anyway, so that a rerun reuses it, and the error goes on."""
    packs = DryRunWriter(repo) if dry_run else PackWriter(repo, writer,
                                                         before_index=before_index)
    saver = BlobSaver(repo, packs, workers)
    try:
        yield saver
        saver.wait()
        packs.flush()
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):  # and soon: a hanging target is given up
            repo.targets.interrupt()
        salvage(saver, packs)
        raise
    finally:
        saver.close()
        packs.close()


class DryRunWriter:
    """Stands in for PackWriter in --dry-run: counts what would be stored, stores nothing."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._seen: set[bytes] = set()

    def reserve(self, blob_id: bytes) -> bool:
        if blob_id in self.repo.index or blob_id in self._seen:
            return False
        self._seen.add(blob_id)
        return True

    def put(self, *args: object) -> None:
        """Compressed (for the sizes reported), never encrypted: ``write`` is not called."""

    def flush(self) -> None:
        pass

    def salvage(self) -> None:
        pass

    def close(self) -> None:
        pass


def salvage(saver: BlobSaver, writer: PackWriter | DryRunWriter) -> None:
    """Index what an interrupted or failed run uploaded. The sealing pool is shut down, not
    the saver's recorded jobs waited for: Ctrl-C can land between starting a job and recording
    it, and that job's blobs must be in the writer before it indexes for the last time. Small
    blobs still waiting to be sent as a batch are dropped (at most BATCH_BYTES)."""
    try:
        saver.close()
        writer.salvage()
    except BaseException:  # the original error is what matters; this is best effort
        pass
