"""Packs no target holds intact, taken out of the index (``repair --index``; restic's
``repair index`` does it for packs that are gone, ``repair packs`` for damaged ones).

A pack that every target lacks, or holds only in copies whose bytes do not hash to its name,
cannot be copied back. As long as the index lists it, its blobs count as stored: a backup of the
very files it held deduplicates against them and stores nothing, and every snapshot that uses
them stays broken. So, under the exclusive lock, once every target is reachable and holds every
other pack (the caller checks that: the new index goes to every target), the steps below.
Otherwise (a plain ``repair``, or a target away) only the copies in the packs' folders are
read again (:func:`find_intact`), to find those intact after all:

1. **Re-read** each copy and hash it, those outside the pack's folder (``data/zz/<id>``) too.
   The pack is *found* if a copy matches its name after all (damage an earlier read
   recorded, that is not there now: its record is dropped), or if one outside its folder
   does (it is moved into its folder): the caller then copies it to the other targets. It is
   left alone if a copy cannot be read
   (a target that stops answering: it is never deleted unread), and if it is a tree pack while
   the local cache is off (the cache may hold a good copy: ``repair`` without ``--no-cache``
   copies it back).
2. **Salvage**: the blobs of the damaged copies that still authenticate, each taken from any
   copy (the pack's own name on each target, then the copies outside its folder), are copied
   into new packs (:func:`~fogvault.maintenance.repack.repack`), which their own index files
   list.
3. **Delete** the damaged copies, in the pack's folder and outside it: every blob in them
   that authenticates is stored again by now.
4. **Index**: a new index without the lost packs replaces the old one
   (:func:`~fogvault.maintenance.index_rewrite.rewrite_index`).

Killed at any step, nothing is lost, and a rerun finishes: until step 4's last file is written
the old index holds, and a pack whose copies step 3 deleted is missing everywhere, which the
rerun takes out of the index as any other (one whose copy outside its folder is left is
salvaged again from it, and that copy deleted; deleting the copies after the new index would
leave them as packs no index lists and none can be listed from: ``repair --index`` would report
them on every run). The blobs that no copy held intact are then unknown to the repository: the
next backup of the same files stores them again (a file whose chunks are not all indexed is
read again), which makes every snapshot that used them whole again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from fogvault.errors import IntegrityError
from fogvault.maintenance.index_rewrite import rewrite_index
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.reindex import MovedPack, move_home
from fogvault.maintenance.repack import repack
from fogvault.repo.format import BlobType, id_from_name, pack_name
from fogvault.repo.index import BlobIndex, IndexEntry
from fogvault.repo.repository import Repository
from fogvault.storage import ObjectNotFound, StorageError
from fogvault.targets.replicated import count_mutation

log = logging.getLogger("fogvault")

#: pack name -> {url: listed size} of each copy the targets hold (none: missing everywhere)
Copies = dict[str, dict[str, int]]
#: (url, name, listed size) of a copy of a pack outside the pack's own folder
MisplacedCopy = tuple[str, str, int]
#: pack name -> each copy outside its folder
Misplaced = dict[str, list[MisplacedCopy]]


@dataclass(slots=True)
class LostPacks:
    dropped: list[str] = field(default_factory=list)  # packs taken out of the index
    blobs_salvaged: int = 0  # their blobs found intact in some copy, stored in new packs
    #: their blobs that no copy holds intact and no other pack holds: the snapshots that use
    #: them lack them until a backup stores them again
    blobs_lost: int = 0
    kept: dict[str, str] = field(default_factory=dict)  # name -> why, of packs left alone
    #: name -> the target holding an intact copy after all, in the pack's folder (or moved
    #: into it: ``moved``), of packs thought lost
    found: dict[str, str] = field(default_factory=dict)
    moved: list[MovedPack] = field(default_factory=list)  # (planned, with dry_run)
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
        outcome = (_reread_copies(repo, name, held, progress, dry_run=dry_run)
                   or _reread_copies_away(repo, name, held, misplaced.get(name, []),
                                          dry_run=dry_run, before_write=before_write)
                   or _why_tree_pack_stays(repo, name))
        if _sorted_out(result, name, outcome):
            lost[id_from_name(name)] = name
    if not lost:
        return result
    # what remains outside the packs' folders is damaged (else they would be kept)
    away = {name: misplaced[name] for name in lost.values() if name in misplaced}
    blobs = sum(end - first for pack_id, first, end in repo.index.packs() if pack_id in lost)
    unread = repack(repo, set(lost), progress, salvage=True, dry_run=dry_run,
                    elsewhere=partial(_blob_away, repo, away))
    result.dropped = sorted(lost.values())
    result.blobs_salvaged = blobs - len(unread)
    if dry_run:
        index = result.index_after = _index_after(repo.index, set(lost), unread)
    else:
        before_write()
        for name in result.dropped:
            _delete_damaged_copies(repo, name, copies[name], away.get(name, []))
        rewrite_index(repo, set(lost), progress)
        index = repo.index
    for name, copies_away in sorted(away.items()):
        for url, copy, _ in copies_away:
            log.warning("%s: %s, a damaged copy of %s outside its folder: %s", url, copy,
                        name, "would delete it" if dry_run else "deleted it")
    # a blob another pack holds too is not lost
    result.blobs_lost = len({e.blob_id for e in unread if e.blob_id not in index})
    return result


def find_intact(repo: Repository, copies: Copies, progress: PhaseProgress, *, dry_run: bool
                ) -> LostPacks:
    """Only step 1, for the copies in the packs' folders (a plain ``repair``, which writes no
    index and moves nothing): the packs of ``copies`` found intact after all (damage an earlier
    read recorded, not there now: its record dropped, unless ``dry_run``), and why those left
    alone are (a copy that could not be read). Nothing is dropped."""
    result = LostPacks()
    progress.phase("re-read lost packs", sum(len(held) for held in copies.values()))
    for name, held in sorted(copies.items()):
        _sorted_out(result, name, _reread_copies(repo, name, held, progress, dry_run=dry_run))
    return result


def _sorted_out(result: LostPacks, name: str, outcome: str | _Found | None) -> bool:
    """Note in ``result`` what re-reading the pack ``name`` found; whether it is lost."""
    if isinstance(outcome, _Found):
        result.found[name] = outcome.url
        result.moved += [outcome.moved] if outcome.moved else []
    elif outcome is not None:
        result.kept[name] = outcome
    return outcome is None


def _blob_away(repo: Repository, away: Misplaced, entry: IndexEntry) -> bytes | None:
    """``entry``'s blob as stored, from a damaged copy of its pack outside the pack's folder
    that holds it intact (it authenticates), or None."""
    for url, copy, _ in away.get(pack_name(entry.pack_id), []):
        storage = repo.targets.target(url).storage
        try:
            sealed = storage.read(copy, entry.offset, entry.length)
            repo.open_blob(entry, sealed)
        except (IntegrityError, ObjectNotFound):
            continue
        return sealed
    return None


def _delete_damaged_copies(repo: Repository, name: str, held: dict[str, int],
                           away: list[MisplacedCopy]) -> None:
    """Delete the copies of the lost pack ``name``: those in its folder on the targets of
    ``held``, and those outside it (``away``). A failure raises: the new index must not be
    written while a copy is left."""
    if held:
        repo.targets.delete(name)
    for url in held:
        repo.targets.forget_damage(url, name)
    for url, copy, _ in away:
        count_mutation()
        with contextlib.suppress(ObjectNotFound):
            repo.targets.target(url).storage.delete(copy)


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


@dataclass(frozen=True, slots=True)
class _Found:
    """An intact copy of a pack thought lost, on ``url``: in its folder after all, or ``moved``
    into it."""

    url: str
    moved: MovedPack | None = None


def _reread_copies(repo: Repository, name: str, held: dict[str, int], progress: PhaseProgress,
                   *, dry_run: bool) -> str | _Found | None:
    """Read the copies of the pack ``name`` in its folder again: None if none hashes to its
    name; _Found if one does (its damage record dropped, unless ``dry_run``); else why the
    pack is left alone (a copy could not be read)."""
    for url, size in sorted(held.items()):
        try:
            intact = _intact(repo, url, name, name, size)
        except StorageError as exc:
            return (f"its copy on {url} could not be read again ({exc}): repair again once it "
                    "can be (fix access to it)")
        finally:
            progress.advance()
        if intact:
            if not dry_run:  # the CLI keeps the records: a dry run changes nothing
                repo.targets.forget_damage(url, name)
            return _Found(url)
    return None


def _reread_copies_away(repo: Repository, name: str, held: dict[str, int],
                        copies: list[MisplacedCopy], *, dry_run: bool,
                        before_write: Callable[[], None]) -> str | _Found | None:
    """Read the copies of the pack ``name`` outside its folder again: None if every one (if
    any) is damaged; _Found if one is intact, and was moved into the pack's folder (would be,
    with ``dry_run``); else why the pack is left alone (one cannot be read, or moved)."""
    for url, copy, size in copies:
        try:
            intact = _intact(repo, url, name, copy, size)
        except StorageError as exc:
            return (f"its copy {copy} on {url} could not be read again ({exc}): repair again "
                    "once it can be (fix access to it)")
        if not intact:  # salvaged from and deleted with the others
            continue
        if not dry_run:
            storage = repo.targets.target(url).storage
            problem = move_home(repo, storage, copy, id_from_name(name), url in held,
                                before_write)
            if problem is not None:
                return f"its intact copy {copy} on {url} could not be moved home: {problem}"
            repo.targets.forget_damage(url, name)
        return _Found(url, MovedPack(url, copy, name))
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
