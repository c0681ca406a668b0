"""Is this copy of this object intact? One answer for every kind of object, for check and repair.

:func:`verify_copy` returns None for an intact copy, else what is wrong with it:

* ``config``: unseals under the master key, decodes, and has this repository's id;
* ``keys/<id>``: the key file that opened the repository must be byte for byte the copy that
  unlocked it; any other key file can only be parsed, since its password is unknown (see
  :func:`judge_key_copies` for how copies that parse but differ are judged);
* ``snapshots/<uid>``: unseals with its uid and decodes;
* ``index/<id>``: its BLAKE3 is its name; it unseals and decodes;
* ``data/..``: its BLAKE3 is its name; with ``full``, its header parses and every blob opens
  and hashes to its id (what ``check --read-data`` does);
* anything else (locks) is not verified.

:func:`stored_copy_problem` is the same for a copy a target holds: it reads a pack in pieces
(:func:`fogvault.repo.pack.verify_pack`), so that no reader holds a whole pack. It tells two
kinds of problem apart (:class:`CopyProblem`):

* **damage**: the copy was read and failed verification, or it is gone (listed, then not
  found). ``check`` remembers it in ``TargetSet.damaged`` (the ledger), which ``repair`` acts on.
* **unreadable**: the copy could not be read at all (permission denied, an I/O error, a target
  that stopped answering). Its bytes were never judged and may well be intact, so it is not
  damage: ``check`` reports it apart, with the reason, and leaves the ledger as it was (the
  user fixes access and checks again; ``repair --read-data`` replaces it from a good copy
  instead, without recording it as damage, and with no good copy says to fix access). No
  repair takes a pack out of the index for such a copy: ``repair --index`` reads every copy
  again first and keeps the pack when one cannot be read
  (:mod:`fogvault.maintenance.lost_packs`).

:func:`damaged_index_files` finds the index files that no target holds a good copy of: loading
the index skips them with a warning, so they are not live objects, and their packs look
unlisted; they are damage all the same (check reports them, ``repair --index`` retires them),
and check tells those with a copy that could not be read from those damaged everywhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial

from fogvault.crypto import content_hash
from fogvault.errors import FogVaultError
from fogvault.maintenance.inventory import Inventory
from fogvault.repo.config import RepoConfig
from fogvault.repo.format import (
    CONFIG_NAME,
    DATA_DIR,
    INDEX_DIR,
    KEYS_DIR,
    SNAPSHOTS_DIR,
    ObjectKind,
    id_from_name,
    parse_hex_id,
)
from fogvault.repo.index import parse_index_file
from fogvault.repo.keys import KeyFile
from fogvault.repo.repository import (
    MAX_CONFIG_SIZE,
    MAX_INDEX_SIZE,
    MAX_SNAPSHOT_SIZE,
    Repository,
)
from fogvault.repo.snapshot import Snapshot
from fogvault.storage import ObjectNotFound, Storage, StorageError


@dataclass(frozen=True, slots=True)
class CopyProblem:
    """What is wrong with a stored copy: damage, or ``unreadable`` (the module docstring)."""

    reason: str  # one line, without the target and name (the report gives those)
    unreadable: bool = False  # not read at all: its bytes were never judged

    def __str__(self) -> str:
        return self.reason


def verify_copy(repo: Repository, name: str, data: bytes, *, full: bool = True) -> str | None:
    try:
        return _check_copy(repo, name, data, full)
    except FogVaultError as exc:
        return read_problem(exc).reason


def stored_copy_problem(repo: Repository, storage: Storage, name: str, size: int, *,
                        full: bool = True) -> CopyProblem | None:
    """:func:`verify_copy` of the copy of ``name`` that ``storage`` holds, listed as ``size``
    bytes; a copy that cannot be read is a problem too, of its own kind."""
    try:
        if name.startswith(DATA_DIR):
            _check_stored_pack(repo, storage, name, size, full)
            return None
        reason = _check_copy(repo, name, storage.read(name), full)
    except FogVaultError as exc:
        return read_problem(exc)
    return None if reason is None else CopyProblem(reason)


def read_problem(error: FogVaultError) -> CopyProblem:
    """The problem ``error``, raised reading or verifying a copy, says the copy has: a storage
    error other than "not found" kept the copy from being read (unreadable); anything else
    is damage."""
    if isinstance(error, StorageError) and not isinstance(error, ObjectNotFound):
        return CopyProblem(error.reason, unreadable=True)
    return CopyProblem(str(error) or type(error).__name__)


def damaged_index_files(repo: Repository, inventory: Inventory
                        ) -> dict[str, dict[str, CopyProblem]]:
    """name -> {url: what is wrong with its copy there} of each index file that the targets of
    ``inventory`` hold and none holds a good copy of (after ``repo.load_index()``, which skipped
    it): damaged, or unreadable, on each. An index file that a loaded one supersedes is not one
    of them (it is dead whatever it holds: prune deletes it), nor one that reads well now
    (written since the index was loaded), nor a name that is not an index file's (loading
    ignores it)."""
    loaded = repo.index_ids()
    superseded = repo.superseded_ids()
    holders: dict[str, dict[str, int]] = {}
    for url, listing in inventory.listings.items():
        for name in inventory.extra(url):
            if not name.startswith(INDEX_DIR):
                continue
            try:
                index_id = parse_hex_id(name[len(INDEX_DIR):])
            except FogVaultError:
                continue
            if index_id not in loaded and index_id not in superseded:
                holders.setdefault(name, {})[url] = listing[name]
    damaged = {}
    for name, sizes in sorted(holders.items()):
        problems = {}
        for url, size in sizes.items():
            storage = repo.targets.target(url).storage
            problem = stored_copy_problem(repo, storage, name, size)
            if problem is None:
                break
            problems[url] = problem
        else:
            damaged[name] = problems
    return damaged


def _check_stored_pack(repo: Repository, storage: Storage, name: str, size: int, full: bool
                       ) -> None:
    repo.check_pack(id_from_name(name), size, partial(storage.read, name), full=full)


def _check_copy(repo: Repository, name: str, data: bytes, full: bool) -> str | None:
    if name == CONFIG_NAME:
        config = RepoConfig.decode(repo._unseal(ObjectKind.CONFIG, b"", data, MAX_CONFIG_SIZE))
        if config.repo_id != repo.config.repo_id:
            return "config of a different repository"
    elif name.startswith(KEYS_DIR):
        key_id = name[len(KEYS_DIR) :]
        if key_id == repo.key_id and repo.key_bytes is not None:
            return None if data == repo.key_bytes else "differs from the key file in use"
        KeyFile.decode(key_id, data)
    elif name.startswith(SNAPSHOTS_DIR):
        uid = name[len(SNAPSHOTS_DIR) :]
        Snapshot.decode(repo._unseal(ObjectKind.SNAPSHOT, uid.encode(), data, MAX_SNAPSHOT_SIZE),
                        uid)
    elif name.startswith(INDEX_DIR):
        if content_hash(data) != id_from_name(name):
            return "does not match its name"
        parse_index_file(repo._unseal(ObjectKind.INDEX, b"", data, MAX_INDEX_SIZE))
    elif name.startswith(DATA_DIR):
        repo.check_pack_bytes(id_from_name(name), data, full=full)
    return None


def judge_key_copies(copies: dict[str, bytes]) -> tuple[bytes | None, set[str]]:
    """For a key file that is not the one in use: (the good bytes or None, urls of bad copies).

    A copy that does not parse is bad. If the copies that parse differ, the bytes most of them
    hold win, and the others are bad; without a strict majority nobody can tell (None, and no
    copy is called bad)."""
    parsing = {}
    bad = set()
    for url, data in copies.items():
        try:
            KeyFile.decode("0" * 16, data)
            parsing[url] = data
        except FogVaultError:
            bad.add(url)
    if not parsing:
        return None, bad
    votes = Counter(parsing.values())
    winner, count = votes.most_common(1)[0]
    if len(votes) > 1 and count * 2 <= len(parsing):
        return None, bad
    return winner, bad | {url for url, data in parsing.items() if data != winner}
