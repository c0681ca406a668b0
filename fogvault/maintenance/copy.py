"""``copy``: snapshots of one repository saved in another (restic's ``copy``).

The chosen snapshots of the source (uids, ``latest`` and the --host/--tag/--path filters, as
``find`` takes them) are saved in the destination, oldest first, each under a new uid with
everything else as it was (time, host, user, paths, tags, summary, warnings, the writer's
version) but ``parent``, which names a snapshot of the source (None, as restic does), and
``original`` (below).

**Which snapshots are copies already.** A copy records in ``original`` the uid of the snapshot
it copies (that snapshot's own ``original`` if it has one, so a copy of a copy names the first
snapshot). A source snapshot is skipped if the destination holds a snapshot whose uid or
``original`` is the source's ``original`` (else its uid) and whose time, host, user, paths and
tags are the same (restic's rule, without the tree, whose id differs between repositories
with different identity keys). So a second copy copies nothing, a copy back into the first
repository too, and a snapshot retagged in either repository is copied again, as in restic.

**Blobs.** Two repositories made with ``init --copy-chunker-params`` share the identity key
(docs/format.md: blob ids and chunk boundaries): every blob has the same id in both, and only
the blobs the destination's index lacks are read from the source (a tree it has is read from
the destination, to walk it); trees keep their bytes. Between unrelated repositories every
data blob the snapshots use is read and stored under the destination's id of its plaintext,
and every tree is encoded again with the new ids, bottom-up (``treefold``); chunk boundaries
stay the source's. Either way, within one run each source blob is read once, however many
snapshots use it, and each tree walked once (the ids met are remembered for the run: 120
bytes a blob with shared ids, 180 without). The destination stores through its own pack
writer (``stored_blobs``), so its targets, replication and ``min_targets`` apply as for a
backup.

**Reads.** Trees are read a batch at a time (``TREE_BATCH``): the one the rebuild needs with
those it will need next, as far as the trees read so far tell; then the data of all their
files, each pack's share in ranged reads. So a round trip per batch, not per folder (on SFTP,
3,000 folders: 61 reads of the source instead of 6,009). The trees read ahead hold at most
``TREE_WINDOW`` bytes; to make room, those the rebuild needs last are dropped and read again
(ahead again once at most: ``TREE_DROPS``).

**Failures.** A source blob that no target holds intact, or a tree that cannot be read or is
malformed, fails the snapshots that use it: they are not saved (none is saved whose data the
destination lacks), the others are. So does a tree that the destination holds (shared ids) and
cannot give; each failure names the repository to check. Anything else (a target that cannot
be reached, a lock lost) ends the run. Each snapshot's blobs are stored and indexed before its
manifest is saved, so an interrupted run leaves the snapshots it finished and no other; a rerun
skips them.

Locks: a shared lock on the source (``writes=False``: with ``use_locks`` off, none, for a
read-only source; an error taking it says it is the source's), and on the destination the lock
a backup takes; a dry run takes none there and reads no data blob: it walks the trees and
counts what a copy would read.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections import Counter
from collections.abc import Callable, Container, Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Literal

from fogvault.backup.saver import BlobSaver, stored_blobs
from fogvault.errors import (
    FogVaultError,
    MalformedObject,
    UnsafePath,
    UnsupportedFormat,
    UsageError,
    prefix_message,
)
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.selection import chosen_snapshots
from fogvault.maintenance.treefold import fold_trees, refuse_newer_writer, with_subtree
from fogvault.repo.format import BlobType
from fogvault.repo.index import IndexEntry
from fogvault.repo.lock import NoLock, RepositoryLock
from fogvault.repo.pack import pack_spans
from fogvault.repo.repository import BlobDamage, Repository, is_damage
from fogvault.repo.snapshot import Snapshot, new_uid
from fogvault.repo.tree import DIR, FILE, Node, Tree

READ_SPAN = 4 * 1024 * 1024  # bytes of a source pack read at once
READERS = 2  # threads reading source spans while the caller stores what they read
FETCH_BATCH = 4096  # data blobs looked up and read together (a batch of folders' files)
TREE_BATCH = 256  # trees read together (as check's mark), then the data of their files
#: bytes (plaintext) of the trees read and waiting for the rebuild, at most. Decoded, a tree
#: takes ~3.4 times its bytes (~290 bytes an entry, ~1 KB with its Node): ~14 MB, hundreds of
#: ordinary folders. The rebuild itself holds the trees of the folders it is in, as before.
TREE_WINDOW = 4 * 1024 * 1024
#: times a tree read ahead may be dropped from the window; then it is read when the rebuild
#: asks for it, no longer ahead. So a tree is read TREE_DROPS + 1 times at most (a tree far
#: ahead, read whenever there was room, was dropped for the trees found before it at every
#: level of a deep folder, and read again each time). Not 1: the folders of a wide folder,
#: dropped for its first folder's, would be read a batch each (2,000 of them: 1,522 batches
#: instead of 202, simulated), where now most are read ahead again together.
TREE_DROPS = 2


@dataclass(slots=True)
class CopyOptions:
    uids: list[str] = field(default_factory=list)  # none: every snapshot the filters select
    host: str | None = None
    tags: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    dry_run: bool = False


@dataclass(slots=True)
class Copied:
    source_uid: str
    uid: str | None  # the copy's in the destination; None in a dry run


@dataclass(slots=True)
class Skipped:
    source_uid: str
    copy_uid: str  # the destination's snapshot that is its copy


@dataclass(slots=True)
class Failed:
    source_uid: str
    error: str  # one line
    #: the repository whose damage it is, the one to check; None if it is not damage (a
    #: snapshot written by a newer FogVault)
    repository: Side | None = None


@dataclass(slots=True)
class CopyResult:
    copied: list[Copied] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    #: the two share the identity key (``init --copy-chunker-params``): blobs keep their ids,
    #: and those the destination has are not read
    same_ids: bool = False
    # read from the source (in a dry run: what a copy would read); bytes as plaintext
    data_blobs_read: int = 0
    tree_blobs_read: int = 0
    bytes_read: int = 0
    # stored in the destination (none in a dry run); bytes as stored
    data_blobs_added: int = 0
    tree_blobs_added: int = 0
    bytes_added: int = 0
    duration_s: float = 0.0
    dry_run: bool = False


def copy(source: Repository, destination: Repository, options: CopyOptions | None = None,
         progress: PhaseProgress | None = None) -> CopyResult:
    """Save the snapshots ``options`` chooses from ``source`` in ``destination`` (see the
    module doc). Each copied snapshot is a phase of ``progress``, advanced per blob read; a
    snapshot that fails is a warning too."""
    options = options or CopyOptions()
    progress = progress or PhaseProgress()
    started = time.monotonic()
    if source.config.repo_id == destination.config.repo_id:
        raise UsageError(f"{', '.join(source.targets.urls)} and "
                         f"{', '.join(destination.targets.urls)} hold the same repository: "
                         "copy between different repositories ('fogvault target add' makes "
                         "another target of one)")
    copier = _Copier(source, destination, progress, options.dry_run)
    result = CopyResult(same_ids=copier.same_ids, dry_run=options.dry_run)
    with _lock(source, "source", writes=False), \
            _lock(destination, "destination") if not options.dry_run else NoLock() as lock:
        # Under the locks: a prune that ran since either was opened replaced index files.
        source.load_index()
        destination.load_index()
        if not options.dry_run:  # as a backup: fail before storing anything if it cannot commit
            destination.mark_behind_targets()
            destination.targets.require_quorum("copy not started")
        chosen = chosen_snapshots(source, options.uids, options.host, options.tags,
                                  options.paths)
        copies = _Copies(destination.snapshots(), compare_trees=copier.same_ids)
        pending = [s for s in chosen if not _skipped(s, copies, result)]
        for number, snapshot in enumerate(pending, 1):
            progress.phase(f"snapshot {snapshot.uid} ({number} of {len(pending)})")
            if _skipped(snapshot, copies, result):  # alike one copied in this run
                continue
            copy_of = _copy_one(copier, snapshot, result, lock.ensure_fresh)
            if copy_of is not None:
                copies.add(copy_of)
    result.data_blobs_read, result.tree_blobs_read = copier.data_read, copier.trees_read
    result.bytes_read = copier.bytes_read
    result.duration_s = round(time.monotonic() - started, 3)
    return result


@contextmanager
def _lock(repo: Repository, side: Side, *, writes: bool = True
          ) -> Iterator[RepositoryLock | NoLock]:
    """``repo.lock(writes=writes)``, held for the block. An error taking it starts with the
    repository it is about (``side`` and its URLs): both are locked, and a lock's errors (a lock
    file a read-only repository cannot hold, a lock another process holds) do not say which."""
    with ExitStack() as held:
        try:
            lock = held.enter_context(repo.lock(writes=writes))
        except FogVaultError as exc:
            prefix_message(exc, f"{side} repository {', '.join(repo.targets.urls)}: ")
            raise
        yield lock


def _skipped(snapshot: Snapshot, copies: _Copies, result: CopyResult) -> bool:
    """Whether the destination has a copy of ``snapshot`` (then recorded in ``result``)."""
    earlier = copies.of(snapshot)
    if earlier is not None:
        result.skipped.append(Skipped(snapshot.uid, earlier.uid))
    return earlier is not None


def _copy_one(copier: _Copier, snapshot: Snapshot, result: CopyResult,
              ensure_fresh: Callable[[], None]) -> Snapshot | None:
    """Copy one snapshot: its blobs stored and indexed, then (not in a dry run) its manifest.
    Returns the copy, or None if it failed (recorded in ``result``, and a warning)."""
    destination = copier.destination
    failure: Failed | None = None
    # The block ends normally when the source fails this snapshot, so that what it stored is
    # indexed (the copier remembers it for the snapshots that share it).
    with stored_blobs(destination, dry_run=result.dry_run, before_index=ensure_fresh) as saver:
        try:
            if not copier.same_ids:  # its trees are encoded again
                refuse_newer_writer(snapshot, "copy")
            tree = copier.root(saver, snapshot.tree)
        except _NotCopied as exc:
            failure = Failed(snapshot.uid, str(exc), exc.repository)
        except UnsupportedFormat as exc:
            failure = Failed(snapshot.uid, str(exc))
    if not result.dry_run:
        result.data_blobs_added += saver.blobs_added[BlobType.DATA]
        result.tree_blobs_added += saver.blobs_added[BlobType.TREE]
        result.bytes_added += saver.bytes_added
    if failure is not None:
        result.failed.append(failure)
        copier.progress.warning(f"snapshot {snapshot.uid} not copied: {failure.error}")
        return None
    the_copy = dataclasses.replace(snapshot, uid=new_uid(), tree=tree, parent=None,
                                   original=snapshot.original or snapshot.uid)
    if not result.dry_run:
        ensure_fresh()  # a stale lock may have let a prune delete what it names
        destination.save_snapshot(the_copy)
    result.copied.append(Copied(snapshot.uid, None if result.dry_run else the_copy.uid))
    return the_copy


class _Copies:
    """The destination's snapshots by the uid of what they are copies of (their ``original``,
    and their own uid: a copy back into the repository it came from)."""

    def __init__(self, snapshots: list[Snapshot], *, compare_trees: bool) -> None:
        """``compare_trees``: the repositories share blob ids, so a copy has its original's
        tree id."""
        self.compare_trees = compare_trees
        self._by_origin: dict[str, list[Snapshot]] = {}
        for snapshot in snapshots:
            self.add(snapshot)

    def add(self, snapshot: Snapshot) -> None:
        self._by_origin.setdefault(snapshot.uid, []).append(snapshot)
        if snapshot.original is not None:
            self._by_origin.setdefault(snapshot.original, []).append(snapshot)

    def of(self, snapshot: Snapshot) -> Snapshot | None:
        """The destination's copy of ``snapshot``, if it has one."""
        origin = snapshot.original or snapshot.uid
        return next((held for held in self._by_origin.get(origin, [])
                     if _alike(held, snapshot)
                     and (not self.compare_trees or held.tree == snapshot.tree)), None)


def _alike(a: Snapshot, b: Snapshot) -> bool:
    """restic's test of a copy (``similarSnapshots``) but the tree, which only repositories
    that share blob ids can compare: the same time, host, user, paths and tags."""
    return (a.time == b.time and a.host == b.host and a.user == b.user
            and sorted(a.paths) == sorted(b.paths) and sorted(a.tags) == sorted(b.tags))


#: which repository a failure is about: the one to check
Side = Literal["source", "destination"]


class _NotCopied(Exception):
    """A repository cannot give a snapshot's data (damage): that snapshot is not copied.
    ``repository`` says which, for the check to run."""

    def __init__(self, message: str, repository: Side = "source") -> None:
        super().__init__(message)
        self.repository: Side = repository


#: a tree's place in a snapshot: the index of each folder on the way down from the root among
#: its folder's folders, 4 bytes each (big-endian). The rebuild asks for trees in the order of
#: their places (depth-first), so comparing two places tells which tree it asks for first: as
#: bytes, at C speed, where tuples of ints compared an int at a time in Python (a heap's pop
#: took 20 µs 300 folders deep), and in 4 bytes a level instead of 8 or more.
Place = bytes


def _below(place: Place, index: int) -> Place:
    """The place of the ``index``-th folder of the tree at ``place``."""
    return place + index.to_bytes(4, "big")


@dataclass(slots=True)
class _Read:
    """A tree read for the rebuild."""

    tree: Tree
    #: its bytes as read from the source; None if read from the destination, which has it
    plaintext: bytes | None


@dataclass(slots=True, eq=False)
class _Waiting:
    """A tree read ahead (or why it cannot be read), waiting for the rebuild to ask for it."""

    tree_id: bytes
    place: Place  # where it was met
    size: int  # its bytes, as the window counts them
    read: _Read | _NotCopied

    def __lt__(self, other: _Waiting) -> bool:
        """The later place first: the top of a heap of them is the one asked for last."""
        return self.place > other.place


@dataclass(slots=True)
class _Visit:
    """A tree the rebuild is in."""

    tree_id: bytes
    place: Place
    subtrees: list[bytes]  # its folders' trees
    next: int = 0  # the index in ``subtrees`` of the next one the rebuild may ask for


class _ReadAhead:
    """The trees of one snapshot, read a batch at a time for the rebuild (``fold_trees``),
    which asks for them one by one, depth-first. A tree not read yet is read with the next
    ones the rebuild will ask for, as far as the trees read tell (up to TREE_BATCH of them):
    a round trip per batch instead of per tree. The trees read ahead hold at most TREE_WINDOW
    bytes; to make room for trees asked for sooner, those asked for last are dropped (read
    again later: ahead again while dropped fewer than TREE_DROPS times).

    Each tree read gives the places of its folders' trees: those not read wait in a heap by
    place, the trees read ahead in one with the last place on top. So a batch costs in
    proportion to the trees it reads and drops, however many wait (a chain of folders, each
    read alone since its folder is known only once its parent is, once walked every tree in
    the window)."""

    def __init__(self, read_batch: Callable[[list[bytes]], dict[bytes, _Read | _NotCopied]],
                 size: Callable[[bytes], int], done: Container[bytes]) -> None:
        """``read_batch`` reads trees (each, or why it cannot be); ``size``: a tree's bytes,
        from the index; ``done``: the trees the rebuild has finished, which it does not ask
        for again."""
        self._read_batch = read_batch
        self._size = size
        self._done = done
        self._waiting: dict[bytes, _Waiting] = {}
        self._waiting_bytes = 0
        #: heap of the trees waiting, the last place on top (and of some taken since: skipped)
        self._last: list[_Waiting] = []
        #: heap of (place, tree id) of the folders of the trees read, first place on top;
        #: those read since, finished or met at an earlier place are skipped when on top
        self._unread: list[tuple[Place, bytes]] = []
        #: how often each tree was dropped from the window (TREE_DROPS)
        self._drops: Counter[bytes] = Counter()
        #: the trees the rebuild is in, from the root down; and their ids
        self._visits: list[_Visit] = []
        self._visited: set[bytes] = set()

    def take(self, tree_id: bytes) -> _Read:
        """The tree ``tree_id``, which the rebuild visits now; _NotCopied if it cannot be read."""
        place = self._place_of(tree_id)
        waiting = self._waiting.pop(tree_id, None)
        if waiting is None:
            read = self._read_with_next(tree_id, place)
        else:
            self._waiting_bytes -= waiting.size
            read = waiting.read
            if isinstance(read, _Read) and waiting.place != place:  # met at a later place
                self._learn(read.tree, place)
        if isinstance(read, _NotCopied):
            raise read
        self._visits.append(_Visit(tree_id, place, _subtrees(read.tree)))
        self._visited.add(tree_id)
        return read

    def _place_of(self, tree_id: bytes) -> Place:
        """The place at which the rebuild asks for ``tree_id``: b"" for the root, else the next
        folder of the tree it is in that is not done (it finished those before, or skipped
        them), the trees it finished left."""
        while self._visits:
            visit = self._visits[-1]
            while (visit.next < len(visit.subtrees)
                   and visit.subtrees[visit.next] in self._done):
                visit.next += 1
            if visit.next < len(visit.subtrees):
                assert visit.subtrees[visit.next] == tree_id, "the rebuild goes depth-first"
                visit.next += 1
                return _below(visit.place, visit.next - 1)
            self._visits.pop()
            self._visited.discard(visit.tree_id)
        return b""

    def _read_with_next(self, tree_id: bytes, place: Place) -> _Read | _NotCopied:
        """Read ``tree_id`` (asked for at ``place``) with the trees not read of the first places
        known, while they fit in the window with the trees waiting for earlier places (those
        waiting for later ones are dropped to make room). The others read wait."""
        places, sizes = {tree_id: place}, {tree_id: 0}
        batch_bytes = 0  # of the trees read ahead (the one asked for is not in the window)
        while len(places) < TREE_BATCH:
            first = self._first_unread(places)
            if first is None:
                break
            next_place, next_id = first
            size = self._size(next_id)
            if not self._make_room(batch_bytes + size, next_place):
                break
            heapq.heappop(self._unread)
            places[next_id], sizes[next_id] = next_place, size
            batch_bytes += size
        found = self._read_batch(list(places))
        for read_id, read in found.items():
            if isinstance(read, _Read):
                self._learn(read.tree, places[read_id])
            if read_id != tree_id:
                self._wait(_Waiting(read_id, places[read_id], sizes[read_id], read))
        return found[tree_id]

    def _first_unread(self, chosen: Container[bytes]) -> tuple[Place, bytes] | None:
        """The first place known of a tree neither read (``chosen`` for this batch, or
        waiting) nor visited, nor dropped TREE_DROPS times, and that tree; the entries before
        it are forgotten."""
        while self._unread:
            place, tree_id = self._unread[0]
            if not (tree_id in chosen or tree_id in self._waiting or tree_id in self._done
                    or tree_id in self._visited or self._drops[tree_id] >= TREE_DROPS):
                return place, tree_id
            heapq.heappop(self._unread)
        return None

    def _make_room(self, size: int, place: Place) -> bool:
        """Whether ``size`` bytes more fit in the window, once the trees waiting for places
        after ``place`` are dropped as needed, the last first."""
        if size > TREE_WINDOW:  # never: keep them
            return False
        while self._waiting_bytes + size > TREE_WINDOW:
            while self._last and self._waiting.get(self._last[0].tree_id) is not self._last[0]:
                heapq.heappop(self._last)  # taken since
            if not self._last or self._last[0].place < place:
                return False
            dropped = heapq.heappop(self._last)
            del self._waiting[dropped.tree_id]
            self._waiting_bytes -= dropped.size
            self._drops[dropped.tree_id] += 1
            heapq.heappush(self._unread, (dropped.place, dropped.tree_id))
        return True

    def _wait(self, waiting: _Waiting) -> None:
        self._waiting[waiting.tree_id] = waiting
        self._waiting_bytes += waiting.size
        if len(self._last) > 2 * len(self._waiting) + TREE_BATCH:  # mostly taken: left behind
            self._last = list(self._waiting.values())
            heapq.heapify(self._last)
        else:
            heapq.heappush(self._last, waiting)

    def _learn(self, tree: Tree, place: Place) -> None:
        """Note the places of the folders of ``tree`` (which is at ``place``): the first of
        each tree, for one not done."""
        met: set[bytes] = set()
        for index, subtree in enumerate(_subtrees(tree)):
            if subtree not in met and subtree not in self._done:
                met.add(subtree)
                heapq.heappush(self._unread, (_below(place, index), subtree))


def _subtrees(tree: Tree) -> list[bytes]:
    """The trees of ``tree``'s folders, in its order (the rebuild's)."""
    return [node.subtree for node in tree.nodes if node.type == DIR and node.subtree is not None]


class _Copier:
    """Makes the trees of source snapshots present in the destination, each tree and blob once
    per run (memoised by source id: what a snapshot stored is indexed before the next one
    starts, even when that snapshot fails)."""

    def __init__(self, source: Repository, destination: Repository, progress: PhaseProgress,
                 dry_run: bool) -> None:
        self.source = source
        self.destination = destination
        self.progress = progress
        self.dry_run = dry_run
        self.same_ids = source.master.identity == destination.master.identity
        self.trees: dict[bytes, bytes] = {}  # source tree id -> destination tree id
        self.data: dict[bytes, bytes] = {}  # source data blob id -> destination id
        self.unreadable: dict[bytes, str] = {}  # source blob id -> why it cannot be read
        self.saver: BlobSaver | None = None
        self.ahead: _ReadAhead | None = None
        self.data_read = self.trees_read = self.bytes_read = 0

    def root(self, saver: BlobSaver, tree_id: bytes) -> bytes:
        """The destination's id of the source tree ``tree_id``, everything below it stored
        through ``saver``. _NotCopied if the source cannot give some of it."""
        self.saver = saver
        self.ahead = _ReadAhead(self._read_trees, self._tree_size, self.trees)
        return fold_trees(tree_id, self._tree, self.trees)

    def _tree(self, tree_id: bytes) -> Generator[bytes, bytes, bytes]:
        """One tree (its files' data stored when it was read): its folders' trees (yielded),
        then itself."""
        assert self.ahead is not None, "root() sets it"
        read = self.ahead.take(tree_id)
        if read.plaintext is not None:  # from the source: counted once, even if read again
            self._count_read(len(read.plaintext), tree=True)
        nodes: list[Node] = []
        for node in read.tree.nodes:
            if node.type == DIR and node.subtree is not None:
                node = with_subtree(node, (yield node.subtree))
            elif node.type == FILE and not self.same_ids:
                # in place: the tree was decoded for this visit alone (taken from the read
                # ahead, which keeps no other reference), and dataclasses.replace was a tenth
                # of a copy's time
                node.content = [self.data[b] for b in node.content]
            nodes.append(node)
        if self.same_ids:
            if read.plaintext is not None and not self.dry_run:  # the same bytes, the same id
                self._saver().save(BlobType.TREE, read.plaintext, tree_id)
            return tree_id
        if self.dry_run:  # its new id would need the data's, which a dry run does not read
            return tree_id
        return self._saver().save(BlobType.TREE, Tree(nodes).encode())

    def _tree_size(self, tree_id: bytes) -> int:
        """The bytes of the tree ``tree_id`` (0 if the index lacks it)."""
        entry = self._locate(tree_id)[1]
        return 0 if entry is None else entry.raw_length

    def _locate(self, tree_id: bytes) -> tuple[Repository, IndexEntry | None]:
        """Where the tree ``tree_id`` is read, and its entry there: with shared ids, the
        destination if it has it (only what it lacks is read from the source)."""
        if self.same_ids:
            entry = self.destination.index.get(tree_id)
            if entry is not None:
                return self.destination, entry
        return self.source, self.source.index.get(tree_id)

    def _read_trees(self, tree_ids: list[bytes]) -> dict[bytes, _Read | _NotCopied]:
        """The trees ``tree_ids`` (each, or why it cannot be read), the data of their files
        made present in the destination (all of it at once)."""
        found: dict[bytes, _Read | _NotCopied] = {}
        held: list[IndexEntry] = []
        lacking: list[IndexEntry] = []
        for tree_id in tree_ids:
            repo, entry = self._locate(tree_id)
            if entry is None:  # only the source's can lack one: the destination's is looked up
                found[tree_id] = _NotCopied(f"tree {tree_id.hex()} cannot be read (it is not "
                                            "in the source's index)")
            else:
                (held if repo is self.destination else lacking).append(entry)
        found |= self._read_from(self.destination, held) | self._read_from(self.source, lacking)
        self._fetch([blob for read in found.values() if isinstance(read, _Read)
                     for node in read.tree.nodes if node.type == FILE for blob in node.content])
        return found

    def _read_from(self, repo: Repository, entries: list[IndexEntry]
                   ) -> dict[bytes, _Read | _NotCopied]:
        """The trees of ``entries`` read from ``repo`` (each, or why it cannot be), in pack
        order. A blob that authenticates but is not what its id says fails the whole read:
        then those not read yet are read one by one, so that only that one fails."""
        found: dict[bytes, _Read | _NotCopied] = {}
        try:
            for entry, blob in _read_blobs(repo, entries):
                found[entry.blob_id] = self._decoded(repo, entry.blob_id, blob)
        except MalformedObject:
            for entry in [entry for entry in entries if entry.blob_id not in found]:
                found[entry.blob_id] = self._decoded(repo, entry.blob_id,
                                                     _loaded_or_error(repo, entry.blob_id))
        return found

    def _decoded(self, repo: Repository, tree_id: bytes, blob: bytes | FogVaultError
                 ) -> _Read | _NotCopied:
        """The tree ``blob`` read from ``repo`` holds, or why it is not one (the error a
        read gave, or the tree's own)."""
        if isinstance(blob, bytes):
            try:
                # the destination stores it already: its bytes are not needed
                return _Read(Tree.decode(blob), None if repo is self.destination else blob)
            except (MalformedObject, UnsafePath) as exc:
                blob = exc
        _raise_if_not_damage(blob)
        if repo is self.destination:
            return _NotCopied(f"tree {tree_id.hex()} cannot be read from the destination "
                              f"({_first_line(blob)})", "destination")
        return _NotCopied(f"tree {tree_id.hex()} cannot be read ({_first_line(blob)})")

    def _fetch(self, blob_ids: list[bytes]) -> None:
        """Make the data blobs ``blob_ids`` present in the destination (``self.data`` maps
        each to its id there): those it lacks (with other ids, all of them) are read from the
        source, in pack order, and stored. _NotCopied, once every other one is stored, if one
        cannot be read."""
        wanted = [blob_id for blob_id in dict.fromkeys(blob_ids) if blob_id not in self.data
                  and not (self.same_ids and blob_id in self.destination.index)]
        known_bad = next((self.unreadable[b] for b in wanted if b in self.unreadable), None)
        if known_bad is not None:
            raise _NotCopied(known_bad)
        failure: _NotCopied | None = None
        for start in range(0, len(wanted), FETCH_BATCH):
            try:
                self._fetch_batch(wanted[start : start + FETCH_BATCH])
            except _NotCopied as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _fetch_batch(self, blob_ids: list[bytes]) -> None:
        entries = []
        for blob_id in blob_ids:
            entry = self.source.index.get(blob_id)
            if entry is None:
                raise self._unreadable(blob_id, "it is not in the source's index")
            entries.append(entry)
        if self.dry_run:
            for entry in entries:
                self.data[entry.blob_id] = entry.blob_id  # stands in for the new id
                self._count_read(entry.raw_length, tree=False)
            return
        failure = None
        for entry, blob in _read_blobs(self.source, entries):
            if not isinstance(blob, bytes):
                failure = failure or self._unreadable(entry.blob_id, _first_line(blob))
                continue
            self._count_read(len(blob), tree=False)
            self.data[entry.blob_id] = self._saver().save(
                BlobType.DATA, blob, entry.blob_id if self.same_ids else None)
        if failure is not None:
            raise failure

    def _unreadable(self, blob_id: bytes, why: str) -> _NotCopied:
        """Remember that ``blob_id`` cannot be read (the snapshots after this one that use it
        fail without reading it again), and the error that says so."""
        message = f"data blob {blob_id.hex()} cannot be read ({why})"
        self.unreadable[blob_id] = message
        return _NotCopied(message)

    def _count_read(self, size: int, *, tree: bool) -> None:
        if tree:
            self.trees_read += 1
        else:
            self.data_read += 1
        self.bytes_read += size
        self.progress.advance()

    def _saver(self) -> BlobSaver:
        assert self.saver is not None, "root() sets it"
        return self.saver


def _raise_if_not_damage(error: FogVaultError) -> None:
    """Raise ``error`` unless it is about the data (damaged, missing or malformed), which fails
    one snapshot: a target that cannot be reached fails the run."""
    if not (is_damage(error) or isinstance(error, MalformedObject | UnsafePath)):
        raise error


def _read_blobs(repo: Repository, entries: list[IndexEntry]
                ) -> Iterator[tuple[IndexEntry, bytes | BlobDamage]]:
    """The blobs ``entries`` from ``repo``, in pack order: each pack's share in reads of up to
    READ_SPAN bytes, READERS at once. A blob that no target holds intact comes with its error
    (``read_spans``' salvage); other errors raise."""
    by_pack: dict[bytes, list[IndexEntry]] = {}
    for entry in entries:
        by_pack.setdefault(entry.pack_id, []).append(entry)
    spans = [span for group in by_pack.values() for span in pack_spans(group, READ_SPAN)]
    for span in repo.read_spans(spans, threads=READERS if len(spans) > 1 else 0, ahead=READERS,
                                salvage=True):
        yield from span


def _loaded_or_error(repo: Repository, blob_id: bytes) -> bytes | FogVaultError:
    try:
        return repo.load_blob(blob_id)
    except FogVaultError as exc:
        return exc


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]
