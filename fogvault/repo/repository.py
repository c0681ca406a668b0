"""The repository: opens targets, unlocks keys, and reads and writes every kind of object.

This is the library API the engine (backup, restore, maintenance) and the CLI build on::

    repo = Repository.init(["/mnt/usb/vault"], b"password")
    repo = Repository.open(["/mnt/usb/vault", "s3://bucket/vault"], b"password")
    data = repo.load_blob(blob_id)
    snapshots = repo.snapshots()

Targets are URLs or :class:`~fogvault.storage.Storage` objects (tests pass wrapped storages,
such as ``FaultyStorage``); a :class:`~fogvault.targets.TargetPolicy` sets retries, concurrency
and ``min_targets``.

Read/write ordering (docs/format.md, "Ordering"): packs are written before the index files
that name them, and index files before the snapshots that use them, so a reader that sees a
snapshot can find all of its data. With several targets this holds on each target: a snapshot
is written only to targets that hold every live index file (:meth:`mark_behind_targets`), and
only if at least ``min_targets`` of them do.

Opening checks that every target holds the same repository (``DifferentRepository``); a target
that is unreachable is dropped with a warning; one whose config is missing or damaged but which
holds this repository's key files is used, and its config is remembered as damaged for
``repair``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from fogvault.chunker import Chunker, chunker_seed
from fogvault.compression import pack_payload, unpack_payload
from fogvault.crypto import (
    DEFAULT_KDF,
    KDF_PROFILES,
    SEAL_OVERHEAD,
    KdfParams,
    MasterKey,
    content_hash,
    keyed_id,
    seal,
    unseal,
)
from fogvault.errors import (
    AmbiguousPrefix,
    DifferentRepository,
    FogVaultError,
    IntegrityError,
    MalformedObject,
    NoRepository,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
    TargetsBehind,
    TargetsUnavailable,
    UnsupportedFormat,
    UsageError,
    WrongPassword,
)
from fogvault.parallel import ordered_map
from fogvault.repo.cache import Cache, TreePackCache, default_cache_dir
from fogvault.repo.config import RepoConfig
from fogvault.repo.format import (
    CONFIG_NAME,
    DATA_DIR,
    INDEX_DIR,
    KEYS_DIR,
    LOCKS_DIR,
    SNAPSHOTS_DIR,
    BlobType,
    ObjectKind,
    aad,
    id_from_name,
    index_name,
    key_name,
    pack_name,
    snapshot_name,
)
from fogvault.repo.index import (
    BlobIndex,
    IndexEntry,
    IndexFile,
    ParsedIndexFile,
    parse_index_file,
)
from fogvault.repo.keys import MAX_KEY_FILE_SIZE, KeyFile
from fogvault.repo.lock import LockStore, NoLock, RepositoryLock
from fogvault.repo.pack import (
    BlobLocation,
    PackEntry,
    RangeReader,
    open_blob,
    pack_spans,
    verify_pack,
)
from fogvault.repo.snapshot import Snapshot, is_uid, newest_first, select_snapshots
from fogvault.repo.tree import Tree
from fogvault.storage import ObjectExists, ObjectNotFound, Storage, StorageError, open_storage
from fogvault.storage.identity import repeated_target
from fogvault.storage.urls import hide_password
from fogvault.targets import Target, TargetPolicy, TargetSet

log = logging.getLogger("fogvault")
#: What makes a blob unreadable from every target: its copies are damaged or missing (unlike a
#: target that cannot be reached, which says nothing about the data). See :func:`is_damage`.
BlobDamage = IntegrityError | ObjectNotFound


def is_damage(error: BaseException) -> bool:
    """Whether ``error`` says that no target holds an object intact: missing, or failing its
    hash or authentication, everywhere. Not a malformed object: that one authenticated, so a
    writer that had the key made it, and it stops a restore instead of costing a file."""
    return isinstance(error, IntegrityError | ObjectNotFound) and not isinstance(
        error, MalformedObject)


T = TypeVar("T")

MAX_CONFIG_SIZE = 64 * 1024
MAX_SNAPSHOT_SIZE = 16 * 1024 * 1024
MAX_INDEX_SIZE = 1024 * 1024 * 1024
INDEX_LOAD_BATCH = 8
INDEX_BYTES_PER_BLOB = 40
METADATA_COMPRESSION_LEVEL = 3
TREE_SPAN = 4 * 1024 * 1024  # bytes of a pack read at once by load_trees
#: Room for a tree pack's header beyond its blobs when a whole pack is downloaded for the cache
#: (a header takes 41 bytes a blob, so it can be as large as the blobs: see _tree_pack_limit).
PACK_TAIL_ROOM = 1024 * 1024


class _NotCacheable(Exception):
    """A tree pack larger than any pack this repository's writers make (see
    ``_tree_pack_limit``): it is read in ranges, as without a cache."""


class _DamagedCopy(Exception):
    """A cached copy of a tree pack failed a blob and is not the pack: it was dropped."""


#: Why a tree pack is not downloaded whole again in this process, only read in ranges (as
#: without a cache): too large, or no target holds it intact (damaged or missing on every
#: target asked, and the others cannot be asked). A target that could not be reached says
#: nothing about the pack: the next read tries again.
_NOT_DOWNLOADABLE = (_NotCacheable, IntegrityError, ObjectNotFound, TargetsUnavailable)


class Repository:
    def __init__(
        self,
        targets: TargetSet,
        master: MasterKey,
        key_id: str,
        config: RepoConfig,
        cache: Cache | None,
    ) -> None:
        self.targets = targets
        self.master = master
        self.key_id = key_id
        self.config = config
        self._tree_packs: TreePackCache | None = None
        self.cache = cache
        self.index = BlobIndex()
        self._cache_swept = False  # see load_index
        #: tree packs read in ranges from the targets, as without a cache: too large to
        #: download whole, held intact by no target, or with a damaged copy that cannot be
        #: removed
        self._uncached: set[bytes] = set()
        self._index_ids: set[bytes] = set()
        self._superseded: set[bytes] = set()
        self.key_bytes: bytes | None = None  # the key file that opened it, as verified
        # ids of key files that open nothing here (another init's): at init, those that were on
        # the targets before it and are still on one after it; at open, those tried before the
        # key that opened it (name order) that the password opens and that wrap another master
        # key
        self.stray_keys: list[str] = []
        self.removed_keys: list[str] = []  # at init: those it found and deleted everywhere
        self._chunker_seed = chunker_seed(master.identity)
        self.use_locks = True
        #: snapshots that ``snapshots()`` skipped because they could not be read (damage): the
        #: CLI ends such a command with exit 3, as what it showed or chose lacked them
        self.unreadable_snapshots: set[str] = set()
        self.lock_wait = 0.0  # seconds to wait for other processes' locks (--retry-lock)

    # ---- opening ---------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        urls: Iterable[str | Storage],
        password: bytes,
        *,
        config: RepoConfig | None = None,
        kdf: KdfParams = KDF_PROFILES[DEFAULT_KDF],
        cache_dir: Path | None = None,
        use_cache: bool = True,
        target_options: Mapping[str, Mapping[str, Any]] | None = None,
        policy: TargetPolicy | None = None,
        identity: bytes | None = None,
    ) -> Repository:
        """Create a new repository on every target: the same key file and config bytes on
        each. Refuses targets that hold a config, any other object of a repository but key
        files, or objects of no repository (:func:`_key_files_left`), and fails if any target
        fails. Key files found on a target without a config were left by an init that was
        interrupted before its config, or belong to one running now: they are left alone until
        this init's config is written there, then deleted where the config read back is this
        init's (:func:`_write_config`);
        those removed are named in a warning and in ``removed_keys``, those still there (the
        deletion or the read-back failed, or the config there is not this init's) in another,
        and in ``stray_keys``.
        ``target_options`` maps a URL to its backend options (see ``open_storage``).
        ``identity``: another repository's identity key (``init --copy-chunker-params``): with
        that repository's chunker parameters in ``config``, data gets the same chunks and blob
        ids as there, and ``copy`` between the two moves only what is missing; the encryption
        key is new either way."""
        config = config or RepoConfig()
        try:
            config.validate()
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        targets = TargetSet(_open_all(urls, target_options), policy)
        try:
            leftover: dict[str, list[str]] = {}
            for target in targets.targets:
                target.storage.create()
                if found := _key_files_left(target.storage):
                    leftover[target.url] = found
            master = MasterKey.generate()
            if identity is not None:  # checked: exactly one key's length
                master = MasterKey.from_bytes(master.encryption + identity)
            key_file = KeyFile.create(master, password, kdf)
            repo = cls(targets, master, key_file.key_id, config, None)
            # The key first: a target with a config is a repository, and must be openable.
            repo.key_bytes = key_file.encode()
            targets.write(key_name(key_file.key_id), repo.key_bytes)
            removed = _write_config(targets, key_file.key_id,
                                    repo._seal(ObjectKind.CONFIG, b"", config.encode()),
                                    leftover)
            kept = {url: [k for k in found if k not in removed.get(url, ())]
                    for url, found in leftover.items()}
            kept = {url: found for url, found in kept.items() if found}
            repo.stray_keys = _key_ids(kept)
            repo.removed_keys = sorted(set(_key_ids(removed))
                                       - set(repo.stray_keys))
            if removed:
                log.warning("%s", _removal_note(removed))
            if kept:
                log.warning("%s", _leftover_note(kept))
            failed = [t for t in targets.targets if not t.active]
            if failed:
                done = [t.url for t in targets.targets if t.active]
                raise FogVaultError(
                    f"init failed on {failed[0].url} ({failed[0].dropped}); the repository "
                    f"was created on {', '.join(done)}: add the rest later with "
                    "'fogvault target add URL'"
                )
        except BaseException:
            targets.close()
            raise
        repo.cache = _make_cache(cache_dir, use_cache, config.repo_id)
        return repo

    @classmethod
    def open(
        cls,
        urls: Iterable[str | Storage],
        password: bytes,
        *,
        cache_dir: Path | None = None,
        use_cache: bool = True,
        load_index: bool = True,
        target_options: Mapping[str, Mapping[str, Any]] | None = None,
        policy: TargetPolicy | None = None,
        drop_empty_targets: bool = False,
    ) -> Repository:
        """Open the repository on its targets. A target that holds no repository (an empty
        folder, the mount point of a disk that is not mounted) is refused, unless the others
        are enough for ``min_targets``, or ``drop_empty_targets`` is set (for a report on the
        targets): then it is left out of this run, marked ``empty``. ``target_options`` maps a
        URL to its backend options (see ``open_storage``)."""
        targets = TargetSet(_open_all(urls, target_options), policy)
        try:
            configs = _probe_configs(targets)
            if not any(sealed is not None for sealed in configs.values()):
                _raise_no_repository(targets)
            master, key_id, key_bytes, verified, stray = _unlock(targets, password, configs)
            config = _check_same_repository(targets, verified, drop_empty_targets)
        except BaseException:
            targets.close()
            raise
        cache = _make_cache(cache_dir, use_cache, config.repo_id)
        repo = cls(targets, master, key_id, config, cache)
        repo.key_bytes = key_bytes
        repo.stray_keys = stray
        if load_index:
            try:
                repo.load_index()
            except BaseException:  # the caller gets no repository to close: its targets'
                repo.close()  # threads and connections would stay open
                raise
        return repo

    @property
    def cache(self) -> Cache | None:
        """The local cache: index files and tree packs (None: ``--no-cache``)."""
        return self._cache

    @cache.setter
    def cache(self, cache: Cache | None) -> None:
        self._cache = cache
        self._tree_packs = TreePackCache(cache) if cache is not None else None

    @contextlib.contextmanager
    def trees_from_targets(self) -> Iterator[None]:
        """Within the block, trees are read from the targets, never from the cached tree
        packs (nor stored there): ``check`` and ``repair`` judge what the targets hold, which a
        good copy in the cache would hide."""
        kept, self._tree_packs = self._tree_packs, None
        try:
            yield
        finally:
            self._tree_packs = kept

    def close(self) -> None:
        self.targets.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- sealing -----------------------------------------------------------------------

    def _seal(self, kind: bytes, ident: bytes, plaintext: bytes) -> bytes:
        payload = pack_payload(plaintext, METADATA_COMPRESSION_LEVEL)
        return seal(self.master.encryption, payload, aad(kind, ident))

    def _unseal(self, kind: bytes, ident: bytes, sealed: bytes, max_size: int) -> bytes:
        return _unseal_object(self.master, kind, ident, sealed, max_size)

    def blob_id(self, data: bytes | memoryview) -> bytes:
        return keyed_id(self.master.identity, data)

    def chunker(self) -> Chunker:
        """A new chunker with this repository's parameters and secret seed (one per thread)."""
        return Chunker(self.config.chunker, self._chunker_seed)

    # ---- index -------------------------------------------------------------------------

    def load_index(self) -> None:
        """Bring the in-memory index up to date: load index files not loaded yet (from the
        cache where possible); if a loaded one has gone (a prune replaced it), start over."""
        present: dict[bytes, tuple[str, int]] = {}  # id -> (name, stored size)
        for name, size in self.targets.list(INDEX_DIR).items():
            index_id = id_from_name_or_none(name)
            if index_id is not None:
                present[index_id] = name, size
        gone = bool(self._index_ids - present.keys())
        if gone:
            self.index, self._index_ids, self._superseded = BlobIndex(), set(), set()
        superseded = self._load_index_files(present)
        if superseded:
            # A new file supersedes one already loaded (a prune finished, or was killed after
            # writing its new index): rebuild without the superseded files' entries.
            self.index, self._index_ids = BlobIndex(), set()
            self._load_index_files(present)
        if gone or superseded or not self._cache_swept:
            self._sweep_cache({name for name, _ in present.values()})

    def _sweep_cache(self, index_names: set[str]) -> None:
        """Remove the cached copies of index files no target lists and of packs the index
        does not list (pruned), once per process and again after each prune (which drops index
        files): one listing of the cache folder. A pack another process wrote and has not yet
        indexed (a backup running, for up to 30 s a pack) is removed too, and costs it a
        download if it is read again (restic's cache does the same)."""
        self._cache_swept = True
        if self.cache is None:
            return

        def keep(name: str) -> bool:
            if name.startswith(INDEX_DIR):
                return name in index_names
            pack_id = id_from_name_or_none(name)
            return pack_id is not None and self.index.pack_number(pack_id) >= 0

        removed = self.cache.sweep(keep)
        if removed:
            log.debug("cache: removed %d files of objects the repository no longer holds",
                      removed)

    def _load_index_files(self, present: dict[bytes, tuple[str, int]]) -> bool:
        """Load the files of ``present`` not loaded yet, streaming: a few are read at once
        (in threads), and each is inserted straight from its plaintext and dropped, with no
        object per blob. True if one superseded a file already loaded.

        A file superseded by one read later is inserted, then undone by the caller's rebuild:
        that happens only while a prune is deleting (or was killed before deleting) what it
        replaced, and reading every file's supersedes list first would decrypt every file
        twice on every open."""
        new = [(i, name) for i, (name, _) in present.items() if i not in self._index_ids]
        # An index file stores about 40 bytes per blob (the 32 of the id do not compress):
        # sizing the table once saves growing it, and rehashing every record, again and again.
        self.index.reserve(sum(present[i][1] for i, _ in new) // INDEX_BYTES_PER_BLOB)
        restart = False
        for start in range(0, len(new), INDEX_LOAD_BATCH):
            batch = new[start : start + INDEX_LOAD_BATCH]
            files = self._map(self._read_index_or_none, [name for _, name in batch])
            for (index_id, _), index_file in zip(batch, files, strict=True):
                if index_file is None:
                    continue  # unreadable: its packs look unindexed; check reports them
                fresh = set(index_file.supersedes) - self._superseded
                restart |= bool(fresh & self._index_ids)
                self._superseded |= fresh
                self._index_ids.add(index_id)
                if index_id not in self._superseded:
                    for pack_id, listing in index_file.packs:
                        self.index.add_listing(pack_id, listing)
        return restart

    def _read_index_or_none(self, name: str) -> ParsedIndexFile | None:
        try:
            return parse_index_file(self._index_plaintext(name))
        except FogVaultError as exc:
            log.warning("skipping index file %s: %s", name, exc)
            return None

    def index_ids(self) -> set[bytes]:
        return set(self._index_ids)

    def live_index_names(self) -> set[str]:
        """Names of the loaded index files that no loaded index file supersedes."""
        return {index_name(i) for i in self._index_ids - self._superseded}

    def superseded_ids(self) -> set[bytes]:
        """Ids of the index files that a loaded index file supersedes, read or not."""
        return set(self._superseded)

    def mark_behind_targets(self, *, skip_writes: bool = False) -> list[Target]:
        """After ``load_index``: mark the targets that lack a live index file as behind (no
        snapshot may go to them: it could name data they lack), and the others as not. With
        ``skip_writes`` they get no writes at all (prune). Returns them."""
        live = self.live_index_names()
        behind = []
        for target in self.targets.active():
            names = self.targets.last_listing(INDEX_DIR, target)
            missing = live - names if names is not None else set()
            if not missing:
                self.targets.clear_behind(target)
            else:
                self.targets.mark_behind(
                    target, f"lacks {len(missing)} of {len(live)} index files",
                    skip_writes=skip_writes)
                behind.append(target)
        return behind

    def read_index_file(self, name: str) -> IndexFile:
        return IndexFile.decode(self._index_plaintext(name))

    def index_file_packs(self, name: str) -> list[bytes]:
        """The ids of the packs an index file lists, checked as :meth:`read_index_file` checks
        them, without an object per blob (a prune's index file lists 100,000)."""
        return [pack_id for pack_id, _ in parse_index_file(self._index_plaintext(name)).packs]

    def _index_plaintext(self, name: str) -> bytes:
        index_id = id_from_name(name)
        sealed = self.cache.get_verified(name, index_id) if self.cache else None
        if sealed is None:
            sealed = self.targets.read_decoded(name, _hash_checked(index_id))
            if self.cache:
                self.cache.put(name, sealed)
        return self._unseal(ObjectKind.INDEX, b"", sealed, MAX_INDEX_SIZE)

    def save_index(self, index_file: IndexFile, only: Iterable[Target] | None = None) -> bytes:
        """Write one index file to every target, or to those of ``only`` (the caller copies it
        to the others later: ``repair --index``); returns its id. Idempotent."""
        sealed = self._seal(ObjectKind.INDEX, b"", index_file.encode())
        index_id = content_hash(sealed)
        name = index_name(index_id)
        self.targets.write_to_each(name, sealed, exist_ok=True, only=only, others_later=True)
        if self.cache:
            self.cache.put(name, sealed)
        self._index_ids.add(index_id)
        return index_id

    # ---- packs and blobs ---------------------------------------------------------------

    def save_pack(self, pack_id: bytes, data: bytes | memoryview) -> None:
        self.targets.write_to_each(pack_name(pack_id), data, exist_ok=True)

    def cache_written_pack(self, pack_id: bytes, data: bytes | memoryview,
                           blob_type: BlobType) -> None:
        """After :meth:`save_pack`: keep a copy of a tree pack in the cache, so that the
        next backup finds its parent's trees there. Data packs are not kept."""
        if blob_type is BlobType.TREE and self._tree_packs is not None:
            self._tree_packs.put(pack_id, data)

    def cached_copy(self, name: str) -> bytes | None:
        """The local cache's copy of a pack or an index file (of packs, only tree packs are
        cached), whole, if it hashes to the id its name gives; None if there is none (a copy
        that does not is removed). Read also within :meth:`trees_from_targets`: ``repair``
        takes it as a good copy of an object no target holds intact."""
        if self.cache is None:
            return None
        return self.cache.get_verified(name, id_from_name(name))

    def load_blob(self, blob_id: bytes, blob_type: BlobType | None = None) -> bytes:
        entry = self.index.get(blob_id)
        if entry is None:
            raise IntegrityError(f"blob {blob_id.hex()} is not in the index")
        if blob_type is not None and entry.blob_type != blob_type:
            raise IntegrityError(f"blob {blob_id.hex()} is not a {blob_type.name.lower()} blob")
        return self._read_pack(entry.pack_id, entry.blob_type,
                               lambda sealed: self.open_blob(entry, sealed),
                               entry.offset, entry.length)

    def _read_pack(self, pack_id: bytes, blob_type: BlobType, decode: Callable[[bytes], T],
                   offset: int, length: int) -> T:
        """``decode`` of bytes ``offset`` to ``offset + length`` of a pack of ``blob_type``
        blobs: a tree pack's from its copy in the cache (downloaded whole first), any other's
        from the targets (:meth:`TargetSet.read_decoded`). ``decode`` authenticates what it is
        given (IntegrityError): a cached copy that fails it is damaged unless it hashes to the
        pack's id (:meth:`_decode_copy`), and is then dropped and downloaded again (if it
        cannot be dropped, the pack is read in ranges from the targets from then on). A tree
        pack that cannot be downloaded whole intact (damaged or missing on every target) is
        tried once, then read in ranges as without a cache, so that its intact trees still
        load."""
        def from_targets() -> T:
            return self.targets.read_decoded(pack_name(pack_id), decode, offset, length)

        packs = self._tree_packs if blob_type is BlobType.TREE else None
        if packs is None or pack_id in self._uncached:
            return from_targets()
        copied = packs.read(pack_id, offset, length)
        if copied is not None:
            with contextlib.suppress(_DamagedCopy):
                return self._decode_copy(packs, pack_id, copied, decode)
        if pack_id in self._uncached or not packs.writable:
            return from_targets()
        try:
            fetched = packs.fetch(pack_id, offset, length,
                                  lambda: self._download_tree_pack(pack_id, offset + length))
        except (FogVaultError, _NotCacheable) as exc:
            if isinstance(exc, _NOT_DOWNLOADABLE):  # it will not be: do not try again
                self._uncached.add(pack_id)
            return from_targets()
        try:
            return self._decode_copy(packs, pack_id, fetched, decode)
        except _DamagedCopy:  # another process's copy, found while this one waited
            return from_targets()

    def _decode_copy(self, packs: TreePackCache, pack_id: bytes, data: bytes,
                     decode: Callable[[bytes], T]) -> T:
        """``decode(data)``, ``data`` from the pack's copy (or its download). If ``decode``
        fails on the pack itself (the copy hashes to its id), the damage was written into the
        pack, so every target holds it too: ``decode``'s error is raised, and the copy kept
        for the pack's other blobs. A copy that is not the pack is damaged: it is dropped, with
        a warning, and _DamagedCopy raised."""
        try:
            return decode(data)
        except IntegrityError as exc:
            if packs.is_intact(pack_id):
                raise
            log.warning("the cached copy of tree pack %s is damaged (%s): reading it from "
                        "the targets", pack_id.hex(), exc)
            if not packs.discard(pack_id):
                self._uncached.add(pack_id)
            raise _DamagedCopy from exc

    def _download_tree_pack(self, pack_id: bytes, needed: int) -> bytes:
        """The whole pack ``pack_id``, from the first target whose copy matches its name, for
        the cache; ``needed``: bytes of it the caller knows of (the end of a blob in it)."""
        limit = self._tree_pack_limit(needed)

        def whole(data: bytes) -> bytes:
            if len(data) > limit:
                raise _NotCacheable(pack_id.hex())
            if content_hash(data) != pack_id:
                raise IntegrityError(f"pack {pack_id.hex()} does not match its name")
            return data

        return self.targets.read_decoded(pack_name(pack_id), whole, 0, limit + 1)

    def _tree_pack_limit(self, needed: int) -> int:
        """The most bytes a tree pack of this repository's writers can hold, so that what a
        download holds in memory is bounded: ``2 * max(pack_size + max_chunk, needed) +
        PACK_TAIL_ROOM`` (max_chunk: the chunker's largest chunk). A pack is closed once its
        blobs reach the pack size, so they take at most the pack size and one more blob, which
        is no larger than a chunk unless it is a larger tree (``needed`` covers one read
        itself); its header takes at most as many bytes as its blobs (41 an entry; a sealed
        blob has at least 41), and the tail room covers the seals of that last blob and of the
        header, and the trailer. A larger pack (its last tree larger than a chunk, read for
        another tree of it) is read in ranges (_NotCacheable)."""
        blobs = max(self.config.pack_size + self.config.chunker.max_size, needed)
        return 2 * blobs + PACK_TAIL_ROOM

    def open_blob(self, entry: BlobLocation, sealed: bytes | memoryview) -> bytes:
        if len(sealed) != entry.length:
            raise IntegrityError(f"blob {entry.blob_id.hex()} is truncated in its pack")
        return open_blob(self.master.encryption, self.master.identity, entry, sealed)

    def read_pack_blobs(
        self, pack_id: bytes, entries: list[IndexEntry], *, sealed: bool = False
    ) -> list[tuple[IndexEntry, bytes]]:
        """Decrypt ``entries`` (all in ``pack_id``) with one ranged read per target attempt.
        With ``sealed``, return each blob as stored (verified, not decrypted), for copying."""
        return self._read_blobs(pack_id, entries, sealed, self.open_blob)

    def _read_blobs(self, pack_id: bytes, entries: list[IndexEntry], sealed: bool,
                    open_one: Callable[[IndexEntry, memoryview], T]
                    ) -> list[tuple[IndexEntry, bytes | T]]:
        entries = sorted(entries, key=lambda e: e.offset)
        start = entries[0].offset
        end = max(e.offset + e.length for e in entries)

        def decode(data: bytes) -> list[tuple[IndexEntry, bytes | T]]:
            view = memoryview(data)
            out: list[tuple[IndexEntry, bytes | T]] = []
            for e in entries:
                blob = view[e.offset - start :][: e.length]
                plain = open_one(e, blob)
                out.append((e, bytes(blob) if sealed and isinstance(plain, bytes) else plain))
            return out

        return self._read_pack(pack_id, entries[0].blob_type, decode, start, end - start)

    def read_spans(
        self, spans: Iterable[list[IndexEntry]], *, threads: int, ahead: int,
        sealed: bool = False, salvage: bool = False,
    ) -> Iterator[list[tuple[IndexEntry, bytes | BlobDamage]]]:
        """:meth:`read_pack_blobs` of each span (the entries of one pack, e.g. from
        :func:`pack_spans`), in order, read by ``threads`` threads while the caller uses earlier
        ones; at most ``ahead`` reads are pending while the caller holds one. With no
        ``threads``, each span is read when the caller asks for it, in the caller's thread.

        With ``salvage``, a blob that no target holds intact (:func:`is_damage`) comes with its
        error in place of its bytes, so that the caller loses only what used that blob: a span
        that fails is read once more and its blobs opened one by one, and those that fail are
        read again alone from every target (a pack missing everywhere is not read again).
        Other errors (a target that cannot be reached) still raise: they are not about the
        data."""
        def read(group: list[IndexEntry]) -> list[tuple[IndexEntry, bytes | BlobDamage]]:
            try:
                return self.read_pack_blobs(group[0].pack_id, group, sealed=sealed)
            except (IntegrityError, ObjectNotFound) as exc:
                if not (salvage and is_damage(exc)):
                    raise
                if isinstance(exc, ObjectNotFound) or len(group) == 1:
                    return [(entry, exc) for entry in group]
            return self._salvage_span(group, sealed)

        if threads == 0:
            yield from map(read, spans)
            return
        yield from ordered_map(read, spans, workers=threads, ahead=ahead)

    def _salvage_span(self, group: list[IndexEntry], sealed: bool
                      ) -> list[tuple[IndexEntry, bytes | BlobDamage]]:
        """The blobs of a span that failed: the good ones from one more read, the others read
        again alone, which tries each target's copy of them."""
        def open_or_error(entry: IndexEntry, blob: memoryview) -> bytes | IntegrityError:
            try:
                return self.open_blob(entry, blob)
            except IntegrityError as exc:
                return exc

        try:
            opened = self._read_blobs(group[0].pack_id, group, sealed, open_or_error)
        except (IntegrityError, ObjectNotFound) as exc:
            if not is_damage(exc):
                raise
            return [(entry, exc) for entry in group]
        return [(entry, blob) if isinstance(blob, bytes) else self._salvage_blob(entry, sealed)
                for entry, blob in opened]

    def _salvage_blob(self, entry: IndexEntry, sealed: bool
                      ) -> tuple[IndexEntry, bytes | BlobDamage]:
        try:
            return self.read_pack_blobs(entry.pack_id, [entry], sealed=sealed)[0]
        except (IntegrityError, ObjectNotFound) as exc:
            if not is_damage(exc):
                raise
            return entry, exc

    def check_pack(self, pack_id: bytes, size: int, read: RangeReader, *, full: bool = True
                   ) -> list[PackEntry]:
        """Raise IntegrityError unless the ``size`` bytes ``read`` returns are the pack
        ``pack_id``: they hash to the id and (``full``) its header parses and every blob
        decrypts to its id; its entries (none without ``full``). Read in pieces
        (:func:`~fogvault.repo.pack.verify_pack`), never held whole."""
        return verify_pack(pack_id, size, read, (self.master.encryption, self.master.identity)
                           if full else None)

    def check_pack_bytes(self, pack_id: bytes, data: bytes, *, full: bool = True) -> None:
        """:meth:`check_pack` of a pack held in memory."""
        view = memoryview(data)
        self.check_pack(pack_id, len(data), lambda offset, length: view[offset:][:length],
                        full=full)

    def load_tree(self, tree_id: bytes) -> Tree:
        # No type check: data and tree blobs share one id space, so a file whose bytes equal a
        # tree's encoding (an empty folder's, say) is stored once, as whichever came first.
        return _decode_tree(tree_id, self.load_blob(tree_id))

    def load_trees(self, tree_ids: Iterable[bytes]) -> Iterator[tuple[bytes, Tree | FogVaultError]]:
        """Each of ``tree_ids`` (distinct) with its tree, or the error that kept it from
        loading, in pack order: the trees of one pack come from one ranged read per
        ``TREE_SPAN`` bytes, not one read each (folders' subtrees were written side by side).
        A read that fails is retried tree by tree, so each error is the tree's own."""
        by_pack: dict[bytes, list[IndexEntry]] = {}
        for tree_id in tree_ids:
            entry = self.index.get(tree_id)
            if entry is None:  # load_tree names the problem as an unbatched load would
                yield tree_id, _try(self.load_tree, tree_id)
            else:
                by_pack.setdefault(entry.pack_id, []).append(entry)
        for pack_id, entries in by_pack.items():
            for group in pack_spans(entries, TREE_SPAN):
                try:
                    blobs = self.read_pack_blobs(pack_id, group)
                except FogVaultError:
                    # One bad blob fails the whole read, and the error seen first may be another
                    # target's: load each tree on its own, as if unbatched, to tell which.
                    for entry in group:
                        yield entry.blob_id, _try(self.load_tree, entry.blob_id)
                    continue
                for entry, data in blobs:
                    yield entry.blob_id, _try(_decode_tree, entry.blob_id, data)

    # ---- snapshots ---------------------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        sealed = self._sealed_snapshot(snapshot)
        name = snapshot_name(snapshot.uid)
        ready = self.targets.require_quorum("snapshot not saved")
        written = self.targets.write(name, sealed, only=ready)
        if len(written) < self.targets.min_targets:  # a target failed this very write
            try:
                self.targets.delete(name)
            except FogVaultError as exc:
                log.warning("could not take back the uncommitted snapshot %s: %s",
                            snapshot.uid, exc)
            self.targets.require_quorum("snapshot not saved")

    def save_snapshot_copy(self, snapshot: Snapshot, holders: Iterable[Target]) -> list[Target]:
        """Write ``snapshot``, a changed copy of one that ``holders`` hold (``tag``), to those
        targets only, which hold its data: not to the others, whatever the quorum (the snapshot
        was committed already; a target that lacks it is repair's to bring up to date). Returns
        the targets written; a target whose write failed is dropped."""
        # others_later: the targets left out are not counted as having missed this write
        return self.targets.write_to_each(snapshot_name(snapshot.uid),
                                          self._sealed_snapshot(snapshot), only=holders,
                                          others_later=True)

    def _sealed_snapshot(self, snapshot: Snapshot) -> bytes:
        plaintext = snapshot.encode()
        if len(plaintext) > MAX_SNAPSHOT_SIZE:
            raise FogVaultError(f"snapshot manifest too large ({len(plaintext)} bytes)")
        return self._seal(ObjectKind.SNAPSHOT, snapshot.uid.encode(), plaintext)

    def snapshot_uids(self) -> list[str]:
        names = self.targets.list(SNAPSHOTS_DIR)
        return sorted(uid for n in names if is_uid(uid := n[len(SNAPSHOTS_DIR) :]))

    def snapshot_locations(self) -> dict[str, list[str]]:
        """uid -> the URLs of the targets that hold it (a fresh listing of every target in
        use; unreachable targets hold nothing here)."""
        where: dict[str, list[str]] = {}
        for target, names in self.targets.list_each(SNAPSHOTS_DIR).items():
            for name in names:
                if is_uid(uid := name[len(SNAPSHOTS_DIR) :]):
                    where.setdefault(uid, []).append(target.url)
        return where

    def load_snapshot(self, uid: str) -> Snapshot:
        def decode(sealed: bytes) -> Snapshot:
            plaintext = self._unseal(ObjectKind.SNAPSHOT, uid.encode(), sealed, MAX_SNAPSHOT_SIZE)
            return Snapshot.decode(plaintext, uid)

        try:
            return self.targets.read_decoded(
                snapshot_name(uid), decode, 0, MAX_SNAPSHOT_SIZE + SEAL_OVERHEAD + 1
            )
        except ObjectNotFound as exc:
            raise SnapshotNotFound(f"no snapshot {uid}") from exc

    def snapshots(self, *, skip_unreadable: bool = True) -> list[Snapshot]:
        """All snapshots, oldest first. One that cannot be read (damaged on every target, or a
        read that failed) is skipped with a warning, or with ``skip_unreadable`` off raises:
        prune must not take what such a snapshot uses for unused (prune holds the exclusive
        lock, so no forget can have deleted one meanwhile). Otherwise one that every target,
        none dropped, now says is gone was deleted since the listing (a forget) and is left
        out."""

        def load(uid: str) -> Snapshot | None:
            try:
                return self.load_snapshot(uid)
            except FogVaultError as exc:
                name = snapshot_name(uid)
                if skip_unreadable and isinstance(exc, SnapshotNotFound) and (
                        self.gone_everywhere(name)):
                    for target in self.targets.targets:  # the failed read remembered it
                        self.targets.forget_damage(target.url, name)
                    log.debug("snapshot %s was deleted since the listing", uid)
                    return None
                if not skip_unreadable:
                    raise FogVaultError(f"snapshot {uid} cannot be read: {exc}") from exc
                log.warning("skipping snapshot %s: %s", uid, exc)
                self.unreadable_snapshots.add(uid)
                return None

        found = [s for s in self._map(load, self.snapshot_uids()) if s is not None]
        return sorted(found, key=newest_first, reverse=True)  # forget's order, reversed

    def gone_everywhere(self, name: str) -> bool:
        """True if every target, none of them dropped, answers that ``name`` is not there: a
        dropped or failing target might still hold it."""
        for target in self.targets.targets:
            if not target.active:
                return False
            try:
                if target.storage.exists(name):
                    return False
            except StorageError:
                return False
        return True

    def resolve_snapshot(self, ref: str, *, host: str | None = None,
                         tags: Sequence[str] = (), paths: Sequence[str] = ()) -> str:
        """A full uid from ``latest`` (the newest in :func:`newest_first`, as for ``forget``'s
        policy), of the snapshots of ``host`` with ``tags`` and ``paths`` if given (as restic's
        ``--host``/``--tag``/``--path``, which only choose what ``latest`` means), or from a
        unique uid prefix."""
        if ref == "latest":
            snapshots = self.snapshots()
            if not snapshots:
                raise SnapshotNotFound("the repository has no snapshots" + self._unreadable_note())
            chosen = select_snapshots(snapshots, host, tags, paths)
            if not chosen:
                raise SnapshotNotFound("no snapshot matches the --host/--tag/--path filters"
                                       + self._unreadable_note())
            return chosen[-1].uid
        ref = ref.lower()
        matches = [uid for uid in self.snapshot_uids() if uid.startswith(ref)]
        if not ref or not matches:
            raise SnapshotNotFound(f"no snapshot matches {ref!r}")
        if len(matches) > 1:
            raise AmbiguousPrefix(f"{ref!r} matches {len(matches)} snapshots; give more of the uid")
        return matches[0]

    def _unreadable_note(self) -> str:
        """For "no snapshot": the ones that could not be read, which may have matched."""
        if not self.unreadable_snapshots:
            return ""
        return (f"; {len(self.unreadable_snapshots)} cannot be read: "
                f"{', '.join(sorted(self.unreadable_snapshots))}")

    def delete_snapshot(self, uid: str) -> None:
        self.targets.delete(snapshot_name(uid))

    # ---- locks ---------------------------------------------------------------------------

    def lock_store(self) -> LockStore:
        return LockStore(self.targets, self._seal, self._unseal)

    def lock(
        self, *, exclusive: bool = False, retry_for: float = 0.0, writes: bool = True
    ) -> RepositoryLock | NoLock:
        """A lock to hold with ``with``: shared for adding, exclusive for deleting (prune).
        With ``use_locks`` off (``--no-lock``, for read-only targets) it does nothing, and is
        refused to commands that change the repository (``writes``)."""
        if not self.use_locks:
            if writes:
                raise UsageError("--no-lock is only for commands that read (restore, dump, mount, "
                                 "check)")
            return NoLock()
        hint = "" if writes else "a read-only repository can be read with --no-lock"
        return RepositoryLock(self.lock_store(), exclusive, max(retry_for, self.lock_wait), hint)

    # ---- keys --------------------------------------------------------------------------

    def key_files(self) -> list[KeyFile]:
        return _read_key_files(self.targets)

    def add_key(self, password: bytes, kdf: KdfParams = KDF_PROFILES[DEFAULT_KDF]) -> KeyFile:
        """Write a key file for another password, under a shared lock (it only adds)."""
        with self.lock():
            return self._write_key(password, kdf)

    def _write_key(self, password: bytes, kdf: KdfParams) -> KeyFile:
        key_file = KeyFile.create(self.master, password, kdf)
        self.targets.write(key_name(key_file.key_id), key_file.encode())
        return key_file

    def remove_key(self, key_id: str) -> str:
        """Remove the key file ``key_id`` names (its id or a unique prefix of it, as snapshot
        uids) and return its id: never the one in use, and only while every target holds the
        one in use: then each keeps a key that opens it. Under the exclusive lock, and checked
        on a listing taken under it: two removals at once would otherwise each see the other's
        key as the one left, and delete both."""
        with self.lock(exclusive=True):
            key_id = self._key_id_from_prefix(key_id)
            if key_id == self.key_id:
                raise UsageError(
                    "refusing to remove the key in use (use 'key passwd', or open with another "
                    "key)"
                )
            self._require_key_in_use_everywhere("remove a key")
            self.targets.delete(key_name(key_id))
        return key_id

    def _key_id_from_prefix(self, prefix: str) -> str:
        """The id of the one key file whose id starts with ``prefix``; a usage error if none
        or several do (key files that cannot be read count: they can be removed)."""
        prefix = prefix.lower()
        ids = [name[len(KEYS_DIR):] for name in self.targets.list(KEYS_DIR)]
        matches = [key_id for key_id in ids if key_id.startswith(prefix)]
        if not prefix or not matches:
            raise UsageError(f"no key {prefix} (see 'fogvault key list')")
        if len(matches) > 1:
            raise UsageError(f"{prefix!r} matches {len(matches)} keys; give more of the id")
        return matches[0]

    def _require_key_in_use_everywhere(self, action: str) -> None:
        """An error (exit 1: nothing is wrong with the command) unless every target, none
        dropped, lists the key in use (a target without it could be left with no key that opens
        it, or one only another password opens). Uses the last listing of ``keys/``, taken
        under the caller's lock."""
        away = [t.url for t in self.targets.targets if not t.active]
        if away:
            raise TargetsUnavailable(
                f"refusing to {action}: {', '.join(away)} cannot be reached, and a key is "
                "changed only when every target can be; run again once it is reachable")
        in_use = key_name(self.key_id)
        lacking = [t.url for t in self.targets.targets
                   if in_use not in (self.targets.last_listing(KEYS_DIR, t) or set())]
        if lacking:
            raise FogVaultError(
                f"refusing to {action}: {', '.join(lacking)} does not hold the key in use "
                f"({self.key_id}); run 'fogvault repair' first"
            )

    def change_password(
        self, new_password: bytes, kdf: KdfParams = KDF_PROFILES[DEFAULT_KDF]
    ) -> KeyFile:
        """Write a key file for the new password, then remove the old one: at every moment at
        least one of the two passwords opens the repository. The old key is removed only if
        the new one reached every target (else a target would open only with the old password,
        another only with the new one). Under the exclusive lock, as it deletes a key file like
        ``remove_key``."""
        with self.lock(exclusive=True):
            new_key = KeyFile.create(self.master, new_password, kdf)
            holders = self.targets.write(key_name(new_key.key_id), new_key.encode())
            missed = [t.url for t in self.targets.targets if t not in holders]
            if missed:
                raise TargetsBehind(
                    f"the new key {new_key.key_id} did not reach {', '.join(missed)}: the old "
                    "key is kept, so both passwords open the repository; run 'fogvault "
                    f"repair', then 'fogvault key remove {self.key_id}'")
            self.targets.delete(key_name(self.key_id))
        self.key_id = new_key.key_id
        self.key_bytes = new_key.encode()
        return new_key

    # ---- helpers -----------------------------------------------------------------------

    def _map(self, fn: Callable[[str], T], items: Iterable[str]) -> list[T]:
        """Parallel map for latency-bound reads (S3, SFTP): order is kept."""
        items = list(items)
        if len(items) < 4:
            return [fn(i) for i in items]
        return list(ordered_map(fn, items, workers=8))


def id_from_name_or_none(name: str) -> bytes | None:
    try:
        return id_from_name(name)
    except FogVaultError:
        log.warning("ignoring unexpected object %s", name)
        return None


def _try(load: Callable[..., T], *args: Any) -> T | FogVaultError:
    """``load(*args)``, or the FogVaultError it raised."""
    try:
        return load(*args)
    except FogVaultError as exc:
        return exc


def _decode_tree(tree_id: bytes, data: bytes) -> Tree:
    """The tree in ``data``; a malformed one is named, so that the error says which it is."""
    try:
        return Tree.decode(data)
    except MalformedObject as exc:
        raise MalformedObject(f"tree {tree_id.hex()}: {exc}") from exc


def _hash_checked(object_id: bytes) -> Callable[[bytes], bytes]:
    def check(data: bytes) -> bytes:
        if content_hash(data) != object_id:
            raise IntegrityError(f"object {object_id.hex()} does not match its name")
        return data

    return check


def _unseal_object(
    master: MasterKey, kind: bytes, ident: bytes, sealed: bytes, max_size: int
) -> bytes:
    payload = unseal(master.encryption, sealed, aad(kind, ident))
    return unpack_payload(payload, max_size)


def _open_all(
    urls: Iterable[str | Storage],
    target_options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Storage]:
    urls = list(urls)
    if not urls:
        raise UsageError("no repository given (use -r/--repo or FOGVAULT_REPO)")
    options = target_options or {}
    twice = repeated_target((u if isinstance(u, str) else u.url for u in urls), options)
    if twice:
        first, second = map(hide_password, twice)
        raise UsageError(f"the same target is given twice: {first!r} and {second!r}")
    return [open_storage(u, **options.get(u, {})) if isinstance(u, str) else u for u in urls]


def _make_cache(cache_dir: Path | None, use_cache: bool, repo_id: str) -> Cache | None:
    if not use_cache:
        return None
    try:
        return Cache(cache_dir or default_cache_dir(), repo_id)
    except OSError as exc:
        log.warning("cache disabled: %s", exc)
        return None


def _read_key_files(targets: TargetSet) -> list[KeyFile]:
    """Every well-formed key file; malformed ones are skipped with a warning."""
    key_files = []
    for name in sorted(targets.list(KEYS_DIR)):
        key_id = name[len(KEYS_DIR) :]
        try:
            if not is_uid(key_id):
                raise MalformedObject(f"unexpected key file name {key_id!r}")
            key_files.append(targets.read_decoded(
                name, lambda data, k=key_id: KeyFile.decode(k, data), 0, MAX_KEY_FILE_SIZE + 1
            ))
        except FogVaultError as exc:
            log.warning("ignoring key file %s: %s", key_id, exc)
    return key_files


#: what a repository holds besides its config and key files (docs/format.md, section 4)
_REPOSITORY_DIRS = (DATA_DIR, INDEX_DIR, SNAPSHOTS_DIR, LOCKS_DIR)


def _key_files_left(storage: Storage) -> list[str]:
    """The ids of the key files on a target init may take: one without a config, without
    anything under data/, index/, snapshots/ or locks/, whose keys/ holds only key files (an
    init interrupted between its key file and its config leaves that); RepositoryExists for
    any other repository, UsageError for a target holding other objects. The key files found
    are not deleted here: one may be an init's that is running now, which takes it back if it
    loses the config race, or needs it if it wins (and then this init fails at its config).
    Once this init's config is written, :func:`_write_config` deletes them where it reads that
    config back."""

    def exists() -> RepositoryExists:
        return RepositoryExists(f"{storage.url}: a repository already exists there")

    if storage.exists(CONFIG_NAME) or any(
            any(True for _ in storage.list(prefix)) for prefix in _REPOSITORY_DIRS):
        raise exists()
    if other := _other_object(storage):
        raise UsageError(f"{storage.url} is not empty (it holds {other!r}): a repository "
                         "needs an empty folder, or one that does not exist yet")
    found = []
    for info in storage.list(KEYS_DIR):
        key_id = info.name[len(KEYS_DIR) :]
        if not is_uid(key_id) or info.size > MAX_KEY_FILE_SIZE:
            raise exists()
        try:
            data = storage.read(info.name, 0, MAX_KEY_FILE_SIZE + 1)
        except ObjectNotFound:
            continue  # taken back by the init that wrote it, which lost a config race
        try:
            KeyFile.decode(key_id, data)
        except (IntegrityError, UnsupportedFormat):
            raise exists() from None  # not a key file this version can read: not ours to take
        found.append(key_id)
    return sorted(found)


def _other_object(storage: Storage) -> str | None:
    """The name of an object on ``storage`` that is no part of a repository, if one is found
    (borg also refuses to create a repository among other files: a mistyped target would mix
    the user's files with the repository's). A listing that fails part-way (a ``lost+found``
    only root can read, at the root of a new disk) finds nothing more: this is a guard against
    mistakes, not a rule of the format."""
    try:
        return next((info.name for info in storage.list() if not info.name.startswith(KEYS_DIR)),
                    None)
    except StorageError as exc:
        log.debug("%s: not listed in full (%s)", storage.url, exc)
        return None


def _key_ids(per_url: Mapping[str, list[str]]) -> list[str]:
    """The key ids of a url -> ids mapping, each once, sorted."""
    return sorted({key_id for ids in per_url.values() for key_id in ids})


def _removal_note(removed: Mapping[str, list[str]]) -> str:
    """One line naming the key files an init found and deleted, and why that was safe."""
    ids = _key_ids(removed)
    where = ", ".join(removed)
    if len(ids) == 1:
        return (f"{where}: removed key file {ids[0]}, left by an init that did not finish "
                "(it opens nothing here)")
    return (f"{where}: removed key files {', '.join(ids)}, left by inits that did not finish "
            "(they open nothing here)")


def _leftover_note(leftover: Mapping[str, list[str]]) -> str:
    """One line naming the key files an init found and kept (where it could not delete
    them, or the config there is not its own), and how to remove them."""
    ids = _key_ids(leftover)
    where = ", ".join(leftover)
    why = "there before this init (left by an interrupted init, or by one running now)"
    if len(ids) == 1:
        return (f"{where}: key file {ids[0]} was {why} and is kept; it does not open this "
                f"repository: 'fogvault key remove {ids[0]}' removes it")
    removals = " and ".join(f"'fogvault key remove {k}'" for k in ids)
    return (f"{where}: key files {', '.join(ids)} were {why} and are kept; they do not open "
            f"this repository: {removals} remove them")


def _probe_configs(targets: TargetSet) -> dict[Target, bytes | None]:
    """Read the config from every target at once (this also measures their latency). A target
    that cannot be read is dropped, unless none can, which raises the first error."""
    results = targets.read_each(CONFIG_NAME, 0, MAX_CONFIG_SIZE + SEAL_OVERHEAD + 1)
    errors = [(t, r) for t, r in results.items()
              if isinstance(r, StorageError) and not isinstance(r, ObjectNotFound)]
    if len(errors) == len(results):
        raise errors[0][1]
    for target, exc in errors:
        targets.drop(target, f"unreachable ({exc})")
    return {t: r if isinstance(r, bytes) else None
            for t, r in results.items() if not isinstance(r, StorageError) or
            isinstance(r, ObjectNotFound)}


def _write_config(targets: TargetSet, key_id: str, sealed: bytes,
                  leftover: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Write the config of a new repository whose key file ``key_id`` is written, and delete
    the key files found before (``leftover``: url -> ids) where it is stored; returns the ids
    deleted, per url.

    If another init got there first, take our key file back where the config is not ours: it
    wraps another master key, and would cost every open a key derivation for nothing (another
    init may have deleted it already, having found it: see below). Nothing else is deleted
    then.

    If the write succeeded, every key file found on a target before it wraps another master
    key than the config now there (an interrupted init's, or that of an init running now,
    whose config write will find ours and take its key back itself). Each is deleted on the
    targets the write succeeded on, and there only if the config read back is exactly ours: a
    target whose write failed is left alone, and so is one whose config turns out not to be
    ours (a server that does not enforce create-only writes let another init replace it). A
    failed deletion leaves the key file (named by the caller's warning)."""
    try:
        written = targets.write(CONFIG_NAME, sealed)
    except ObjectExists as exc:
        copies = targets.read_each(CONFIG_NAME, 0, MAX_CONFIG_SIZE + SEAL_OVERHEAD + 1)
        for target, copy in copies.items():
            if isinstance(copy, bytes) and copy != sealed:  # not on a read that failed
                with contextlib.suppress(StorageError):  # ObjectNotFound: already deleted
                    target.storage.delete(key_name(key_id))
        raise RepositoryExists(
            f"{exc.target}: another init created a repository there at the same time") from exc
    removed: dict[str, list[str]] = {}
    for target in written:
        found = leftover.get(target.url)
        if found and _config_is(target, sealed):
            removed[target.url] = [k for k in found if _delete_key_file(target, k)]
    return {url: ids for url, ids in removed.items() if ids}


def _config_is(target: Target, sealed: bytes) -> bool:
    """Whether the config stored on ``target`` is ``sealed`` (read back; False on an error)."""
    try:
        stored = target.storage.read(CONFIG_NAME, 0, MAX_CONFIG_SIZE + SEAL_OVERHEAD + 1)
    except StorageError as exc:
        log.debug("%s: config not read back (%s): key files found there are kept",
                  target.url, exc)
        return False
    if stored != sealed:
        log.warning("%s: the config there is not the one this init wrote (did another init "
                    "write one at the same time, on a server that does not enforce "
                    "create-only writes?)", target.url)
    return stored == sealed


def _delete_key_file(target: Target, key_id: str) -> bool:
    """Delete a key file an init found before its config; whether it is gone."""
    try:
        target.storage.delete(key_name(key_id))
    except ObjectNotFound:
        pass  # taken back by the init that wrote it, which lost the config race
    except StorageError as exc:
        log.debug("%s: key file %s not deleted (%s)", target.url, key_id, exc)
        return False
    return True


def _unlock(
    targets: TargetSet, password: bytes, configs: dict[Target, bytes | None]
) -> tuple[MasterKey, str, bytes, dict[Target, RepoConfig | None], list[str]]:
    """(master key, key id, the key file's bytes, the configs it verifies, the key files tried
    before it that open and wrap another master key): the first key file that opens with the
    password and whose master key verifies the config. A key file may open and wrap another
    master key (left by an init that lost a race to another, or was interrupted before its
    config): the next one is tried. Copies of the chosen key file that differ from it are
    remembered as damaged."""
    foreign: list[str] = []  # key files that open, but not the config
    scan = _KeyScan()
    for key_id, master, data, copies in _keys_opened_by(targets, password, scan):
        verified = _verify_configs(targets, master, configs)
        if not any(c is not None for c in verified.values()):
            foreign.append(key_id)
            continue
        for other_id in foreign:
            log.warning("key file %s opens with this password but wraps another master key (left"
                        " by another init?); 'fogvault key remove %s' removes it",
                        other_id, other_id)
        for target, other in copies:
            if other != data:
                targets.remember_damage(target.url, key_name(key_id))
        return master, key_id, data, verified, foreign
    if foreign:
        raise IntegrityError(
            f"this password opens only key file(s) {', '.join(foreign)}, whose master key "
            "verifies no config: the wrong password for this repository (those key files "
            "wrap another one), or the config is damaged on every target")
    if scan.damaged and len(scan.damaged) == scan.listed:
        raise IntegrityError(f"no key file can be read: {', '.join(scan.damaged)} "
                             f"{'is' if scan.listed == 1 else 'are'} damaged on every target "
                             "that holds it")
    if scan.damaged:  # the password may be right, and its key file the damaged one
        raise WrongPassword("wrong password: no key in the repository opens with it (key "
                            f"file(s) {', '.join(scan.damaged)} could not be read on any "
                            "target: if the password is right, its key file is damaged)")
    raise WrongPassword("wrong password: no key in the repository opens with it")


@dataclass(slots=True)
class _KeyScan:
    """What a search for the key file that a password opens found on the way."""

    listed: int = 0  # key files (with a valid name) tried
    damaged: list[str] = field(default_factory=list)  # those of which no copy can be decoded


def _keys_opened_by(
    targets: TargetSet, password: bytes, scan: _KeyScan
) -> Iterator[tuple[str, MasterKey, bytes, list[tuple[Target, bytes]]]]:
    """(key id, master key, the copy that opened, every readable copy) for each key file the
    password opens, sorted by name. Every copy is tried (a damaged copy on one target must not
    look like a wrong password)."""
    listings = targets.list_each(KEYS_DIR)
    names = sorted(set().union(*listings.values()))
    if not names:
        raise RepositoryNotFound(f"{', '.join(targets.urls)}: the repository has no key files")
    for name in names:
        key_id = name[len(KEYS_DIR) :]
        if not is_uid(key_id):
            log.warning("ignoring key file %s: unexpected key file name", key_id)
            continue
        scan.listed += 1
        copies = targets.read_each(name, 0, MAX_KEY_FILE_SIZE + 1)
        good = [(t, copy) for t in targets.read_order(name)
                if isinstance(copy := copies.get(t), bytes)]
        decoded = False
        for data in dict.fromkeys(data for _, data in good):
            try:
                master = KeyFile.decode(key_id, data).unlock(password)
            except FogVaultError as exc:  # malformed, or absurd KDF parameters
                log.warning("ignoring key file %s: %s", key_id, exc)
                continue
            decoded = True  # whether or not the password opens it
            if master is not None:
                yield key_id, master, data, good
                break
        if good and not decoded:
            scan.damaged.append(key_id)


def _raise_no_repository(targets: TargetSet) -> NoReturn:
    """No target that answered holds a config. With every target answering, one may be
    created there; else an unreachable target may hold it, and 'init' is no advice."""
    away = [t.url for t in targets.targets if not t.active]
    if not away:
        raise NoRepository(f"no repository at {', '.join(targets.urls)} (run 'fogvault init' "
                           "first)")
    answered = ", ".join(t.url for t in targets.active())  # some did: else the probe failed
    raise RepositoryNotFound(f"no repository at {answered}; {', '.join(away)} could not be "
                             "reached (it may hold it)")


def _why_empty(target: Target, key_files: set[str] | None) -> str:
    """Why a target without this repository's config or key files is not used: a mount point
    without its disk, or another init's leftovers ('target add' refuses those)."""
    if key_files:
        return ("no repository there: no config, and key files that are not this repository's "
                "(left by an init that did not finish?)")
    return (f"no repository there (not mounted? to make it a copy of this repository, use "
            f"'fogvault target add {target.url}')")


def _verify_configs(
    targets: TargetSet, master: MasterKey, configs: dict[Target, bytes | None]
) -> dict[Target, RepoConfig | None]:
    """Each target's config as ``master`` decrypts it, or None where it fails verification
    (targets without a config are left out)."""
    verified: dict[Target, RepoConfig | None] = {}
    for target in targets.read_order(CONFIG_NAME):
        sealed = configs.get(target)
        if sealed is None:
            continue
        try:
            verified[target] = RepoConfig.decode(
                _unseal_object(master, ObjectKind.CONFIG, b"", sealed, MAX_CONFIG_SIZE))
        except IntegrityError:
            verified[target] = None
    return verified


def _check_same_repository(
    targets: TargetSet, verified: dict[Target, RepoConfig | None], drop_empty: bool
) -> RepoConfig:
    """The repository's config, after checking that every target holds this repository (same
    master key and id; ``verified`` from :func:`_verify_configs`, with at least one config). A
    target whose config is missing or fails verification but which holds one of this
    repository's key files is a damaged copy: it is used, and its config is remembered for
    repair. A target without a config or a key file (a disk that is not mounted) is refused,
    unless the others are enough for ``--min-targets`` or ``drop_empty`` is set: then it is left
    out of this run, as an unreachable target is, and marked ``empty``. Anything else is
    refused."""
    ref_target, config = next((t, c) for t, c in verified.items() if c is not None)
    our_keys = targets.last_listing(KEYS_DIR, ref_target) or set()
    empty: list[Target] = []
    for target in targets.active():
        other = verified.get(target)
        if other is not None:
            if other.repo_id != config.repo_id:
                raise DifferentRepository(
                    f"{target.url} holds a different repository than {ref_target.url}")
            continue
        if not our_keys & (targets.last_listing(KEYS_DIR, target) or set()):
            if target in verified:
                raise DifferentRepository(
                    f"{target.url} holds a different repository than {ref_target.url}")
            empty.append(target)
            continue
        problem = "fails verification" if target in verified else "is missing"
        targets.remember_damage(target.url, CONFIG_NAME)
        log.warning("%s: the config %s; 'fogvault repair' restores it", target.url, problem)
    for target in empty:
        why = _why_empty(target, targets.last_listing(KEYS_DIR, target))
        left = len(targets.active()) - len(empty)
        if not drop_empty and left < targets.min_targets:
            way_on = (f"; to go on without it, leave it out or give --min-targets {left}"
                      if left else "")
            raise RepositoryNotFound(f"{target.url}: {why}{way_on}")
        target.empty = True
        targets.drop(target, why)
    return config


__all__ = ["BlobType", "Repository"]
