"""``prune``: delete data no snapshot uses, under the exclusive lock, safe at every instant.

Phases (docs/design.md, "Prune"):

1. **Mark** every blob the snapshots use (one byte per indexed blob; each tree once). If any
   snapshot references data missing from the index, stop before deleting anything.
2. **Plan** per pack: keep it, delete it (no used blob), or repack it (its unused share exceeds
   ``max_unused``, within ``max_repack_bytes``).
3. **Repack**: copy the used blobs of those packs, still sealed, into new packs, which the
   PackWriter uploads and indexes like a backup does.
4. **New index**: write index files for every kept and new pack; the *last* one carries the
   ``supersedes`` list of every older index file, so a reader sees either the old index or the
   complete new one, never a partial one.
5. **Delete** the superseded index files, then the deleted and repacked packs, then packs no
   index lists (left by crashed backups or an interrupted prune).

Packs no index lists count in what prune deletes and frees, and in the bytes before, as in
restic: a killed backup's packs are real bytes on the targets. Prune itself deletes every one,
since it holds the exclusive lock: no backup is running, and a backup lists its packs in an
index file before it lets its lock go. A dry run holds a shared lock, so a running backup's
packs may be unlisted only because its index file is not written yet; it counts them only while
no other process holds a live lock (and leaves out the packs of index files written meanwhile),
the state in which the prune itself could run, and else says how many it left out.

Killed at any point, the repository stays readable: nothing an index on the targets still
refers to is deleted before a complete replacement index is in place. A rerun finishes the job
(step 5 cleans what an earlier run left).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from itertools import compress

from fogvault.errors import FogVaultError
from fogvault.maintenance.index_rewrite import rewrite_index
from fogvault.maintenance.inventory import Listing, LivePacks, UnlistedData, unlisted_data
from fogvault.maintenance.mark import mark_used
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.repack import repack
from fogvault.repo.format import DATA_DIR, INDEX_DIR, pack_name
from fogvault.repo.lock import NoLock, RepositoryLock
from fogvault.repo.pack import pack_overhead
from fogvault.repo.repository import Repository, id_from_name_or_none
from fogvault.sizes import counted, format_size

log = logging.getLogger("fogvault")

#: Leftovers of interrupted writes (temporaries, unfinished multipart uploads) older than this
#: are removed; younger ones may belong to a writer still running (a --no-lock backup, or a
#: repair that will continue its upload). docs/targets.md, section 2.1.
LEFTOVER_AGE_S = 24 * 3600


@dataclass(slots=True)
class PruneOptions:
    max_unused: float = 0.05  # repack packs with more than this share of unused bytes
    max_repack_bytes: int | None = None  # stop planning repacks beyond this many bytes
    dry_run: bool = False
    retry_lock: float = 0.0  # seconds to wait for other processes' locks


@dataclass(slots=True)
class PruneResult:
    snapshots: int = 0
    blobs_total: int = 0
    blobs_used: int = 0
    packs_total: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_orphaned: int = 0  # packs no index listed (crashed backups, interrupted prunes)
    bytes_orphaned: int = 0  # their size (one copy of each), part of bytes_freed
    leftovers_removed: int = 0  # temporaries and unfinished uploads of interrupted writes
    bytes_before: int = 0  # indexed packs and packs no index lists (one copy of each)
    bytes_freed: int = 0  # measured after a run; planned (an estimate) in a dry run
    bytes_repacked: int = 0
    index_files_written: int = 0
    index_files_deleted: int = 0
    duration_s: float = 0.0
    dry_run: bool = False


@dataclass(slots=True)
class _PackUse:
    """Per-pack totals: no per-blob objects, so memory grows with packs, not blobs."""

    blobs: int = 0
    blob_bytes: int = 0
    used_blobs: int = 0
    used_bytes: int = 0

    @property
    def size(self) -> int:
        return self.blob_bytes + pack_overhead(self.blobs)


def prune(
    repo: Repository, options: PruneOptions | None = None, progress: PhaseProgress | None = None
) -> PruneResult:
    options = options or PruneOptions()
    progress = progress or PhaseProgress()
    started = time.monotonic()
    # A dry run deletes nothing: a shared lock is enough and does not stop running backups.
    lock = repo.lock(exclusive=not options.dry_run, retry_for=options.retry_lock,
                     writes=not options.dry_run)
    with lock:
        repo.load_index()
        # Several targets: one that lacks a live index file is left as it is, like one that
        # cannot be reached (docs/targets.md, "Prune"): new index files must not reach a target
        # without the packs they list. 'repair', then 'prune' again, makes it consistent.
        repo.mark_behind_targets(skip_writes=True)
        try:
            result = _prune_marked(repo, lock, options, progress)
        finally:
            repo.targets.resume_writes()  # for the session's later operations (a forget)
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _prune_marked(repo: Repository, lock: RepositoryLock | NoLock, options: PruneOptions,
                  progress: PhaseProgress) -> PruneResult:
    """Prune once the targets that lack an index file are marked to be left alone."""
    result = PruneResult(dry_run=options.dry_run)
    used, packs = _mark_and_count(repo, progress, result)
    dropped, repack_ids = _plan(packs, options, result)
    del packs  # a few hundred bytes per pack, not needed past the plan
    if options.dry_run:
        unlisted = _left_to_prune(repo, lock, _unlisted(repo))
        result.packs_orphaned, result.bytes_orphaned = len(unlisted), sum(unlisted.values())
        result.bytes_freed += result.bytes_orphaned
    else:
        repack(repo, repack_ids, progress, keep=used.__getitem__)
        del used
        lock.ensure_fresh()
        rewritten = rewrite_index(repo, dropped | repack_ids, progress)
        result.index_files_written = rewritten.files_written
        result.index_files_deleted = rewritten.files_deleted
        # Under the exclusive lock, the orphans it finds now are those there were before.
        _delete_unindexed_packs(repo, dropped | repack_ids, progress, result)
        result.leftovers_removed = repo.targets.remove_incomplete(LEFTOVER_AGE_S)
        result.bytes_freed = (result.bytes_before - _stored_bytes(repo)
                              + result.bytes_orphaned)
    result.bytes_before += result.bytes_orphaned
    return result


def _unlisted(repo: Repository) -> dict[str, int]:
    """name -> size (the largest copy) of the objects named as packs that no index lists, on
    the targets prune deletes from; a warning for each object under ``data/`` that prune
    leaves (:class:`~fogvault.maintenance.inventory.UnlistedData`)."""
    index = repo.index
    collect = partial(Listing.of, LivePacks(index))
    found: dict[str, int] = {}
    for listing in repo.targets.list_each(DATA_DIR, collect).values():
        sorted_out = unlisted_data(listing, index)
        for name, size in sorted_out.packs.items():
            found[name] = max(size, found.get(name, 0))
        _warn_of_what_stays(sorted_out)
    return found


def _warn_of_what_stays(found: UnlistedData) -> None:
    for name in found.foreign:
        log.warning("ignoring unexpected object %s (not a pack: prune leaves it)", name)
    for name in found.misplaced:
        pack_id = bytes.fromhex(name.rsplit("/", 1)[-1])
        log.warning("leaving %s: a copy of a pack outside its folder (move it to %s if that "
                    "is missing there, else delete it)", name, pack_name(pack_id))


def _left_to_prune(repo: Repository, lock: RepositoryLock | NoLock, unlisted: dict[str, int]
                   ) -> dict[str, int]:
    """The packs of ``unlisted`` that a prune would find unlisted: a dry run holds a shared
    lock, so a backup may be running, whose packs are unlisted until its index file is
    written. Prune runs only once no other process holds a live lock, and a backup writes its
    index files before it lets its lock go. So: the locks are listed after the packs; packs
    that index files written meanwhile list are left out; and while another process holds a
    live lock, none is counted (a warning says how many were left out)."""
    own = lock.info.lock_id if isinstance(lock, RepositoryLock) else None
    others = [other for other in repo.lock_store().all()
              if other.lock_id != own and not other.is_stale()]
    loaded = repo.index_ids()
    for name in repo.targets.list(INDEX_DIR):
        index_id = id_from_name_or_none(name)
        if index_id is None or index_id in loaded or not unlisted:
            continue
        try:
            listed = {pack_name(pack_id) for pack_id in repo.index_file_packs(name)}
        except FogVaultError:  # unreadable: what it lists looks unlisted to prune too
            continue
        unlisted = {n: size for n, size in unlisted.items() if n not in listed}
    if others and unlisted:
        log.warning(
            "%s no index lists (%s) not counted: %s, which may still list them in an index "
            "file; prune deletes those that are still unlisted when it runs",
            counted(len(unlisted), "pack"), format_size(sum(unlisted.values())),
            "; ".join(other.describe() for other in others))
        return {}
    return unlisted


def _mark_and_count(
    repo: Repository, progress: PhaseProgress, result: PruneResult
) -> tuple[bytearray, dict[bytes, _PackUse]]:
    try:
        snapshots = repo.snapshots(skip_unreadable=False)
    except FogVaultError as exc:  # its data would look unused, and be deleted
        raise FogVaultError(
            f"prune stopped before deleting anything: {exc} (run 'fogvault check' and "
            "'fogvault repair'; if it is lost on every target, 'fogvault forget' it first)"
        ) from exc
    marked = mark_used(repo, snapshots, progress, every_snapshot=False)  # stops at one
    if marked.problems:
        raise FogVaultError(
            f"prune stopped before deleting anything: {marked.problems[0]} "
            f"({len(marked.problems)} problems; run 'fogvault check')"
        )
    progress.phase("count", len(repo.index))
    packs = _pack_totals(repo, marked.used)
    result.snapshots = len(snapshots)
    result.blobs_total = len(repo.index)
    result.blobs_used = sum(marked.used)
    result.packs_total = len(packs)
    result.bytes_before = sum(p.size for p in packs.values())
    return marked.used, packs


def _pack_totals(repo: Repository, used: bytearray | None = None) -> dict[bytes, _PackUse]:
    """Per-pack blob counts and bytes from the index; with ``used``, also the used share.
    Reads the lengths straight from the index's records: no object per blob."""
    index = repo.index
    packs: dict[bytes, _PackUse] = {}
    for pack_id, first, end in index.packs():
        lengths = [length for _, length in index.spans(first, end)]
        use = packs[pack_id] = _PackUse(end - first, sum(lengths))
        if used is not None:
            flags = used[first:end]
            use.used_blobs = flags.count(1)
            use.used_bytes = sum(compress(lengths, flags))
    return packs


def _stored_bytes(repo: Repository) -> int:
    """The size of every indexed pack, from the index (no listing)."""
    return sum(use.size for use in _pack_totals(repo).values())


def _plan(
    packs: dict[bytes, _PackUse], options: PruneOptions, result: PruneResult
) -> tuple[set[bytes], set[bytes]]:
    """(packs to delete outright, packs to repack)."""
    delete: set[bytes] = set()
    repack: set[bytes] = set()
    budget = options.max_repack_bytes
    # Emptiest packs first: repacking them frees the most per byte copied.
    for pack_id, use in sorted(packs.items(), key=lambda kv: kv[1].used_bytes / kv[1].size):
        size = use.size
        if not use.used_blobs:
            delete.add(pack_id)
            result.bytes_freed += size
        elif (use.blob_bytes - use.used_bytes) / use.blob_bytes > options.max_unused and (
            budget is None or use.used_bytes <= budget
        ):
            repack.add(pack_id)
            result.bytes_repacked += use.used_bytes
            result.bytes_freed += size - use.used_bytes
            if budget is not None:
                budget -= use.used_bytes
    result.packs_deleted, result.packs_repacked = len(delete), len(repack)
    return delete, repack


def _delete_unindexed_packs(
    repo: Repository, planned: set[bytes], progress: PhaseProgress, result: PruneResult
) -> None:
    """Delete every object named as a pack that the new index does not list: the planned
    packs, and orphans (in their own folder or another). The listings keep the indexed packs
    as a byte each, not a name (maintenance/inventory.py)."""
    doomed = _unlisted(repo)
    planned_names = {pack_name(pack_id) for pack_id in planned}
    orphans = {name: size for name, size in doomed.items() if name not in planned_names}
    result.packs_orphaned, result.bytes_orphaned = len(orphans), sum(orphans.values())
    progress.phase("delete packs", len(doomed))
    for name in sorted(doomed):
        repo.targets.delete(name)
        progress.advance()
