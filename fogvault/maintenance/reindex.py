"""Index packs that no index file lists, from their own headers (``repair --index``; restic's
``repair index``).

A pack no index lists is either an interrupted backup's (its blobs are used by no snapshot) or
one whose index file was lost on every target (its blobs may be what a snapshot misses). Each
such pack is read in full from a target that holds it and verified with the key
(:func:`fogvault.repo.pack.verify_pack`: its hash, its header, every blob); the packs that
verify are listed in new index files. Listing an interrupted backup's pack is harmless: prune
removes it later if nothing uses it, and a blob also listed elsewhere is found once.

Ordering (docs/format.md, "Ordering rules"): a new index file goes only to the targets that hold
every pack it lists, so packs are grouped by the set of targets holding them; the rest of
``repair`` then copies packs and index files to the other targets as usual.

The caller holds the exclusive lock: a running backup's packs are unlisted until its index
file is written, and must be left to it.
"""

from __future__ import annotations

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
from fogvault.repo.index import INDEX_FILE_BLOBS, IndexFile
from fogvault.repo.pack import PackEntry
from fogvault.repo.repository import Repository


@dataclass(slots=True)
class ReindexResult:
    indexed: list[str] = field(default_factory=list)  # pack names listed anew
    unreadable: list[str] = field(default_factory=list)  # "name: why", on every holder
    left_out: list[str] = field(default_factory=list)  # packs a prune or forget meant to delete


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
    for pack_id, entries, holders, problems in verified:
        progress.advance()
        if entries is None:
            why = "; ".join(f"{url}: {problem}" for url, problem in problems.items())
            result.unreadable.append(f"{pack_name(pack_id)}: {why}")
            continue
        for url in problems:  # not a holder; repair replaces it
            repo.targets.remember_damage(url, pack_name(pack_id))
        result.indexed.append(pack_name(pack_id))
        pending[holders].packs[pack_id] = entries
        blobs[holders] += len(entries)
        if blobs[holders] >= INDEX_FILE_BLOBS:  # files end between packs, as prune's do
            _save(repo, holders, pending.pop(holders), dry_run, before_write)
            del blobs[holders]
    for holders, index_file in pending.items():
        _save(repo, holders, index_file, dry_run, before_write)
    return result


def _verified_copies(repo: Repository, unlisted: tuple[bytes, dict[str, int]]
                     ) -> tuple[bytes, list[PackEntry] | None, tuple[str, ...], dict[str, str]]:
    """The pack's id, its entries (None if no copy verifies), the targets whose copy verifies
    (the first in full, the others by their hash) and url -> problem for the others."""
    pack_id, sizes = unlisted
    name = pack_name(pack_id)
    entries, good, problems = None, [], {}
    for url, size in sorted(sizes.items()):
        read = partial(repo.targets.target(url).storage.read, name)
        try:
            found = repo.check_pack(pack_id, size, read, full=entries is None)
        except FogVaultError as exc:
            problems[url] = str(exc)
            continue
        entries = found if entries is None else entries
        good.append(url)
    return pack_id, entries, tuple(good), problems


def _save(repo: Repository, holders: tuple[str, ...], index_file: IndexFile, dry_run: bool,
          before_write: Callable[[], None]) -> None:
    """Write ``index_file`` to the targets holding all its packs, and load it."""
    if dry_run:
        return
    before_write()
    repo.save_index(index_file, only=[repo.targets.target(url) for url in holders])
    for pack_id, entries in index_file.packs.items():  # as a backup's pack writer does
        repo.index.add_pack(pack_id, entries)


def _unlisted_packs(repo: Repository) -> tuple[dict[bytes, dict[str, int]], set[bytes]]:
    """pack id -> {url: size} of the targets holding it, for packs no index lists; and the
    packs left out of that because a prune or forget meant to delete them (see
    :func:`packs_meant_to_go`)."""
    inventory = take_inventory(repo)
    holders: dict[bytes, dict[str, int]] = defaultdict(dict)
    for url, listing in inventory.listings.items():
        for name in inventory.extra(url):
            pack_id = pack_id_from_name(name)
            if pack_id is not None:
                holders[pack_id][url] = listing[name]
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
