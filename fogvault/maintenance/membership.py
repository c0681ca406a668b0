"""``target add`` and ``target remove``: change which targets hold copies of a repository.

FogVault keeps no list of targets inside the repository: a command's targets are the ones it is
given (``-r``, ``FOGVAULT_REPO``, or a job's ``targets``). Hence:

* :func:`add_target` checks that the new target is empty or already holds (part of) this
  repository (anything else is refused), adds it to ``repo.targets`` and copies every live
  object to it with :func:`~fogvault.maintenance.repair.repair`, verifying each copy and
  writing the config last. An interrupted add is resumed by running it again. From then on the
  target is given with the others.
* :func:`remove_target` checks that the *other* targets hold every live object, so that nothing
  is lost when the target is no longer given. Without ``delete_data`` it deletes nothing: the
  target stops being used when the user stops giving it, and keeps a full, usable copy. With
  ``delete_data`` (under the exclusive lock, like prune) it deletes every object of the
  repository from that target: the config first (an interrupted wipe leaves a target that is
  visibly incomplete, and a second run finishes it), then snapshots, index files, packs, and
  the key files last. It refuses to delete anything if another target lacks something.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fogvault.errors import DifferentRepository, FogVaultError, UsageError
from fogvault.maintenance.inventory import take_inventory
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.repair import RepairOptions, RepairResult, repair
from fogvault.maintenance.verify import verify_copy
from fogvault.repo.format import (
    CONFIG_NAME,
    DATA_DIR,
    INDEX_DIR,
    KEYS_DIR,
    LOCKS_DIR,
    SNAPSHOTS_DIR,
)
from fogvault.repo.repository import Repository
from fogvault.storage import ObjectNotFound, Storage, StorageError, open_storage
from fogvault.storage.identity import repeated_target
from fogvault.storage.urls import hide_password

_WIPE_ORDER = (CONFIG_NAME, SNAPSHOTS_DIR, INDEX_DIR, DATA_DIR, KEYS_DIR)


def add_target(
    repo: Repository,
    target: str | Storage,
    *,
    dry_run: bool = False,
    progress: PhaseProgress | None = None,
) -> RepairResult:
    """Make ``target`` (a URL or a Storage) a complete copy of ``repo``; see the module doc."""
    url = target if isinstance(target, str) else target.url
    twice = repeated_target([*repo.targets.urls, url])
    if twice:
        raise UsageError(f"{hide_password(url)!r} is already one of the targets given, as "
                         f"{twice[0]!r}")
    storage = open_storage(target) if isinstance(target, str) else target
    try:
        storage.create()
        _check_joinable(repo, storage)
    except BaseException:
        storage.close()
        raise
    repo.targets.add(storage)
    return repair(repo, RepairOptions(dry_run=dry_run, only=[storage.url]), progress)


def _check_joinable(repo: Repository, storage: Storage) -> None:
    """Refuse a target that holds anything but (part of) this repository."""
    names = {info.name for info in storage.list() if not info.name.startswith(LOCKS_DIR)}
    if not names:
        return
    if CONFIG_NAME in names:
        problem = verify_copy(repo, CONFIG_NAME, storage.read(CONFIG_NAME))
        if problem is None:
            return  # a copy already, maybe incomplete: bring it up to date
        raise DifferentRepository(f"{storage.url} holds a different repository ({problem})")
    ours = set(repo.targets.list(KEYS_DIR))
    if names & ours:
        return  # an earlier 'target add' was interrupted before the config
    if all(name.startswith(KEYS_DIR) for name in names):
        raise UsageError(f"{storage.url} holds only key files that are not this repository's, "
                         "and no config (left by an init that did not finish?): delete its "
                         f"{KEYS_DIR} folder, or add an empty target")
    raise UsageError(f"{storage.url} is not empty and holds no copy of this repository")


@dataclass(slots=True)
class RemoveResult:
    url: str
    lacking: dict[str, list[str]] = field(default_factory=dict)  # other url -> what it lacks
    deleted: int = 0
    bytes_deleted: int = 0
    delete_data: bool = False

    @property
    def others_complete(self) -> bool:
        return not self.lacking


def remove_target(
    repo: Repository, url: str, *, delete_data: bool = False, retry_lock: float = 0.0
) -> RemoveResult:
    """Check that the targets other than ``url`` hold everything; with ``delete_data``, then
    delete the repository from ``url``. ``url`` must be one of ``repo``'s targets."""
    if url not in repo.targets.urls:
        raise UsageError(f"{url} is not one of the targets")
    if len(repo.targets.targets) < 2:
        raise UsageError("cannot remove the only target")
    result = RemoveResult(url, delete_data=delete_data)
    victim = repo.targets.target(url)
    with repo.lock(exclusive=delete_data, retry_for=retry_lock):
        repo.load_index()
        inventory = take_inventory(repo)
        for other in repo.targets.targets:
            if other.url == url:
                continue
            if other.url not in inventory.listings:
                result.lacking[other.url] = [f"unreachable ({other.dropped})"]
                continue
            damaged = sorted(n for u, n in repo.targets.damaged
                             if u == other.url and n in inventory.live)
            lacking = inventory.missing(other.url) + inventory.wrong_size(other.url) + damaged
            if lacking:
                result.lacking[other.url] = lacking
        if not delete_data:
            return result
        if result.lacking:
            first, names = next(iter(result.lacking.items()))
            raise FogVaultError(
                f"not deleting anything from {url}: {first} lacks {len(names)} objects "
                f"({names[0]}, ...); run 'fogvault repair' first")
        if url not in inventory.listings:
            raise FogVaultError(f"cannot delete the data on {url}: {victim.dropped}")
        listing = inventory.listings[url]
        for prefix in _WIPE_ORDER:
            for name in sorted(n for n in listing if n == prefix or n.startswith(prefix)):
                _delete(victim.storage, name)
                result.deleted += 1
                result.bytes_deleted += listing[name]
    for info in list(victim.storage.list(LOCKS_DIR)):  # stale locks, after ours was released
        _delete(victim.storage, info.name)
    return result


def _delete(storage: Storage, name: str) -> None:
    try:
        storage.delete(name)
    except ObjectNotFound:
        pass
    except StorageError as exc:
        raise FogVaultError(f"deleting {name} from {storage.url} failed: {exc}; run the "
                            "command again to finish") from exc


__all__ = ["RemoveResult", "add_target", "remove_target"]
