"""Index packs that no index file lists, from their own headers (``repair --index``; restic's
``repair index``).

A pack no index lists is either an interrupted backup's (its blobs are used by no snapshot) or
one whose index file was lost on every target (its blobs may be what a snapshot misses). Each
such pack is read in full from a target that holds it and verified with the key
(:func:`fogvault.repo.pack.verify_pack`: its hash, its header, every blob); the packs that
verify are listed in new index files. Listing an interrupted backup's pack is harmless: prune
removes it later if nothing uses it, and a blob also listed elsewhere is found once.

A pack outside its own folder (``data/zz/<id>`` for ``data/<id[0:2]>/<id>``: moved by hand or
by a tool; docs/format.md, section 4) is one too: readers find a pack by its id, so it is moved
into its folder on the target that holds it (its bytes read again and checked against the id,
written create-only, or over a damaged copy there, read back, then the copy outside deleted, as
``repair`` writes a copy), and listed. Its name is its only claim to be that pack: a copy whose
bytes do not hash to the id its name gives is refused (reported, left where it is, and so
deleted by ``prune`` as a pack no index lists), as a copy in its own folder is.

Ordering (docs/format.md, "Ordering rules"): a new index file goes only to the targets that hold
every pack it lists, so packs are grouped by the set of targets holding them; the rest of
``repair`` then copies packs and index files to the other targets as usual.

The caller holds the exclusive lock: a running backup's packs are unlisted until its index
file is written, and must be left to it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from fogvault.errors import FogVaultError
from fogvault.maintenance.inventory import Inventory, take_inventory, unlisted_data
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.verify import damaged_index_files
from fogvault.parallel import ordered_map
from fogvault.repo.format import INDEX_DIR, id_from_name, pack_id_from_name, pack_name
from fogvault.repo.index import INDEX_FILE_BLOBS, BlobIndex, IndexFile
from fogvault.repo.pack import PackEntry
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot
from fogvault.storage import ObjectExists, Storage, StorageError
from fogvault.targets.replicated import count_mutation

log = logging.getLogger("fogvault")

#: url -> the (name, size) of each copy of one pack that the target holds, its own name first
Copies = dict[str, list[tuple[str, int]]]


@dataclass(slots=True)
class MovedPack:
    """A pack found outside its own folder on a target and moved into it."""

    url: str
    name: str  # where it was
    to: str  # its own name


@dataclass(slots=True)
class ReindexResult:
    indexed: list[str] = field(default_factory=list)  # pack names listed anew
    unreadable: list[str] = field(default_factory=list)  # "name: why", on every holder
    left_out: list[str] = field(default_factory=list)  # packs a prune or forget meant to delete
    moved: list[MovedPack] = field(default_factory=list)  # (planned, with dry_run)


@dataclass(slots=True)
class _Verified:
    """What reading one unlisted pack's copies found."""

    pack_id: bytes
    entries: list[PackEntry] | None = None  # None: no copy verifies
    good: list[tuple[str, str]] = field(default_factory=list)  # (url, name of a copy there)
    problems: dict[str, str] = field(default_factory=dict)  # url -> why no copy there is good
    damaged: set[str] = field(default_factory=set)  # urls whose copy in its folder is bad


def index_unlisted_packs(repo: Repository, *, dry_run: bool = False,
                         progress: PhaseProgress | None = None,
                         before_write: Callable[[], None] = lambda: None,
                         workers: int = 4) -> ReindexResult:
    """List every verified pack no index lists in new index files (only planned with
    ``dry_run``), and in the loaded index. ``before_write`` runs before each index file is
    written (the lock's ``ensure_fresh``: reading the packs may take hours). ``workers`` packs
    are verified at once (reads are latency-bound on S3 and SFTP), each read in pieces."""
    progress = progress or PhaseProgress()
    result = ReindexResult()
    unlisted, left_out = _unlisted_packs(repo)
    result.left_out = sorted(map(pack_name, left_out))
    progress.phase("index unlisted packs", len(unlisted))
    pending: dict[tuple[str, ...], IndexFile] = defaultdict(IndexFile)  # by holding targets
    blobs: dict[tuple[str, ...], int] = defaultdict(int)
    verified = ordered_map(partial(_verified_copies, repo), sorted(unlisted.items()),
                           workers=workers)  # fmt: skip
    for found in verified:
        progress.advance()
        name = pack_name(found.pack_id)
        holding = []
        for url, copy in found.good:
            if copy == name or _moved_home(repo, url, copy, found, result, dry_run=dry_run,
                                           before_write=before_write):
                holding.append(url)
        if found.entries is None or not holding:
            why = "; ".join(f"{url}: {problem}" for url, problem in found.problems.items())
            result.unreadable.append(f"{name}: {why}")
            continue
        for url in found.damaged - set(holding):  # not a holder; repair replaces it
            repo.targets.remember_damage(url, name)
        result.indexed.append(name)
        holders = tuple(holding)
        pending[holders].packs[found.pack_id] = found.entries
        blobs[holders] += len(found.entries)
        if blobs[holders] >= INDEX_FILE_BLOBS:  # files end between packs, as prune's do
            _save(repo, holders, pending.pop(holders), dry_run, before_write)
            del blobs[holders]
    for holders, index_file in pending.items():
        _save(repo, holders, index_file, dry_run, before_write)
    return result


def _verified_copies(repo: Repository, unlisted: tuple[bytes, Copies]) -> _Verified:
    """Read the pack's copies: on each target the first that verifies (the first of all in
    full, the others by their hash), its own-named copy first."""
    found = _Verified(unlisted[0])
    name = pack_name(found.pack_id)
    for url, copies in sorted(unlisted[1].items()):
        storage = repo.targets.target(url).storage
        problems = []
        for copy, size in copies:
            try:
                entries = repo.check_pack(found.pack_id, size, partial(storage.read, copy),
                                          full=found.entries is None)
            except FogVaultError as exc:
                if copy == name:
                    problems.append(str(exc))
                    found.damaged.add(url)
                else:
                    problems.append(f"{copy} (outside its folder): {exc}")
                continue
            found.entries = entries if found.entries is None else found.entries
            found.good.append((url, copy))
            break
        else:
            found.problems[url] = "; ".join(problems)
    return found


def _moved_home(repo: Repository, url: str, copy: str, found: _Verified,
                result: ReindexResult, *, dry_run: bool, before_write: Callable[[], None]
                ) -> bool:
    """Move ``copy``, a verified copy of ``found``'s pack outside its folder on ``url``, to the
    pack's own name there (see the module's docstring); whether it is there now (or would be:
    ``dry_run``). A failure is recorded in ``found.problems``."""
    name = pack_name(found.pack_id)
    storage = repo.targets.target(url).storage
    problem = None if dry_run else move_home(repo, storage, copy, found.pack_id,
                                             url in found.damaged, before_write)
    if problem is not None:
        found.problems[url] = f"{copy} (outside its folder) could not be moved: {problem}"
        return False
    if not dry_run:
        repo.targets.forget_damage(url, name)
    result.moved.append(MovedPack(url, copy, name))
    log.warning("%s: %s is outside its folder: %s to %s", url, copy,
                "would move it" if dry_run else "moved it", name)
    return True


def move_home(repo: Repository, storage: Storage, copy: str, pack_id: bytes, replace: bool,
              before_write: Callable[[], None]) -> str | None:
    """Write the bytes of ``copy`` (read again: checked against the id) to the pack's own name,
    read them back, then delete ``copy``; None if the pack is in its place (a copy that cannot
    be deleted is left, with a warning: check notes it as a copy outside its folder)."""
    name = pack_name(pack_id)
    try:
        data = storage.read(copy)
        repo.check_pack_bytes(pack_id, data, full=False)
    except FogVaultError as exc:
        return str(exc)
    before_write()
    problem = write_verified(storage, name, data, replace=replace)
    if problem is not None:
        return problem
    try:
        count_mutation()
        storage.delete(copy)
    except StorageError as exc:
        log.warning("%s was copied to %s but could not be deleted: %s", copy, name, exc)
    return None


def write_verified(storage: Storage, name: str, data: bytes, *, replace: bool) -> str | None:
    """Write ``data`` as ``name`` (create-only unless ``replace``: a damaged copy is there) and
    read it back; None if it is there, byte for byte, else the problem."""
    try:
        try:
            count_mutation()
            storage.write(name, data, overwrite=replace)
        except ObjectExists:  # appeared meanwhile (a backup): keep it only if it is ours
            if storage.read(name) != data:
                count_mutation()
                storage.write(name, data, overwrite=True)
        if storage.read(name) != data:
            return "the copy read back differs"
    except StorageError as exc:
        return str(exc)
    return None


def _save(repo: Repository, holders: tuple[str, ...], index_file: IndexFile, dry_run: bool,
          before_write: Callable[[], None]) -> None:
    """Write ``index_file`` to the targets holding all its packs, and load it."""
    if dry_run:
        return
    before_write()
    repo.save_index(index_file, only=[repo.targets.target(url) for url in holders])
    for pack_id, entries in index_file.packs.items():  # as a backup's pack writer does
        repo.index.add_pack(pack_id, entries)


def _unlisted_packs(repo: Repository) -> tuple[dict[bytes, Copies], set[bytes]]:
    """pack id -> the copies the targets hold, for packs no index lists, in their folders or
    not; and the packs left out of that because a prune or forget meant to delete them (see
    :func:`packs_meant_to_go`)."""
    inventory = take_inventory(repo)
    holders: dict[bytes, Copies] = defaultdict(dict)
    for url, listing in inventory.listings.items():
        for name, size in unlisted_data(listing, repo.index).packs.items():
            holders[id_from_name(name)].setdefault(url, []).append((name, size))
    for pack_id, copies in holders.items():
        own = pack_name(pack_id)
        for found in copies.values():
            found.sort(key=lambda copy: (copy[0] != own, copy[0]))
    left_out = packs_meant_to_go(repo, inventory) & holders.keys()
    for pack_id in left_out:
        del holders[pack_id]
    return holders, left_out


def unindexed_data_may_be_found(repo: Repository, inventory: Inventory) -> bool:
    """Whether data the index lacks may still be on a target: a pack no index lists that no
    prune meant to delete, or an index file damaged on every target. Then a snapshot whose data
    is not indexed is not taken for one forgotten while a target was away ('forget' and
    'prune' would destroy what 'repair --index' can list again)."""
    if damaged_index_files(repo, inventory):
        return True
    meant = packs_meant_to_go(repo, inventory)
    return any(id_from_name(name) not in meant
               for listing in inventory.listings.values()
               for name in unlisted_data(listing, repo.index).packs)


def looks_forgotten(index: BlobIndex, snapshot: Snapshot, pruned: set[bytes]) -> bool:
    """Whether ``snapshot``, which only some targets hold and whose data ``index`` lacks, was
    most likely forgotten, and its data pruned, while the other targets were away: a prune
    ran that a target missed (``pruned``: :func:`packs_meant_to_go`), and the snapshot's root
    tree is gone from the index (a prune drops a forgotten snapshot's root: one that another
    snapshot keeps keeps all it names). Data lost on every target, which ``repair --index``
    takes out of the index, leaves no such prune and, unless a tree pack was lost, the root."""
    return bool(pruned) and snapshot.tree not in index


def packs_meant_to_go(repo: Repository, inventory: Inventory) -> set[bytes]:
    """Packs that a prune replaced the index files of (those files are still on a target that
    was away, or that the prune was killed before deleting them from), and packs whose deletion
    a target missed (the ledger). Listing them again would bring back what was pruned."""
    packs = {pack_id for _, name in repo.targets.missed_deletes
             if (pack_id := pack_id_from_name(name)) is not None}
    superseded = {name for url in inventory.listings for name in inventory.extra(url)
                  if name.startswith(INDEX_DIR)}
    for name in sorted(superseded):
        try:
            packs.update(repo.index_file_packs(name))
        except FogVaultError:  # damaged everywhere: it names nothing that can be trusted
            continue
    return packs
