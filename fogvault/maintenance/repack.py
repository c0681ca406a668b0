"""Copy blobs of some packs, still sealed, into new packs: prune's repack, and the salvage of
packs no target holds intact (``repair --index``).

The new packs are uploaded and indexed (in ``repo.index`` and in index files) by a
:class:`~fogvault.repo.packer.PackWriter`, as a backup's are; the caller then writes an index
without the old packs (:mod:`fogvault.maintenance.index_rewrite`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from fogvault.maintenance.progress import PhaseProgress
from fogvault.repo.index import BlobIndex, IndexEntry
from fogvault.repo.pack import pack_spans
from fogvault.repo.packer import PackWriter, PackWriterOptions
from fogvault.repo.repository import Repository

#: Threads reading and authenticating the blobs a repack copies. Authenticating a blob holds
#: it three times (sealed, decrypted, decompressed to check its id: up to 24 MiB for an 8 MiB
#: chunk), per thread: with two, a repack of large-file packs peaked at 81-85 MiB, with one at
#: 67-71, in the same time (docs/performance-log.md, "Session 12").
REPACK_READERS = 1
#: Bytes of a pack read at once while repacking (a larger blob is read alone).
REPACK_SPAN = 1024 * 1024
#: New packs a repack has in flight while it fills the next. Copying from a local disk filled
#: packs faster than they were written, and each pack in flight is 16 MiB of memory on top of
#: the heap's (docs/performance-log.md, "Session 11").
REPACK_UPLOADS = 1


def repack(repo: Repository, packs: set[bytes], progress: PhaseProgress, *,
           keep: Callable[[int], bool] | None = None, salvage: bool = False,
           elsewhere: Callable[[IndexEntry], bytes | None] | None = None,
           dry_run: bool = False) -> list[IndexEntry]:
    """Copy the blobs of ``packs`` (those whose index record ``keep`` accepts, or all) into new
    packs. With ``salvage``, a blob no target holds intact is taken from ``elsewhere`` (its
    bytes as stored, authenticated, or None: copies the targets' reads do not see), else left
    out instead of failing the copy, and the entries of those left out are returned. A dry run
    reads (to tell what would be left out) and writes nothing."""
    index = repo.index
    # Listed before the writer appends new packs to the index.
    chosen = [(pack_id, first, end) for pack_id, first, end in index.packs() if pack_id in packs]
    progress.phase("repack", len(chosen))
    lost: list[IndexEntry] = []
    writer = None if dry_run else PackWriter(
        repo, PackWriterOptions(max_uploads=REPACK_UPLOADS, index_every_packs=8))
    try:
        # Read and authenticated by REPACK_READERS threads (libsodium, zstd and BLAKE3 release
        # the GIL) while this one copies: at most 2 * REPACK_READERS + 1 spans are held. Whole
        # packs (16 MiB each, 5 of them) peaked at 120 MiB on a repack of large files.
        reads = repo.read_spans(_spans(index, chosen, keep), threads=REPACK_READERS,
                                ahead=2 * REPACK_READERS, sealed=True, salvage=salvage)
        with contextlib.closing(reads):  # on an error, stop the readers now, not at collection
            copying = None
            for blobs in reads:
                for entry, sealed in blobs:
                    if not isinstance(sealed, bytes) and elsewhere is not None:
                        sealed = elsewhere(entry) or sealed
                    if not isinstance(sealed, bytes):
                        lost.append(entry)
                    elif writer is not None:
                        writer.add(entry.blob_type, entry.blob_id, sealed, entry.raw_length)
                if blobs[0][0].pack_id != copying:  # a span holds at least one blob
                    copying = blobs[0][0].pack_id
                    progress.advance()
        if writer is not None:
            writer.flush()
    finally:
        if writer is not None:
            writer.close()
    return lost


def _spans(index: BlobIndex, packs: list[tuple[bytes, int, int]],
           keep: Callable[[int], bool] | None) -> Iterator[list[IndexEntry]]:
    """The kept blobs of ``packs`` as spans of one ranged read each, made one pack at a time:
    an entry object per blob of every repacked pack at once was about 60 MiB at a million
    blobs (216,000 copied)."""
    for _, first, end in packs:
        records = range(first, end) if keep is None else filter(keep, range(first, end))
        yield from pack_spans(map(index.entry_at, records), REPACK_SPAN)
