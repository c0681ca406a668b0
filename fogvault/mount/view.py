"""The file system a mount shows, without FUSE: paths to entries, folder listings and file
contents, over one open repository. The FUSE adapter (``fogvault.mount.fuse_ops``) only
translates; this is what the unit tests drive.

Paths are bytes, absolute within the mount (``/ids/<uid>/home/me/notes.txt``). Failures are the
``OSError`` a file system would give: ``FileNotFoundError`` (ENOENT), ``NotADirectoryError``
(ENOTDIR), and ``OSError(EIO)`` for data that cannot be read (a chunk or a folder's listing
damaged on every target, a target that cannot be reached), which also logs one warning per
distinct failure. A chunk that could not be loaded fails the reads that need it at once, without
loading it again, for ``FAILURE_KEPT_S`` seconds (``fogvault.mount.chunks``: the kernel asks
again after a failed read), then is loaded again.

What an entry shows (:class:`Entry`):

- An entry of a snapshot shows its stored type, mode, owner ids, size, modification and change
  times (to the nanosecond; the access time is the modification time), link target, device
  numbers and extended attributes. A file keeps its stored link count, and the names of one
  hard-linked file within one snapshot share an inode number; a folder shows 1 link (as btrfs
  does, which tells ``find`` not to infer subfolder counts from it: a snapshot may hold fewer
  subfolders than the stored count says).
- The folders of the layout (``fogvault.mount.layout``) and each snapshot's root folder are
  ``r-xr-xr-x``, owned by the user who mounted; a snapshot's root has the snapshot's time,
  layout folders the time of the mount. ``latest`` links have their snapshot's time.
- Inode numbers are a hash of the path in the mount (of the snapshot's place in the mount and
  the stored device and inode, for hard links): stable for as long as the mount runs, and
  from one mount to the next.

``df`` (:meth:`SnapshotView.usage`, the FUSE adapter's ``statfs``) shows the repository as a
read-only image: its packs' size (at least one byte), all used, none free, and as its entries
a lower bound on what a mount of all its snapshots shows, counted from the layout and the
snapshots' summaries without reading a folder's listing.

New snapshots: the snapshot list is checked when a layout folder is listed, or a name that is
not in one is looked up, at most once every ``MountOptions.reload_interval`` seconds (a check
is one listing of ``snapshots/`` per target). Only when it changed are the new snapshots read
and the index brought up to date (new index files only), and the layout rebuilt; forgotten
snapshots leave the layout (their files stay readable while open: the lock keeps prune away).

A chunk or a folder's listing whose pack has gone (a prune elsewhere repacked it: the lock
went stale during a long suspend, or the repository was mounted with ``--no-lock``) is read
again after the index is brought up to date, at most once every ``reload_interval`` seconds.

Memory: decoded folder listings are cached up to ``tree_cache_bytes`` of their decoded size
(as estimated by :func:`tree_bytes`: about 850 bytes per entry, plus 80 per chunk of a file;
their stored size is a third to a half of that), decoded chunks up to ``chunk_cache_bytes``,
and the chunks' offsets within files (shared by the handles of one file) up to
``OFFSETS_CACHE_BYTES``. Beyond those budgets, the most recently used listing that is over
half its budget is kept, whatever its size (a folder of 100,000 files is about 85 MB), so that
the lookups in a large folder do not read it again each; so are the offsets of the most
recently opened file of over 17,000 chunks. Besides those, each request being answered holds
the chunks it reads (at most a read's size plus two chunks), and each of the
``READ_AHEAD_WORKERS`` threads that load chunks ahead of reads in order (``fogvault.mount.chunks``)
the one it loads. Failed chunk loads are kept for ``FAILURE_KEPT_S`` seconds as their messages
only (at most ``FAILURES_KEPT``, about 500 bytes each); the error of a failed read lets go of
what the read held as soon as it is answered (``clear_frames``), not at the next collection.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from fogvault.errors import FogVaultError, SnapshotNotFound
from fogvault.mount.cache import BoundedCache
from fogvault.mount.chunks import ChunkLoader, clear_frames
from fogvault.mount.files import FileContent
from fogvault.mount.layout import FOLDER, Child, Folder, FolderKey, Layout, Link, build_layout
from fogvault.parallel import ordered_map
from fogvault.repo.index import IndexEntry
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, newest_first, select_snapshots
from fogvault.repo.tree import DIR, FILE, SYMLINK, Node, Tree
from fogvault.storage import ObjectNotFound

log = logging.getLogger("fogvault")
T = TypeVar("T")

MiB = 1024 * 1024
ROOT_INODE = 1
POSIX_ACL_XATTR = b"system.posix_acl_access"
SNAPSHOT_READERS = 8  # snapshots read at once when many are new (latency of remote targets)
#: the chunks' offsets within the files opened, kept for the next open of each (one index
#: lookup per chunk to compute: 100,000 for a 100 GB file)
OFFSETS_CACHE_BYTES = 4 * MiB
#: chunks loaded ahead of a read in order, after the one it ends in (``fogvault.mount.chunks``)
READ_AHEAD_CHUNKS = 2
#: how far from where a file's last read ended the next may start and still count as in
#: order: the kernel sends the requests of its own read-ahead at once, to several threads
IN_ORDER_SLACK = 1 * MiB
#: no chunks are loaded ahead while more files than this are open: many files read at once
#: keep the threads busy without it, and chunks loaded ahead for each of them pushed the ones
#: being read out of the cache (64 files read at once: 2,640 loads of 433 chunks, against 1,700)
READ_AHEAD_MAX_OPEN = 8
# Decoded sizes, measured with tracemalloc (CPython 3.12, 64-bit) on trees of 50,000 files:
NODE_BYTES = 850  # an entry with a short name, no chunks; its slot in the tree's name map
CHUNK_ID_BYTES = 80  # a chunk id (a 32-byte bytes object) in a file's list
OFFSET_BYTES = 40  # a chunk's end offset (an int object) in FileContent's list
XATTR_BYTES = 150  # an extended attribute's tuple and its two bytes objects, besides their data


@dataclass(frozen=True, slots=True)
class MountOptions:
    """Which snapshots a mount shows, how often it looks for new ones, and its caches."""

    host: str | None = None  # only this host's snapshots
    tags: tuple[str, ...] = ()  # only snapshots with every one of these tags
    paths: tuple[str, ...] = ()  # only snapshots with every one of these paths
    #: seconds between two looks for new or forgotten snapshots: a look lists ``snapshots/``
    #: on every target, which a remote target may charge for
    reload_interval: float = 5.0
    #: decoded chunks kept for reads to come (the kernel reads 128 KiB at a time; chunks are
    #: 1 MiB on average), so that a chunk is decoded once for all the reads within it
    chunk_cache_bytes: int = 64 * MiB
    #: decoded folder listings kept, by their decoded size (:func:`tree_bytes`): every lookup
    #: walks the path's trees. The most recently used one over half this is kept besides.
    tree_cache_bytes: int = 16 * MiB
    #: other users may enter (``mount --allow-other``), and the kernel checks every user's
    #: access by the entries' modes: an entry with a POSIX ACL then shows its owner's bits only
    #: (see :func:`_shown_mode`)
    allow_other: bool = False


@dataclass(slots=True)
class _OpenFile:
    path: bytes
    content: FileContent
    #: where the last read ended (None before the first: a file opened to read its first
    #: bytes, as `file` and thumbnailers do, loads nothing ahead)
    read_to: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What ``df`` shows of the mount (:meth:`SnapshotView.usage`)."""

    stored_bytes: int  # what the repository's packs take on a target; at least 1
    entries: int  # at least this many entries in a mount of all its snapshots


@dataclass(frozen=True, slots=True)
class Entry:
    """What ``stat`` shows of one path of the mount; ``node`` is the snapshot's entry (None
    for the layout's own folders and links, and for a snapshot's root)."""

    ino: int
    type: str  # the tree's type names: file, dir, symlink, fifo, chardev, blockdev
    mode: int  # permission bits
    uid: int
    gid: int
    size: int = 0
    nlink: int = 1
    rdev: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    target: bytes = b""
    xattrs: list[tuple[bytes, bytes]] = field(default_factory=list)
    node: Node | None = None


class SnapshotView:
    def __init__(self, repo: Repository, options: MountOptions | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Reads the snapshot list at once: a repository that cannot be listed raises here.
        The index must be loaded (under the lock that keeps prune away)."""
        self.repo = repo
        self.options = options or MountOptions()
        self._clock = clock
        self._trees: BoundedCache[bytes, Tree] = BoundedCache(self.options.tree_cache_bytes)
        self._chunks = ChunkLoader(self._load_chunk, self.options.chunk_cache_bytes, clock)
        self._contents: BoundedCache[bytes, FileContent] = BoundedCache(OFFSETS_CACHE_BYTES)
        self._files: dict[int, _OpenFile] = {}
        self._handles = itertools.count(1)
        self._warned: set[str] = set()
        self._reloading = threading.Lock()  # a look for snapshots, or a load of the index
        self._index_checked = clock()  # the caller loaded it
        self._owner = os.getuid(), os.getgid()
        self._started_ns = time.time_ns()
        self._snapshots: dict[str, Snapshot] = {}
        self._listed: set[str] = set()  # the uids of the last look that loaded
        self.layout = build_layout(())  # a repository without snapshots shows these too
        #: what usage counts, at each look that changes the snapshots (:func:`entries_at_least`)
        self._entries = layout_entries(self.layout)
        self._checked = clock()
        self._reload()

    # ---- looking up and listing ----------------------------------------------------------

    def lookup(self, path: bytes) -> Entry:
        return self._entry(path, *self._find(_parts(path)))

    def listdir(self, path: bytes) -> list[tuple[bytes, Entry]]:
        """The entries of the folder at ``path`` with their names (without ``.`` and ``..``)."""
        place, child, rest = self._find(_parts(path), listing=True)
        if isinstance(child, Folder):
            return [(name, self._layout_entry((*place, name), entry))
                    for name, entry in self.layout.folders.get(place, {}).items()]
        entry = self._entry(path, place, child, rest)
        if entry.type != DIR or not isinstance(child, Snapshot):
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", os.fsdecode(path))
        tree_id = entry.node.subtree if entry.node is not None else child.tree
        assert tree_id is not None
        return [(node.name, self._node_entry(place, (*rest, node.name), node))
                for node in self._tree(tree_id, path).nodes]

    def _find(self, parts: FolderKey, *, listing: bool = False
              ) -> tuple[FolderKey, Child | None, FolderKey]:
        """:func:`_locate` in the layout, looked at again after a look for new snapshots if
        the path is not there, or (``listing``) is a layout folder."""
        found = _locate(self.layout, parts)
        child = found[1]
        if (child is None or (listing and isinstance(child, Folder))) and self.refresh():
            found = _locate(self.layout, parts)
        return found

    def _entry(self, path: bytes, place: FolderKey, child: Child | None, rest: FolderKey
               ) -> Entry:
        if child is None:
            raise FileNotFoundError(errno.ENOENT, "not in the mount", os.fsdecode(path))
        if isinstance(child, Snapshot):
            return self._in_snapshot(place, child, rest)
        if rest:
            raise NotADirectoryError(errno.ENOTDIR, "a link of the layout", os.fsdecode(path))
        return self._layout_entry(place, child)

    # ---- file contents -------------------------------------------------------------------

    def open(self, path: bytes) -> int:
        """A handle for :meth:`read` of the file at ``path``; no chunk is read yet."""
        entry = self.lookup(path)
        if entry.type == DIR:
            raise IsADirectoryError(errno.EISDIR, "a folder", os.fsdecode(path))
        if entry.type != FILE or entry.node is None:
            raise OSError(errno.EINVAL, "not a regular file", os.fsdecode(path))
        handle = next(self._handles)
        self._files[handle] = _OpenFile(path, self._content(entry.node))
        return handle

    def read(self, handle: int, offset: int, size: int) -> bytes:
        try:
            file = self._files[handle]
        except KeyError:
            raise OSError(errno.EBADF, "no such open file") from None
        try:
            data = file.content.read(offset, size, self._chunks.get)
        except FogVaultError as exc:
            raise self._unreadable(f"cannot read {os.fsdecode(file.path)}: {exc}") from None
        if (file.read_to is not None and abs(offset - file.read_to) <= IN_ORDER_SLACK
                and len(self._files) <= READ_AHEAD_MAX_OPEN):
            self._chunks.read_ahead(file.content.chunk_ids(offset + len(data), READ_AHEAD_CHUNKS))
        file.read_to = offset + len(data)
        return data

    def release(self, handle: int) -> None:
        self._files.pop(handle, None)

    def _content(self, node: Node) -> FileContent:
        """The chunks' offsets of ``node``, shared with the files of the same chunks."""
        key = hashlib.blake2b(b"%d:" % node.size + b"".join(node.content)).digest()
        content = self._contents.get(key)
        if content is None:
            content = FileContent(self.repo.index, node)
            if content.complete:  # else an index loaded later may place the rest
                self._contents.put(key, content, content_bytes(content))
        return content

    def _load_chunk(self, blob_id: bytes) -> bytes:
        try:
            # No type check, as restore reads chunks: data and tree blobs share one id space,
            # so a file holding a tree's encoding is stored as that tree's blob.
            return self._load(self.repo.load_blob, blob_id)
        except FogVaultError as exc:  # named, for the warning
            raise FogVaultError(f"chunk {blob_id.hex()}: {exc}") from exc

    def close(self) -> None:
        """Load no more chunks ahead."""
        self._chunks.close()

    def _load(self, load: Callable[[bytes], T], blob_id: bytes) -> T:
        """``load(blob_id)``, called again after the index is brought up to date if the
        blob's pack has gone and the index then places it elsewhere."""
        entry = self.repo.index.get(blob_id)
        try:
            return load(blob_id)
        except ObjectNotFound:
            if not self._moved_since(blob_id, entry):
                raise
        return load(blob_id)

    def _moved_since(self, blob_id: bytes, entry: IndexEntry | None) -> bool:
        """Whether the index places ``blob_id`` elsewhere than ``entry`` once brought up to
        date (at most once every ``reload_interval``, whoever asks)."""
        with self._reloading:
            if (self.repo.index.get(blob_id) == entry
                    and self._clock() - self._index_checked >= self.options.reload_interval):
                self._index_checked = self._clock()
                self.repo.load_index()
            return self.repo.index.get(blob_id) != entry

    # ---- the repository as a whole (df) --------------------------------------------------

    def usage(self) -> Usage:
        """The repository's size and entries, whatever the filters show, as of the last look
        for snapshots, with no request and no folder listing read.

        The size is what the packs the index lists take on a target (each pack's blobs and
        header; counted once per state of the index), and at least 1 byte: an empty
        repository still holds its config and keys, and ``df`` leaves out file systems of
        0 blocks.

        The entries are a lower bound on the names a mount of every snapshot shows (see
        :func:`entries_at_least`)."""
        return Usage(max(self.repo.index.stored_bytes(), 1), self._entries)

    # ---- new snapshots -------------------------------------------------------------------

    def refresh(self) -> bool:
        """Look for snapshots made or forgotten since the last look, unless that was less than
        ``reload_interval`` ago or another thread is looking now; True if the layout changed.
        A look that fails is a warning, and the layout stays as it was."""
        if self._clock() - self._checked < self.options.reload_interval:
            return False
        if not self._reloading.acquire(blocking=False):
            return False
        try:
            if self._clock() - self._checked < self.options.reload_interval:
                return False  # another thread looked meanwhile
            return self._reload()
        except FogVaultError as exc:
            self._warn_once(f"could not look for new snapshots: {exc}")
            return False
        finally:
            self._checked = self._clock()
            self._reloading.release()

    def _reload(self) -> bool:
        listed = set(self.repo.snapshot_uids())
        if listed == self._listed:
            return False
        kept = {uid: s for uid, s in self._snapshots.items() if uid in listed}
        new = [s for s in ordered_map(self._load_snapshot, sorted(listed - kept.keys()),
                                      workers=SNAPSHOT_READERS) if s is not None]
        if new:
            self.repo.load_index()  # a snapshot is written after the index files it needs
        kept.update((s.uid, s) for s in new)
        self._snapshots = kept
        self._listed = set(kept)  # one that could not be read is tried again at the next look
        oldest_first = sorted(kept.values(), key=newest_first, reverse=True)  # as `snapshots`
        chosen = select_snapshots(oldest_first, self.options.host, self.options.tags,
                                  self.options.paths)
        self.layout = build_layout(chosen)
        everything = (self.layout if len(chosen) == len(oldest_first)
                      else build_layout(oldest_first))
        self._entries = entries_at_least(everything, oldest_first)
        return True

    def _load_snapshot(self, uid: str) -> Snapshot | None:
        try:
            return self.repo.load_snapshot(uid)
        except SnapshotNotFound:
            return None  # forgotten since the listing
        except FogVaultError as exc:
            self._warn_once(f"skipping snapshot {uid}: {exc}")
            return None

    # ---- entries -------------------------------------------------------------------------

    def _in_snapshot(self, place: FolderKey, snapshot: Snapshot, rest: FolderKey) -> Entry:
        if not rest:
            return self._layout_entry(place, snapshot)
        tree_id: bytes | None = snapshot.tree
        node: Node | None = None
        for depth, name in enumerate(rest):
            if node is not None:
                if node.type != DIR:
                    raise NotADirectoryError(errno.ENOTDIR, "not a folder",
                                             os.fsdecode(_path(place + rest[:depth])))
                tree_id = node.subtree
            assert tree_id is not None
            node = self._tree(tree_id, _path(place + rest[:depth])).find(name)
            if node is None:
                raise FileNotFoundError(errno.ENOENT, "not in the snapshot",
                                        os.fsdecode(_path(place + rest)))
        assert node is not None
        return self._node_entry(place, rest, node)

    def _layout_entry(self, place: FolderKey, child: Child) -> Entry:
        path = _path(place)
        uid, gid = self._owner
        if isinstance(child, Folder):
            return Entry(_inode(path) if place else ROOT_INODE, DIR, 0o555, uid, gid,
                         mtime_ns=self._started_ns, ctime_ns=self._started_ns)
        when = _ns(child.snapshot if isinstance(child, Link) else child)
        if isinstance(child, Link):
            return Entry(_inode(path), SYMLINK, 0o777, uid, gid, size=len(child.target),
                         mtime_ns=when, ctime_ns=when, target=child.target)
        return Entry(_inode(path), DIR, 0o555, uid, gid, mtime_ns=when, ctime_ns=when)

    def _node_entry(self, place: FolderKey, rest: FolderKey, node: Node) -> Entry:
        """The entry of ``node``, at ``rest`` within the snapshot whose root is at ``place``."""
        linked = node.type == FILE and node.nlink > 1
        ino = _inode(b"%s\0%d:%d" % (_path(place), node.dev, node.ino) if linked
                     else _path(place + rest))
        size = len(node.target) if node.type == SYMLINK else node.size
        mode = _shown_mode(node) if self.options.allow_other else node.mode
        return Entry(ino, node.type, mode, node.uid, node.gid, size=size,
                     nlink=node.nlink if node.type == FILE else 1, rdev=node.rdev,
                     mtime_ns=node.mtime_ns, ctime_ns=node.ctime_ns, target=node.target,
                     xattrs=node.xattrs, node=node)

    def _tree(self, tree_id: bytes, path: bytes) -> Tree:
        tree = self._trees.get(tree_id)
        if tree is None:
            try:
                tree = self._load(self.repo.load_tree, tree_id)
            except FogVaultError as exc:
                clear_frames(exc)  # not kept, but it would keep what it read until a collection
                raise self._unreadable(f"cannot list {os.fsdecode(path)}: {exc}") from None
            self._trees.put(tree_id, tree, tree_bytes(tree))
        return tree

    # ---- failures ------------------------------------------------------------------------

    def _unreadable(self, message: str) -> OSError:
        self._warn_once(message)
        return OSError(errno.EIO, message)

    def _warn_once(self, message: str) -> None:
        """A warning, unless this one was given already (the kernel retries a failed read
        page by page, and a listing is asked for again and again)."""
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)


def entries_at_least(layout: Layout, snapshots: Iterable[Snapshot]) -> int:
    """How many names a mount of ``snapshots`` (whose layout is ``layout``) shows at least,
    from the layout and the snapshots' manifests alone (no folder listing is read), with each
    snapshot's contents counted once although the layout shows it at several places:

    - the layout's own entries (:func:`layout_entries`);
    - each snapshot's files (each name of a hard-linked file) and folders as its summary
      records them, less the root folder that the summary of a backup of ``/`` counts (the
      snapshot's root, a layout entry);
    - the folders above every one of a snapshot's paths (``home`` and ``u`` of a backup of
      ``/home/u/data``; a backup does not count them), if its summary records an entry
      below them (else they may not be there: ``rewrite`` may have taken them out).

    Not counted, as no summary records them: symbolic links, devices and fifos, folders above
    only some of a snapshot's paths, and what a snapshot whose summary is empty holds
    (``recover``'s, or one written without a summary). The bound holds as long as no summary
    counts more than its snapshot holds: backups and ``rewrite`` count what they store, but a
    copy made by ``rewrite`` before it counted anew kept its original's summary
    (``rewrite --snapshot-summary`` counts it again)."""
    return layout_entries(layout) + sum(_summarised_entries(s) for s in snapshots)


def layout_entries(layout: Layout) -> int:
    """The entries of ``layout``: the mount's root, its folders (``ids``, ``hosts/<host>``...)
    and ``latest`` links, and each snapshot's root folder at each place it is shown."""
    return 1 + sum(len(entries) for entries in layout.folders.values())


def _summarised_entries(snapshot: Snapshot) -> int:
    """The entries below ``snapshot``'s root that its manifest vouches for
    (:func:`entries_at_least`)."""
    recorded = snapshot.summary.files + snapshot.summary.dirs
    if "/" in snapshot.paths:  # the tree is the root folder's, which the summary counts
        return max(recorded - 1, 0)
    return (recorded + _folders_above_all(snapshot.paths)) if recorded else 0


def _folders_above_all(paths: list[str]) -> int:
    """How many folders lie above every one of ``paths`` (2 for ``/home/u/data`` and
    ``/home/u/docs``; none for ``/data`` and ``/home/u``): those that lead to each of them."""
    if not paths:
        return 0
    names = [[name for name in path.split("/") if name] for path in paths]
    shared = 0
    for level in zip(*names, strict=False):
        if any(name != level[0] for name in level):
            break
        shared += 1
    return max(min(shared, min(len(n) for n in names) - 1), 0)


def tree_bytes(tree: Tree) -> int:
    """About the memory ``tree`` takes decoded, with its name map."""
    return sum(NODE_BYTES + len(node.name) + len(node.target)
               + CHUNK_ID_BYTES * len(node.content)
               + sum(XATTR_BYTES + len(key) + len(value) for key, value in node.xattrs)
               for node in tree.nodes)


def content_bytes(content: FileContent) -> int:
    """About the memory ``content`` holds: its node (which the trees may hold too) and its
    offsets."""
    return NODE_BYTES + (CHUNK_ID_BYTES + OFFSET_BYTES) * len(content.node.content)


def _parts(path: bytes) -> FolderKey:
    return tuple(p for p in path.split(b"/") if p)


def _path(parts: FolderKey) -> bytes:
    return b"/" + b"/".join(parts)


def _locate(layout: Layout, parts: FolderKey) -> tuple[FolderKey, Child | None, FolderKey]:
    """Where ``parts`` leads in the layout: (the path of the layout entry it reaches, that entry
    or None if there is none by that name, the rest of ``parts`` below it)."""
    place: FolderKey = ()
    for depth, name in enumerate(parts):
        child = layout.folders.get(place, {}).get(name)
        place += (name,)
        if child is not FOLDER:
            return place, child, parts[depth + 1:]
    return place, FOLDER, ()


def _inode(key: bytes) -> int:
    """A 63-bit inode number from ``key``, never that of the root."""
    number = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1
    return number if number > ROOT_INODE else number + 2


def _ns(snapshot: Snapshot) -> int:
    """The snapshot's time in nanoseconds since 1970, exactly (a float's seconds are not)."""
    return (snapshot.time - _EPOCH) // timedelta(microseconds=1) * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _shown_mode(node: Node) -> int:
    """The mode the kernel checks other users against when it enforces modes. The kernel
    applies mode bits only (a FUSE file system does not declare ACL support), so an entry with a
    POSIX access ACL would let in every user its group and other bits allow, including one the
    ACL keeps out; its group and other bits are cleared instead: its owner (and root) may enter,
    and nobody the ACL shuts out."""
    if any(name == POSIX_ACL_XATTR for name, _ in node.xattrs):
        return node.mode & ~0o077
    return node.mode
