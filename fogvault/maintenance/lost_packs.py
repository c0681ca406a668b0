"""Packs no target holds intact, taken out of the index (``repair --index``; restic's
``repair index`` does it for packs that are gone, ``repair packs`` for damaged ones).

A pack that every target lacks, or holds only in copies whose bytes do not hash to its name,
cannot be copied back. As long as the index lists it, its blobs count as stored: a backup of the
very files it held deduplicates against them and stores nothing, and every snapshot that uses
them stays broken. So, under the exclusive lock, once every target is reachable and holds every
other pack (the caller checks that: the new index goes to every target):

1. **Re-read** each copy and hash it, those outside the pack's folder (``data/zz/<id>``) too.
   The pack is left alone if a copy matches its name after all (damage an earlier read
   recorded, that is not there now: its record is dropped, and the next ``repair`` copies it),
   if one outside its folder does (it is moved into its folder first), if one cannot be read
   (a target that stops answering), if a damaged one lies outside its folder (salvage reads
   the pack's own name only), and if it is a tree pack while the local cache is off (the
   cache may hold a good copy: ``repair`` without ``--no-cache`` copies it back).
2. **Salvage**: the blobs of the damaged copies that still authenticate, each taken from any
   copy, are copied into new packs (:func:`~fogvault.maintenance.repack.repack`), which their
   own index files list.
3. **Delete** the damaged copies: nothing in them authenticates any more.
4. **Index**: a new index without the lost packs replaces the old one
   (:func:`~fogvault.maintenance.index_rewrite.rewrite_index`).

Killed at any step, nothing is lost, and a rerun finishes: until step 4's last file is written
the old index holds, and a pack deleted by step 3 is missing everywhere, which the rerun takes
out of the index as any other (deleting the copies after the new index would leave them as
packs no index lists and none can be listed from: ``repair --index`` would report them on every
run). The blobs that no copy held intact are then unknown to the repository: the next backup of
the same files stores them again (a file whose chunks are not all indexed is read again), which
makes every snapshot that used them whole again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from fogvault.errors import IntegrityError
from fogvault.maintenance.index_rewrite import rewrite_index
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.reindex import move_home
from fogvault.maintenance.repack import repack
from fogvault.repo.format import BlobType, id_from_name
from fogvault.repo.index import BlobIndex, IndexEntry
from fogvault.repo.repository import Repository
from fogvault.storage import ObjectNotFound, StorageError

#: pack name -> {url: listed size} of each copy the targets hold (none: missing everywhere)
Copies = dict[str, dict[str, int]]
#: pack name -> (url, name, listed size) of each copy outside the pack's own folder
Misplaced = dict[str, list[tuple[str, str, int]]]


@dataclass(slots=True)
class LostPacks:
    dropped: list[str] = field(default_factory=list)  # packs taken out of the index
    blobs_salvaged: int = 0  # their blobs found intact in some copy, stored in new packs
    #: their blobs that no copy holds intact and no other pack holds: the snapshots that use
    #: them lack them until a backup stores them again
    blobs_lost: int = 0
    kept: dict[str, str] = field(default_factory=dict)  # name -> why, of packs left alone
    #: a dry run's stand-in for the new index: the blobs it would list (see :func:`_index_after`)
    index_after: BlobIndex | None = None


def drop_lost_packs(repo: Repository, copies: Copies, misplaced: Misplaced,
                    progress: PhaseProgress, *, dry_run: bool,
                    before_write: Callable[[], None]) -> LostPacks:
    """Take the packs of ``copies`` (each held intact by no target, as a repair found) out of
    the index, keeping what can still be read of them (the module's steps); ``before_write``
    raises if the lock can no longer be trusted. A dry run reads, to count, and writes
    nothing; it builds, in memory, the index the run would leave (``index_after``)."""
    result = LostPacks()
    progress.phase("re-read lost packs", sum(len(held) for held in copies.values()))
    lost = {}
    for name, held in sorted(copies.items()):
        why_kept = (_why_not_lost(repo, name, held, progress)
                    or _why_misplaced_copy_stays(repo, name, held, misplaced.get(name, []),
                                                 dry_run=dry_run, before_write=before_write)
                    or _why_tree_pack_stays(repo, name))
        if why_kept is None:
            lost[id_from_name(name)] = name
        else:
            result.kept[name] = why_kept
    if not lost:
        return result
    blobs = sum(end - first for pack_id, first, end in repo.index.packs() if pack_id in lost)
    unread = repack(repo, set(lost), progress, salvage=True, dry_run=dry_run)
    result.dropped = sorted(lost.values())
    result.blobs_salvaged = blobs - len(unread)
    if dry_run:
        index = result.index_after = _index_after(repo.index, set(lost), unread)
    else:
        before_write()
        for name in result.dropped:
            if copies[name]:
                repo.targets.delete(name)
            for url in copies[name]:
                repo.targets.forget_damage(url, name)
        rewrite_index(repo, set(lost), progress)
        index = repo.index
    # a blob another pack holds too is not lost
    result.blobs_lost = sum(1 for entry in unread if entry.blob_id not in index)
    return result


def _index_after(index: BlobIndex, dropped: set[bytes], unread: list[IndexEntry]
                 ) -> BlobIndex:
    """The blobs ``index`` would list once the packs ``dropped`` are out of it: every other
    pack's, and theirs but ``unread``. A real run stores those salvaged in new packs; here they
    stay listed in their old ones, which only a blob's presence is asked of (a dry run's
    second pass judges by it which snapshots the new index leaves whole)."""
    lost = {(entry.pack_id, entry.offset) for entry in unread}
    after = BlobIndex()
    after.reserve(len(index))
    for pack_id, first, end in index.packs():
        if pack_id not in dropped:
            after.add_listing(pack_id, index.listing(first, end))
            continue
        kept = [entry.pack_entry() for entry in map(index.entry_at, range(first, end))
                if (pack_id, entry.offset) not in lost]
        if kept:
            after.add_pack(pack_id, kept)
    return after


def _why_tree_pack_stays(repo: Repository, name: str) -> str | None:
    """Why a tree pack stays while the local cache is off (it may hold a good copy)."""
    if repo.cache is not None:
        return None
    wanted = id_from_name(name)
    first = next((first for pack_id, first, _ in repo.index.packs() if pack_id == wanted), None)
    if first is None or repo.index.entry_at(first).blob_type is not BlobType.TREE:
        return None
    return ("a tree pack is not taken out of the index while the local cache is off: it may "
            "hold a good copy, which 'fogvault repair' (without --no-cache) copies back")


def _why_not_lost(repo: Repository, name: str, held: dict[str, int], progress: PhaseProgress
                  ) -> str | None:
    """None if no copy of the pack ``name`` hashes to its name; else why it is left alone."""
    for url, size in sorted(held.items()):
        try:
            intact = _intact(repo, url, name, name, size)
        except StorageError as exc:
            return f"its copy on {url} could not be read again ({exc})"
        finally:
            progress.advance()
        if intact:
            repo.targets.forget_damage(url, name)
            return f"its copy on {url} is intact after all: repair again to copy it"
    return None


def _why_misplaced_copy_stays(repo: Repository, name: str, held: dict[str, int],
                              copies: list[tuple[str, str, int]], *, dry_run: bool,
                              before_write: Callable[[], None]) -> str | None:
    """None if the pack ``name`` has no copy outside its folder; else why it is left alone: an
    intact copy there is moved into its folder (unless ``dry_run``)."""
    for url, copy, size in copies:
        try:
            intact = _intact(repo, url, name, copy, size)
        except StorageError as exc:
            return f"its copy {copy} on {url} could not be read again ({exc})"
        if not intact:
            return (f"a damaged copy of it lies outside its folder on {url} ({copy}): move it "
                    "to its own name or delete it, then repair --index again")
        if dry_run:
            return f"its copy {copy} on {url} is intact: repair --index would move it home"
        storage = repo.targets.target(url).storage
        problem = move_home(repo, storage, copy, id_from_name(name), url in held, before_write)
        if problem is not None:
            return f"its intact copy {copy} on {url} could not be moved home: {problem}"
        repo.targets.forget_damage(url, name)
        return f"its intact copy {copy} on {url} was moved home: repair again to copy it"
    return None


def _intact(repo: Repository, url: str, name: str, copy: str, size: int) -> bool:
    """Whether the object ``copy`` on ``url`` is the pack ``name`` (its bytes hash to the
    pack's id); False if it is damaged or gone, StorageError if it cannot be read."""
    storage = repo.targets.target(url).storage
    try:
        repo.check_pack(id_from_name(name), size, partial(storage.read, copy), full=False)
    except (IntegrityError, ObjectNotFound):
        return False
    return True
