"""One complete new index without some packs: prune's step 4, and ``repair --index`` for packs
no target holds intact.

The listings are copied from the in-memory index's records as they are stored; the *last* new
file carries the ``supersedes`` list of every older index file, so a reader sees either the old
index or the complete new one, never a partial one (docs/format.md, "Ordering rules"). Only then
are the old files deleted. The caller holds the exclusive lock, and every target it writes to
holds every pack the new index lists.
"""

from __future__ import annotations

from dataclasses import dataclass

from fogvault.maintenance.progress import PhaseProgress
from fogvault.repo.format import index_name
from fogvault.repo.index import INDEX_FILE_BLOBS, IndexFile
from fogvault.repo.repository import Repository


@dataclass(slots=True)
class IndexRewrite:
    files_written: int = 0
    files_deleted: int = 0


def rewrite_index(repo: Repository, dropped: set[bytes], progress: PhaseProgress
                  ) -> IndexRewrite:
    """Index every pack of ``repo.index`` but ``dropped``; the last file supersedes every older
    index file (those written since the index was loaded too), which are then deleted."""
    done = IndexRewrite()
    old_ids = sorted(repo.index_ids())
    progress.phase("write index", len(repo.index))
    pending, pending_blobs = IndexFile(), 0
    for pack_id, first, end in repo.index.packs():
        if pack_id not in dropped:
            if pending_blobs >= INDEX_FILE_BLOBS:  # files end between packs
                repo.save_index(pending)
                done.files_written += 1
                pending, pending_blobs = IndexFile(), 0
            pending.listings[pack_id] = repo.index.listing(first, end)
            pending_blobs += end - first
        progress.advance(end - first)
    pending.supersedes = old_ids  # written last: the new index is complete by then
    repo.save_index(pending)
    done.files_written += 1
    progress.phase("delete old index files", len(old_ids))
    for index_id in old_ids:
        repo.targets.delete(index_name(index_id))
        if repo.cache:
            repo.cache.discard(index_name(index_id))
        done.files_deleted += 1
        progress.advance()
    repo.load_index()  # the old files are gone: this rebuilds from the new ones
    return done
