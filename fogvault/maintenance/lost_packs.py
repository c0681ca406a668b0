"""Packs no target holds intact, taken out of the index (``repair --index``; restic's
``repair index`` does it for packs that are gone, ``repair packs`` for damaged ones).

A pack that every target lacks, or holds only in copies whose bytes do not hash to its name,
cannot be copied back. As long as the index lists it, its blobs count as stored: a backup of the
very files it held deduplicates against them and stores nothing, and every snapshot that uses
them stays broken. So, under the exclusive lock, once every target is reachable and holds every
other pack (the caller checks that: the new index goes to every target):

1. **Re-read** each copy and hash it. A copy that matches the pack's name after all (damage an
   earlier read recorded, that is not there now) means the pack is not lost: its damage record
   is dropped, the next ``repair`` copies it, and the pack is left alone. A copy that cannot be
   read for another reason (a target that stops answering) leaves the pack alone too.
2. **Salvage**: the blobs of the damaged copies that still authenticate, each taken from any
   copy, are copied into new packs (:func:`~fogvault.maintenance.repack.repack`).
3. **Index**: a new index without the lost packs replaces the old one
   (:func:`~fogvault.maintenance.index_rewrite.rewrite_index`).
4. **Delete** the damaged copies: nothing in them authenticates any more, and ``repair --index``
   would otherwise try to list them again, and fail, on every run.

Killed at any step, nothing is lost: until step 3's last file is written the old index holds,
and the copies are deleted only after it. The blobs that no copy held intact are then unknown to
the repository: the next backup of the same files stores them again (a file whose chunks are
not all indexed is read again), which makes every snapshot that used them whole again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from fogvault.errors import IntegrityError
from fogvault.maintenance.index_rewrite import rewrite_index
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.repack import repack
from fogvault.repo.format import id_from_name
from fogvault.repo.repository import Repository
from fogvault.storage import ObjectNotFound, StorageError

#: pack name -> {url: listed size} of each copy the targets hold (none: missing everywhere)
Copies = dict[str, dict[str, int]]


@dataclass(slots=True)
class LostPacks:
    dropped: list[str] = field(default_factory=list)  # packs taken out of the index
    blobs_salvaged: int = 0  # their blobs found intact in some copy, stored in new packs
    #: their blobs that no copy holds intact and no other pack holds: the snapshots that use
    #: them lack them until a backup stores them again
    blobs_lost: int = 0
    kept: dict[str, str] = field(default_factory=dict)  # name -> why, of packs left alone


def drop_lost_packs(repo: Repository, copies: Copies, progress: PhaseProgress, *,
                    dry_run: bool, before_write: Callable[[], None]) -> LostPacks:
    """Take the packs of ``copies`` (each held intact by no target, as a repair found) out of
    the index, keeping what can still be read of them (the module's steps); ``before_write``
    raises if the lock can no longer be trusted. A dry run reads, to count, and writes
    nothing."""
    result = LostPacks()
    progress.phase("re-read lost packs", sum(len(held) for held in copies.values()))
    lost = {}
    for name, held in sorted(copies.items()):
        why_kept = _why_not_lost(repo, name, held, progress)
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
        result.blobs_lost = len(unread)
        return result
    before_write()
    rewrite_index(repo, set(lost), progress)
    result.blobs_lost = sum(1 for entry in unread if entry.blob_id not in repo.index)
    for name in result.dropped:
        if copies[name]:
            repo.targets.delete(name)
        for url in copies[name]:
            repo.targets.forget_damage(url, name)
    return result


def _why_not_lost(repo: Repository, name: str, held: dict[str, int], progress: PhaseProgress
                  ) -> str | None:
    """None if no copy of the pack ``name`` hashes to its name; else why it is left alone."""
    for url, size in sorted(held.items()):
        storage = repo.targets.target(url).storage
        try:
            repo.check_pack(id_from_name(name), size, partial(storage.read, name), full=False)
        except (IntegrityError, ObjectNotFound):
            continue  # damaged, or gone since it was listed
        except StorageError as exc:
            return f"its copy on {url} could not be read again ({exc})"
        finally:
            progress.advance()
        repo.targets.forget_damage(url, name)
        return f"its copy on {url} is intact after all: repair again to copy it"
    return None
