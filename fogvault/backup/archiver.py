"""The archiver: one backup run, from source paths to a committed snapshot.

The walk is depth-first and builds each directory's tree after its children, so every tree
blob is complete when it is stored. A file whose size, mtime, ctime and inode match the parent
snapshot's entry (and whose blobs are all indexed) reuses the parent's blob list without being
opened; ``ignore_ctime`` leaves the ctime out of that comparison, ``ignore_inode`` the inode
and the ctime (restic's options, for sources where they are not stable), and the entry is then
trusted by its mtime instead (the racy-entry guard, ``RACY_MARGIN_NS``); an entry marked as
changed while it was read (ctime 0) is never reused. An entry whose inode and ctime match
reuses the parent's xattrs without listing them (and its inode flags, if the parent's backup
read them: a snapshot says so), unless either option is set: only the ctime tells that they
changed. A folder whose entries all equal the parent's reuses the parent's tree id without
encoding it. Metadata (mode, owner, times, inode, ctime) always comes from this run's lstat. A
file's flags are read through the descriptor that reads its content; a file whose content is
reused but whose flags are not (see above), and a folder whose flags are not, are opened for
them alone. Changed files are read and chunked in this thread; sealing and uploading overlap in
the BlobSaver's and PackWriter's threads.

What the archiver does *not* do: print (progress goes through the ``BackupProgress`` callbacks),
or decide exit codes (warnings are returned in the result).
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import itertools
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fogvault import __version__
from fogvault.backup.excludes import ExcludeRules
from fogvault.backup.progress import BackupProgress
from fogvault.backup.saver import BlobSaver, stored_blobs
from fogvault.backup.short_paths import ShortPaths
from fogvault.backup.stream_source import StreamSource, check_stream_name
from fogvault.errors import UsageError
from fogvault.fsmeta import (
    group_name,
    node_from_stat,
    node_type,
    open_for_flags,
    read_flags,
    read_xattrs,
    user_name,
)
from fogvault.hardlinks import Hardlinks
from fogvault.heap import use_one_malloc_arena
from fogvault.repo.format import BlobType
from fogvault.repo.lock import NoLock
from fogvault.repo.packer import PackWriterOptions
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, SnapshotSummary, new_uid, now, source_path
from fogvault.repo.tree import DIR, FILE, SYMLINK, Node, Tree
from fogvault.warning_list import WarningList

#: a read this size is tried again when a larger one is refused (``_CountingReader``)
SMALL_READ = 64 * 1024


@dataclass(slots=True)
class BackupOptions:
    tags: list[str] = field(default_factory=list)
    host: str = field(default_factory=socket.gethostname)
    excludes: ExcludeRules = field(default_factory=ExcludeRules)
    one_file_system: bool = False
    parent: str | None = None  # uid; None picks the latest snapshot of the same host and paths
    force: bool = False  # read every file even if unchanged
    dry_run: bool = False
    #: save no snapshot if nothing changed since the parent: every given path's entry and all
    #: below it, the paths, host and tags (restic's ``--skip-if-unchanged``, for jobs that run
    #: often)
    skip_if_unchanged: bool = False
    time: datetime | None = None  # the snapshot's time (timezone-aware); None: now
    #: read and store the inode flags of files and folders (chattr's; borg's default);
    #: False: --no-flags
    inode_flags: bool = True
    #: a changed ctime alone does not make a file's content be read again (restic's
    #: ``--ignore-ctime``): for sources whose ctimes change without the content (modes or
    #: owners reset by a script each night, file systems whose ctimes are not stable). Xattrs
    #: and flags are then read for every entry.
    ignore_ctime: bool = False
    #: nor a changed inode number, and the ctime is ignored too (restic's ``--ignore-inode``):
    #: for FUSE, sshfs or NFS mounts, file system snapshots mounted anew for each run, data
    #: copied to a new disk with its times
    ignore_inode: bool = False
    workers: int = 2
    writer: PackWriterOptions = field(default_factory=PackWriterOptions)

    @property
    def compares_ctime(self) -> bool:
        """Whether a changed ctime makes an entry count as changed."""
        return not (self.ignore_ctime or self.ignore_inode)


@dataclass(slots=True)
class BackupResult:
    snapshot: Snapshot
    warnings: WarningList
    dry_run: bool = False
    #: url -> why, for targets that did not get the snapshot (k-of-N: exit 3, docs/targets.md)
    targets_behind: dict[str, str] = field(default_factory=dict)
    #: the parent's uid when nothing changed since it and no snapshot was saved
    #: (``skip_if_unchanged``)
    unchanged_since: str | None = None


class Archiver:
    def __init__(
        self, repo: Repository, options: BackupOptions, progress: BackupProgress | None = None
    ) -> None:
        self.repo = repo
        self.options = options
        self.progress = progress or BackupProgress()
        self.summary = SnapshotSummary()
        self.warnings = WarningList()
        # the first name's content, size and flags: a later name has what the first one read
        self._hardlinks: Hardlinks[tuple[list[bytes], int, int]] = Hardlinks()
        self._root_devs: set[int] = set()  # devices of the source paths (--one-file-system)
        self._given: set[bytes] = set()  # the paths given (excludes never drop them)
        self._given_sorted: list[bytes] = []  # the same, for the ones below a folder
        self._reuse_trees = False  # set per run: may the parent's tree ids stand for new trees
        # set per run, with skip_if_unchanged: may it still save no snapshot? Its paths, host
        # and tags are the parent's, and so far every given path's entry (with all below it)
        # is as in the parent. The folders above them are not compared: their times change
        # with anything else in them, and a backup of ~/data would never be unchanged.
        self._nothing_changed = False
        # the trees of the folders above the given paths, stored only once the run is known to
        # save a snapshot: with skip_if_unchanged, a run that saves none must add nothing
        self._skeleton_trees: list[tuple[bytes, bytes]] = []  # (id, encoded tree)
        # set per run: a parent's entry with a later ctime (mtime if ctimes are ignored) is
        # read again
        self._trusted_before = 0
        self._parent_flags = False  # set per run: the parent's entries hold their inode flags
        self._chunker = repo.chunker()  # one for the run: building one costs ~8 us per file
        self._paths = ShortPaths()  # what the kernel is given for a path, however deep

    # ---- the run ---------------------------------------------------------------------

    def run(self, paths: list[str]) -> BackupResult:
        started = time.monotonic()
        found = self._stat_sources(normalise_paths(paths))  # the snapshot lists only these
        self._root_devs = {st.st_dev for st in found.values()}
        self._given = set(found)
        self._given_sorted = sorted(found)
        return self._commit(sorted(found), self._save_roots, started)

    def run_stream(self, source: StreamSource, name: str) -> BackupResult:
        """Back up what ``source`` yields until its end (restic's ``backup --stdin``) as the
        file ``/NAME``, owned by this process's user, mode 0600, with the time of the run; it is
        always read. The source is opened once the lock is held and the targets can commit,
        and checked once its data is stored, before the snapshot is: raising there (the command
        that produced it failed) leaves no snapshot."""
        started = time.monotonic()
        path = b"/" + os.fsencode(check_stream_name(name))

        def save_root(saver: BlobSaver, _paths: list[bytes], _parent_root: bytes | None) -> bytes:
            node = self._stream_node(saver, source.open(), path)
            source.check()
            self._nothing_changed = False  # stamped with the time of the run
            return self._save_tree(saver, [node], None, None)

        return self._commit([path], save_root, started)

    def _commit(self, abs_paths: list[bytes],
                save_root: Callable[[BlobSaver, list[bytes], bytes | None], bytes],
                started: float) -> BackupResult:
        """Store what ``save_root`` saves (the root tree of ``abs_paths``) and commit the
        snapshot, under the repository's lock."""
        use_one_malloc_arena()  # for library callers; the CLI and job runner call it before opening
        with _deep_tree_recursion, \
                self.repo.lock() if not self.options.dry_run else NoLock() as lock:
            # Under the lock: a prune that ran since the repository was opened has replaced
            # index files, and deduplicating against its deleted packs would lose data.
            self.repo.load_index()
            if not self.options.dry_run:  # k-of-N: fail before uploading if it cannot commit
                self.repo.mark_behind_targets()
                self.repo.targets.require_quorum("backup not started")
            parent = self._find_parent(abs_paths)
            self._trusted_before = _trusted_before(parent)
            self._parent_flags = parent is not None and parent.flags_read
            # A tree id stands for its exact bytes, so the parent's trees are reused only if
            # they are what this code would encode: canonical (format.md 13.1) and without
            # fields of a later writer, which holds for trees this version wrote or reused.
            self._reuse_trees = (
                parent is not None and parent.program_version == __version__
                and not self.options.force
            )
            self._nothing_changed = (self.options.skip_if_unchanged
                                     and _same_labels(abs_paths, self.options, parent)
                                     and _flags_known(self.options, parent))
            self._skeleton_trees = []
            root_id = self._store(abs_paths, save_root, parent.tree if parent else None,
                                  lock.ensure_fresh)
            self.summary.duration_s = round(time.monotonic() - started, 3)
            snapshot = self._snapshot(abs_paths, root_id, parent)
            unchanged = self._nothing_changed
            if not self.options.dry_run and not unchanged:
                lock.ensure_fresh()  # a stale lock may have let a prune run: do not commit
                self.repo.save_snapshot(snapshot)  # to the targets that hold all its data
        behind = {} if self.options.dry_run else self.repo.targets.missed_changes()
        return BackupResult(snapshot, self.warnings, self.options.dry_run, behind,
                            parent.uid if unchanged and parent else None)

    def _store(
        self, abs_paths: list[bytes],
        save_root: Callable[[BlobSaver, list[bytes], bytes | None], bytes],
        parent_root: bytes | None, check_lock: Callable[[], None]
    ) -> bytes:
        """Store every new blob (``save_root`` saves them) and index them; returns the root
        tree id."""
        with stored_blobs(self.repo, dry_run=self.options.dry_run, workers=self.options.workers,
                          writer=self.options.writer, before_index=check_lock) as saver:
            root_id = save_root(saver, abs_paths, parent_root)
        self.summary.data_blobs_added = saver.blobs_added[BlobType.DATA]
        self.summary.tree_blobs_added = saver.blobs_added[BlobType.TREE]
        self.summary.bytes_added = saver.bytes_added
        return root_id

    def _snapshot(self, abs_paths: list[bytes], root_id: bytes, parent: Snapshot | None
                  ) -> Snapshot:
        return Snapshot(
            uid=new_uid(),
            time=self.options.time or now(),
            host=self.options.host,
            user=user_name(os.getuid()),
            paths=[os.fsdecode(p) for p in abs_paths],
            tree=root_id,
            tags=sorted(set(self.options.tags)),
            parent=parent.uid if parent else None,
            program_version=__version__,
            summary=self.summary,
            warnings=self.warnings,
            flags_read=self.options.inode_flags,
        )

    def _stat_sources(self, paths: list[bytes]) -> dict[bytes, os.stat_result]:
        """The given paths that can be backed up. Each other one (missing, not stat-able, a
        socket) is a warning and is skipped, as an unreadable file is: a disk that is not
        plugged in must not cost the backup of the rest. The snapshot lists only the paths it
        holds, as restic's does: listed, a missing path would put this snapshot in the group of
        the full ones, where a retention policy could forget the last snapshot that holds it.
        If no path can be backed up, there is nothing to back up."""
        found: dict[bytes, os.stat_result] = {}
        failed: dict[bytes, str] = {}
        for path in paths:
            try:
                st = os.lstat(path)
            except OSError as exc:
                failed[path] = exc.strerror or str(exc)
                continue
            if node_type(st.st_mode) is None:
                failed[path] = "a socket is not backed up"
            else:
                found[path] = st
        if not found:
            raise UsageError("; ".join(f"cannot back up {os.fsdecode(path)}: {why}"
                                       for path, why in failed.items()))
        for path, why in failed.items():
            self._warn(path, f"cannot back up: {why}; skipped")
            self.summary.files_failed += 1
        return found

    def _find_parent(self, paths: list[bytes]) -> Snapshot | None:
        if self.options.force and self.options.parent is None:
            return None
        if self.options.parent:
            return self.repo.load_snapshot(self.repo.resolve_snapshot(self.options.parent))
        wanted = sorted(os.fsdecode(p) for p in paths)
        mine = [s for s in self.repo.snapshots() if s.host == self.options.host]
        same = [s for s in mine if sorted(s.paths) == wanted]
        # A run that skipped a missing path (a disk unplugged), or the first run with it back,
        # has no snapshot of its own paths yet: one that holds them all, or else some of them,
        # spares re-reading what it holds (the parent's trees are looked up by name).
        holding = [s for s in mine if set(wanted) <= set(s.paths)]
        overlapping = [s for s in mine if set(wanted) & set(s.paths)]
        return (same or holding or overlapping or [None])[-1]

    def _warn(self, path: bytes, message: str) -> None:
        text = f"{os.fsdecode(path)}: {message}"
        self.warnings.add(text)
        self.progress.warning(text)

    # ---- trees -----------------------------------------------------------------------

    def _save_roots(
        self, saver: BlobSaver, paths: list[bytes], parent_root: bytes | None
    ) -> bytes:
        """Store the tree of folders leading from / to each backed-up path."""
        if b"/" in paths:  # the whole file system: the root's own tree is the snapshot's
            root = self._stat_node(b"/", b"root", None)
            assert root is not None and root.type == DIR
            self._save_dir(saver, b"/", root, parent_root)
            assert root.subtree is not None
            self._nothing_changed = self._nothing_changed and root.subtree == parent_root
            root_id = root.subtree
        else:
            root_id = self._save_layout(saver, b"/", _layout(paths), parent_root)
        # the trees _save_layout kept back: the way from / to the given paths, and through
        # excluded folders to given paths below them
        if not self._nothing_changed:
            for tree_id, data in self._skeleton_trees:
                saver.save(BlobType.TREE, data, tree_id)
        return root_id

    def _save_layout(
        self, saver: BlobSaver, folder: bytes, layout: dict, old_id: bytes | None
    ) -> bytes:
        parent = self._load_old_tree(old_id)
        nodes = []
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self._paths.inside(folder))
            except OSError as exc:
                self._warn(folder, f"cannot open folder: {exc.strerror}")
                self.summary.files_failed += 1
                layout = {}
            for name, sub in sorted(layout.items()):
                path = os.path.join(folder, name)
                old = parent.find(name) if parent else None
                if sub is None:
                    node = self._save_entry(saver, path, name, old, explicit=True)
                    self._nothing_changed = self._nothing_changed and node == old
                else:
                    node = self._save_skeleton(saver, path, name, old, sub)
                if node is not None:
                    nodes.append(node)
        reused = self._reused_tree(nodes, old_id, parent)
        if reused is not None:
            return reused
        data = Tree(nodes).encode()
        tree_id = self.repo.blob_id(data)
        self._skeleton_trees.append((tree_id, data))
        return tree_id

    def _save_skeleton(self, saver: BlobSaver, path: bytes, name: bytes, old: Node | None,
                       layout: dict) -> Node | None:
        """A folder stored with only the entries of ``layout`` (the way to given paths)."""
        node = self._stat_node(path, name, old)
        if node is None or node.type != DIR:
            return None
        node.subtree = self._save_layout(saver, path, layout, _subtree_of(old))
        return node

    def _given_below(self, folder: bytes) -> dict:
        """The layout of the given paths below ``folder`` (empty if none): an excluded folder
        still leads to them, as a given path is always backed up."""
        prefix = folder.rstrip(b"/") + b"/"
        below = []  # a range of the sorted paths: asked for each excluded entry, of thousands
        for path in itertools.islice(self._given_sorted,
                                     bisect.bisect_left(self._given_sorted, prefix), None):
            if not path.startswith(prefix):
                break
            below.append(path[len(prefix) - 1:])
        return _layout(below)

    def _save_tree(
        self, saver: BlobSaver, nodes: list[Node], old_id: bytes | None, old: Tree | None
    ) -> bytes:
        """The id of the tree of ``nodes``, stored."""
        reused = self._reused_tree(nodes, old_id, old)
        return reused if reused is not None else saver.save(BlobType.TREE, Tree(nodes).encode())

    def _reused_tree(self, nodes: list[Node], old_id: bytes | None, old: Tree | None
                     ) -> bytes | None:
        """``old_id`` if the parent's tree ``old`` lists exactly ``nodes``: it encodes to the
        same bytes, so its id is taken without encoding and hashing."""
        if self._reuse_trees and old is not None and old_id is not None and nodes == old.nodes:
            return old_id
        return None

    def _load_old_tree(self, tree_id: bytes | None) -> Tree | None:
        if tree_id is None:
            return None
        try:
            return self.repo.load_tree(tree_id)
        except Exception as exc:  # a damaged parent only costs re-reading
            self.progress.warning(f"parent tree unreadable, reading files again: {exc}")
            return None

    def _stat_node(self, path: bytes, name: bytes, old: Node | None) -> Node | None:
        try:
            st = os.lstat(self._paths.of(path))
        except OSError as exc:
            self._warn(path, f"cannot stat: {exc.strerror}")
            self.summary.files_failed += 1
            return None
        kind = node_type(st.st_mode)
        if kind is None:
            return None  # sockets are not backed up
        node = node_from_stat(name, kind, st)
        same = self._same_inode(node, old)
        if same:
            assert old is not None
            node.xattrs = old.xattrs  # setting or removing an xattr changes the ctime
        else:
            try:
                node.xattrs = read_xattrs(self._paths.of(path))
            except OSError as exc:
                self._warn(path, f"cannot read extended attributes: {exc.strerror}")
        if kind == DIR and self.options.inode_flags:  # a file's: see _save_file
            node.flags = self._entry_flags(path, DIR, old if same else None)
        return node

    def _entry_flags(self, path: bytes, kind: str, same_as: Node | None) -> int:
        """The inode flags of the file or folder ``path`` (a file not read for its content):
        ``same_as``'s, the parent's entry for the same inode and ctime (chattr changes the
        ctime), if the parent's backup read them; else read, the entry opened for them."""
        if same_as is not None and self._parent_flags:
            return same_as.flags
        return self._open_for_flags(path, kind)

    def _open_for_flags(self, path: bytes, kind: str) -> int:
        """The inode flags of the file or folder ``path``, opened for them alone; 0 if it
        cannot be opened (its read or listing says why, if it is read)."""
        try:
            short = self._paths.of(path)
            fd = open_for_flags(None, short, DIR) if kind == DIR else _open_to_read(short)
        except OSError:
            return 0
        try:
            return self._flags_of(path, fd)
        finally:
            os.close(fd)

    def _flags_of(self, path: bytes, fd: int) -> int:
        """The inode flags of the entry open as ``fd``: 0 where its file system has none, or
        with a warning if they cannot be read (the entry is still backed up)."""
        try:
            return read_flags(fd)
        except OSError as exc:
            self._warn(path, f"cannot read inode flags: {exc.strerror}")
            return 0

    def _same_inode(self, node: Node, old: Node | None) -> bool:
        """True if ``old`` (the parent's entry) describes this very inode with no status change
        since: every metadata change (owner, mode, xattrs, links, content) sets the ctime."""
        return (
            not self.options.force
            and old is not None
            and old.type == node.type
            and self.options.compares_ctime  # else xattrs or flags may have changed unseen
            and (old.ctime_ns, old.ino, old.dev) == (node.ctime_ns, node.ino, node.dev)
            and old.ctime_ns < self._trusted_before
        )

    def _save_entry(
        self, saver: BlobSaver, path: bytes, name: bytes, old: Node | None, explicit: bool = False
    ) -> Node | None:
        if not explicit and self.options.excludes.excludes_path(path):
            below = self._given_below(path)
            return self._save_skeleton(saver, path, name, old, below) if below else None
        if not self.options.dry_run:  # stop early once too many targets were dropped
            self.repo.targets.require_quorum("backup stopped")
        node = self._stat_node(path, name, old)
        if node is None or (node.type == FILE and not explicit
                            and self.options.excludes.excludes_size(node.size)):
            return None
        if node.type == DIR:
            self._save_dir(saver, path, node, _subtree_of(old))
        elif node.type == FILE and not self._save_file(saver, path, node, old):
            return None  # unreadable: left out of the snapshot, recorded as a warning
        elif node.type == SYMLINK:
            try:
                node.target = os.readlink(self._paths.of(path))
            except OSError as exc:
                self._warn(path, f"cannot read link: {exc.strerror}")
                return None
        return node

    def _save_dir(self, saver: BlobSaver, path: bytes, node: Node, old_id: bytes | None) -> None:
        self.summary.dirs += 1
        old_tree = self._load_old_tree(old_id)
        children: list[Node] = []
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self._paths.inside(path))
                names = self._names_to_save(path, node)
            except OSError as exc:
                self._warn(path, f"cannot list folder: {exc.strerror}")
                self.summary.files_failed += 1
                names = None  # given paths below it are still tried
            if names is None and (below := self._given_below(path)):
                node.subtree = self._save_layout(saver, path, below, old_id)
                return
            for name in names or []:
                child_old = old_tree.find(name) if old_tree else None
                child_path = os.path.join(path, name)
                child = self._save_entry(saver, child_path, name, child_old,
                                         explicit=child_path in self._given)  # fmt: skip
                if child is not None:
                    children.append(child)
        node.subtree = self._save_tree(saver, children, old_id, old_tree)

    def _names_to_save(self, path: bytes, node: Node) -> list[bytes] | None:
        """The names in the folder ``path`` (held by ``self._paths``), sorted; None if its
        contents are skipped (another file system, a cache or marker file)."""
        crosses_device = self.options.one_file_system and node.dev not in self._root_devs
        here = self._paths.of(path)
        if crosses_device or self.options.excludes.excludes_dir_contents(here):
            return None
        if path.count(b"/") > MAX_DEPTH:
            raise OSError(errno.ELOOP, f"more than {MAX_DEPTH:,} folders deep")
        return sorted(e.name for e in os.scandir(here))

    # ---- files -----------------------------------------------------------------------

    def _save_file(self, saver: BlobSaver, path: bytes, node: Node, old: Node | None) -> bool:
        """Fill in ``node.content``; False if the file could not be read."""
        self.progress.file_started(path, node.size)
        link_key = (node.dev, node.ino)
        linked = self._hardlinks.take(link_key) if node.nlink > 1 else None
        if linked is not None:
            node.content, node.size, node.flags = linked
            self.summary.files_unchanged += 1
        elif self._unchanged(node, old):
            assert old is not None
            node.content = old.content
            if self.options.inode_flags:  # chattr changes the ctime: the parent's, if compared
                node.flags = self._entry_flags(
                    path, FILE, old if self.options.compares_ctime else None)
            self.summary.files_unchanged += 1
            self.progress.bytes_done(node.size)
        else:
            content = self._read_file(saver, path, node)
            if content is None:
                self.summary.files_failed += 1
                self.progress.file_done(path)
                return False
            node.content = content
            if old is None:
                self.summary.files_new += 1
            else:
                self.summary.files_changed += 1
        if node.nlink > 1 and linked is None:
            self._hardlinks.remember(link_key, (node.content, node.size, node.flags), node.nlink)
        self.summary.total_bytes += node.size
        self.progress.file_done(path)
        return True

    def _unchanged(self, node: Node, old: Node | None) -> bool:
        """Whether the file ``node`` still has the content of the parent's entry ``old``."""
        options = self.options
        return (
            not options.force
            and old is not None
            and old.type == FILE
            and (old.size, old.mtime_ns) == (node.size, node.mtime_ns)
            and (options.ignore_inode or old.ino == node.ino)
            and (not options.compares_ctime or old.ctime_ns == node.ctime_ns)
            # ctime 0 marks a file that changed while it was read (_read_file): with ctimes
            # ignored nothing else would tell, and the torn copy would be kept for good
            and old.ctime_ns != 0
            and self._settled(old)
            and all(blob_id in self.repo.index for blob_id in old.content)
        )

    def _settled(self, old: Node) -> bool:
        """Whether the parent's entry ``old`` was last changed before the parent's run started
        (``RACY_MARGIN_NS``): by its ctime, or its mtime when ctimes are ignored (a file
        written within a clock tick before the parent read it must still be read again)."""
        changed = old.ctime_ns if self.options.compares_ctime else old.mtime_ns
        return changed < self._trusted_before

    def _read_file(self, saver: BlobSaver, path: bytes, node: Node) -> list[bytes] | None:
        """Chunk and store a file; None (with a warning) if it cannot be read. The node's size
        becomes the bytes read, which is what a restore writes."""
        try:
            fd = _open_to_read(self._paths.of(path))
        except OSError as exc:
            self._warn(path, f"cannot read: {exc.strerror}")
            return None
        try:  # the descriptor itself: a file object would cost another fstat per file
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                self._warn(path, "replaced by something that is not a file; skipped")
                return None
            if self.options.inode_flags:
                node.flags = self._flags_of(path, fd)
            os.set_blocking(fd, True)
            content, read = self._chunk_stream(saver, fd, before.st_size)
            after = os.fstat(fd)
        except OSError as exc:
            self._warn(path, f"read error: {exc.strerror}")
            return None
        finally:
            os.close(fd)
        if (after.st_size, after.st_mtime_ns) != (node.size, node.mtime_ns) or (
            before.st_ino != node.ino
        ):
            self._warn(path, "file changed while it was read; the snapshot has what was read")
            # ctime 0 marks it (_unchanged): the next backup reads it again instead of keeping
            # this possibly torn copy as "unchanged".
            node.mtime_ns, node.ctime_ns = after.st_mtime_ns, 0
        # Not the size stat gave: a file that grew or shrank while it was read, or one whose
        # size stat does not tell (procfs, sysfs), would be restored padded or cut.
        node.size = read
        return content

    def _stream_node(self, saver: BlobSaver, stream: int, path: bytes) -> Node:
        """The file node of what ``stream`` yields, its content stored."""
        uid, gid = os.getuid(), os.getgid()
        when = time.time_ns()
        node = Node(name=os.path.basename(path), type=FILE, mode=0o600, uid=uid, gid=gid,
                    user=user_name(uid), group=group_name(gid), mtime_ns=when, ctime_ns=when)
        self.progress.file_started(path, 0)
        os.set_blocking(stream, True)
        node.content, node.size = self._chunk_stream(saver, stream, None)
        self.summary.files_new += 1
        self.summary.total_bytes += node.size
        self.progress.file_done(path)
        return node

    def _chunk_stream(self, saver: BlobSaver, fd: int, size: int | None
                      ) -> tuple[list[bytes], int]:
        """The ids of the chunks of what ``fd`` yields (``size``: the bytes expected, if
        known), and the bytes read."""
        content, read = [], 0
        reader = _CountingReader(fd, self)
        for chunk in self._chunker.chunks(reader, size_hint=size):
            content.append(saver.save(BlobType.DATA, chunk))
            read += len(chunk)
        return content, read


def _open_to_read(path: bytes) -> int:
    """A descriptor to read ``path`` (not following a symlink), with O_NONBLOCK set: a file
    replaced by a fifo since its lstat would block the open until a writer came (the caller
    clears it once the descriptor is known to be a file)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOATIME", 0)
    while True:
        try:
            return os.open(path, flags)
        except PermissionError:
            if not flags & getattr(os, "O_NOATIME", 0):
                raise
            flags &= ~os.O_NOATIME  # refused on files we do not own
        except BlockingIOError:
            if not flags & os.O_NONBLOCK:
                raise
            # A lease (a Samba oplock, an NFS server's delegation), which only files have:
            # wait for it to be broken, as a plain open does.
            flags &= ~os.O_NONBLOCK


def _layout(paths: list[bytes]) -> dict:
    """Nested folders leading to ``paths`` (absolute, sorted): name -> the same for the folder
    below, or None for a path backed up whole (a path below it is then part of it)."""
    layout: dict = {}
    for path in paths:  # sorted, so an ancestor comes before its descendants
        parts = [p for p in path.split(b"/") if p]
        level = layout
        for part in parts[:-1]:
            level = level.setdefault(part, {})
            if level is None:
                break  # an ancestor is backed up whole already
        else:
            level[parts[-1]] = None
    return layout


def _subtree_of(old: Node | None) -> bytes | None:
    """The parent snapshot's tree id for a folder whose parent entry is ``old``."""
    return old.subtree if old is not None and old.type == DIR else None


class _CountingReader:
    """Feeds the chunker from a descriptor and reports progress; the one place file content
    is read."""

    def __init__(self, fd: int, archiver: Archiver) -> None:
        self.fd = fd
        self.archiver = archiver

    def readinto(self, buffer) -> int:  # the chunker reads through readinto when it exists
        try:
            n = os.readv(self.fd, [buffer])
        except OSError as exc:  # procfs's sysctl files refuse reads of 4 MiB or more
            if exc.errno != errno.ENOMEM or len(buffer) <= SMALL_READ:
                raise
            n = os.readv(self.fd, [buffer[:SMALL_READ]])
        if n:
            self.archiver.summary.bytes_read += n
            self.archiver.progress.bytes_done(n)
        return n


#: folder levels below ``/`` whose entries the walk lists; a deeper folder is stored empty, with
#: a warning (folders on the way to a given path are not counted: that path is short)
MAX_DEPTH = 10_000
#: Python frames the walk may need: at most three a level (entry, folder, the folder's entries)
#: down to the deepest folder it lists, and more
RECURSION_FOR_DEEP_TREES = 3 * MAX_DEPTH + 1000


class _DeepTreeRecursion:
    """The walk recurses once per folder level; the interpreter's default limit (1,000 frames)
    stopped a backup at about 330 levels. Python 3.11 and later run Python-to-Python calls
    without C stack, so a higher limit costs only the frames actually used. The limit is the
    process's: it is raised while any backup runs (backups in several threads count as one)
    and given back after the last, so a library caller finds it as it set it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 0

    def __enter__(self) -> None:
        with self._lock:
            if self._users == 0:
                self._saved = sys.getrecursionlimit()
                sys.setrecursionlimit(max(RECURSION_FOR_DEEP_TREES, self._saved))
            self._users += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                sys.setrecursionlimit(self._saved)


_deep_tree_recursion = _DeepTreeRecursion()


def normalise_paths(paths: list[str]) -> list[bytes]:
    if not paths:
        raise UsageError("nothing to back up: give at least one path")
    if "" in paths:  # an unset variable ('backup "$DIR"'): not the current folder
        raise UsageError("an empty path was given: name a file or folder ('.' for this one)")
    for path in map(os.fsdecode, paths):  # from a --files-from list: no name holds one
        if "\0" in path:
            raise UsageError(f"a path holds a NUL byte: {path!r}")
    return sorted({source_path(p) for p in paths})


#: A parent's entry whose ctime (mtime, if ctimes are ignored) falls this close before its run
#: started, or later, is not trusted to describe the file ("racy" timestamps, as git calls
#: them): a file changed again after that run read it, within one tick of a coarse file system
#: clock (a few ms on Linux before multigrain timestamps, 10 ms on vfat), keeps its size, mtime
#: and ctime. Such an entry is read again; only files changed around or during the parent's run
#: are.
RACY_MARGIN_NS = 20_000_000


EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def parse_snapshot_time(text: str) -> datetime:
    """``backup --time``: ISO 8601, local time without an offset (of a local time that occurs
    twice, the first). Refused: a local time that does not occur (skipped by a change to
    summer time), one before 1970, and one in the future: the next backup trusts unchanged
    entries by the parent's time (``_trusted_before``), and a later time would let it trust a
    file changed while this one ran."""
    try:
        given = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--time {text!r}: not a date and time such as "
                         "'2026-01-02 15:04:05'") from None
    try:
        value = given.astimezone() if given.tzinfo is None else given
        instant = value.astimezone(UTC)
    except (ValueError, OverflowError):  # year 1 or 9999, moved out of range by the offset
        raise UsageError(f"--time {text!r} is "
                         f"{'before 1970' if given.year < 1970 else 'in the future'}") from None
    if given.tzinfo is None and instant.astimezone().replace(tzinfo=None) != given:
        raise UsageError(f"--time {text!r} does not occur in the local time zone (the clocks "
                         "skip it); give the offset")
    if instant < EARLIEST_TIME:
        raise UsageError(f"--time {text!r} is before 1970")
    if instant > now():
        raise UsageError(f"--time {text!r} is in the future")
    return value


def _same_labels(abs_paths: list[bytes], options: BackupOptions, parent: Snapshot | None
                 ) -> bool:
    """Whether a snapshot of ``abs_paths`` with ``options`` has ``parent``'s paths, host and
    tags."""
    return (parent is not None and [os.fsdecode(p) for p in abs_paths] == parent.paths
            and options.host == parent.host and sorted(set(options.tags)) == sorted(
                set(parent.tags)))


def _flags_known(options: BackupOptions, parent: Snapshot | None) -> bool:
    """Whether ``parent`` holds what a backup with ``options`` needs of the inode flags. One
    that reads them after one that did not (``--no-flags``, an older FogVault) saves a
    snapshot, unchanged or not: without one that read them, every run would open every file
    and folder for them again."""
    return not options.inode_flags or (parent is not None and parent.flags_read)


def _trusted_before(parent: Snapshot | None) -> int:
    """The ctime (or mtime, ``Archiver._settled``) in ns before which ``parent``'s entries may
    be reused."""
    if parent is None:
        return 0
    started = parent.time.timestamp() - parent.summary.duration_s
    return int(started * 1e9) - RACY_MARGIN_NS
