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
from dataclasses import dataclass, field
from functools import partial

from fogvault.errors import FogVaultError
from fogvault.maintenance.inventory import take_inventory
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.prune import INDEX_FILE_BLOBS
from fogvault.repo.format import id_from_name, pack_name
from fogvault.repo.index import IndexFile
from fogvault.repo.repository import Repository


@dataclass(slots=True)
class ReindexResult:
    indexed: list[str] = field(default_factory=list)  # pack names listed anew
    unreadable: list[str] = field(default_factory=list)  # "name: why", on every holder
    index_files: int = 0


def index_unlisted_packs(repo: Repository, *, dry_run: bool = False,
                         progress: PhaseProgress | None = None) -> ReindexResult:
    """List every verified pack no index lists in new index files (only planned with
    ``dry_run``), and in the loaded index."""
    progress = progress or PhaseProgress()
    result = ReindexResult()
    unlisted = _unlisted_packs(repo)
    progress.phase("index unlisted packs", len(unlisted))
    pending: dict[tuple[str, ...], IndexFile] = defaultdict(IndexFile)  # by holding targets
    blobs: dict[tuple[str, ...], int] = defaultdict(int)
    for pack_id, sizes in sorted(unlisted.items()):
        name = pack_name(pack_id)
        entries, problems = None, {}
        for url, size in sorted(sizes.items()):
            storage = repo.targets.target(url).storage
            try:
                entries = repo.check_pack(pack_id, size, partial(storage.read, name))
                break
            except FogVaultError as exc:
                problems[url] = str(exc)
        progress.advance()
        if entries is None:
            why = "; ".join(f"{url}: {problem}" for url, problem in problems.items())
            result.unreadable.append(f"{name}: {why}")
            continue
        result.indexed.append(name)
        for url in problems:  # a damaged copy: not a holder; repair replaces it
            repo.targets.remember_damage(url, name)
        holders = tuple(sorted(url for url in sizes if url not in problems))
        pending[holders].packs[pack_id] = entries
        blobs[holders] += len(entries)
        if blobs[holders] >= INDEX_FILE_BLOBS:  # files end between packs, as prune's do
            _save(repo, holders, pending.pop(holders), dry_run, result)
            del blobs[holders]
    for holders, index_file in pending.items():
        _save(repo, holders, index_file, dry_run, result)
    return result


def _save(repo: Repository, holders: tuple[str, ...], index_file: IndexFile, dry_run: bool,
          result: ReindexResult) -> None:
    """Write ``index_file`` to the targets holding all its packs, and load it."""
    result.index_files += 1
    if dry_run:
        return
    repo.save_index(index_file, only=[repo.targets.target(url) for url in holders])
    for pack_id, entries in index_file.packs.items():  # as a backup's pack writer does
        repo.index.add_pack(pack_id, entries)


def _unlisted_packs(repo: Repository) -> dict[bytes, dict[str, int]]:
    """pack id -> {url: size} of the targets holding it, for packs no index lists."""
    inventory = take_inventory(repo)
    holders: dict[bytes, dict[str, int]] = defaultdict(dict)
    for url, listing in inventory.listings.items():
        for name in inventory.extra(url):
            pack_id = _pack_id(name)
            if pack_id is not None:
                holders[pack_id][url] = listing[name]
    return holders


def _pack_id(name: str) -> bytes | None:
    """The id of a pack called ``name`` (exactly as :func:`pack_name` spells it), else None."""
    try:
        pack_id = id_from_name(name)
    except FogVaultError:
        return None
    return pack_id if pack_name(pack_id) == name else None
