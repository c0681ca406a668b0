"""Restoring a snapshot into a target folder, byte for byte, with metadata.

Three phases, the first two taking turns for each batch of ``PLAN_BATCH_FILES`` files:

1. **Plan and create** (one thread, depth-first): folders, symlinks, fifos, devices, hardlinks,
   empty files and hardlinked files' first names are created below the target through
   :class:`SafeRoot` (never following a symlink); other files are created with their first
   blob. Each file's chunks are mapped to (file, offset) destinations. A batch also ends at
   ``PLAN_BATCH_BLOBS`` chunks, and a file of more than ``SEGMENT_BLOBS`` chunks is written by
   this process alone, ``SEGMENT_BLOBS`` at a time: a chunk's place in the plan is about 560
   bytes, 560 MB for a 1 TiB file of 1 MiB chunks planned at once.
2. **Content** of the batch (``content``): each needed pack is read in spans of at most
   ``FETCH_SPAN`` bytes, one ranged read each, and their blobs are verified, decrypted and
   written with ``pwrite``, each file by one writer, which sets its metadata when it is
   complete. A restore of many files from folders on this machine hands runs of consecutive
   files to ``PROCESSES`` worker processes (``workers``) while this process plans the next
   batch; otherwise this process writes them (a fetch thread per span in flight, ``WRITERS``
   writing threads). A blob used by many files of a run is fetched once. All-zero blocks are
   not written, so sparse files keep their holes. Batches bound the plan's memory (a file's
   node, destinations and index entries: about 1 KiB). Damage no target makes up for is a
   warning about what it touches: a chunk read from no target costs the files that use it
   (``content``), a chunk in no index its file, a folder's unreadable tree its contents.
3. **Metadata**: ownership (as root), xattrs, modes, times and inode flags (last: immutable
   and append-only forbid the others; some wait for the end, see ``flags``). A regular file
   gets its metadata as soon as its content is complete, through the descriptor that wrote
   the last of it; a link or special file when it is created. A folder gets its metadata once
   everything below it is planned and the batch holding its last files is written (so writing
   its contents does not disturb its mtime), children before parents: keeping every folder's
   node to the end cost about 1 KiB a folder. A folder whose mode would keep this process out
   of it (not root, and not ``rwx`` for its owner) is still set at the very end, as a hardlink
   made later may need to reach into it. A folder of the user's found at the target with such
   a mode is given ``rwx`` for its owner while the restore writes in it (``_reach_into``); one
   only on the way to what an include selects, which has no metadata to set, gets its mode as
   found back after everything else, also when the restore stops part-way (``_close_way``), as
   does one of the snapshot when the restore stops before its metadata is set.

With ``delete``, the plan lists the restored folders as it leaves them, and what they hold
beyond the snapshot is deleted after the last content is written and before the folders set at
the very end, only if every entry was restored in full (``extras``). A folder where the
snapshot has a file or link must make way for it when the plan meets it: it is renamed aside
in its folder, and deleted with the extras, or else kept (``extras``).

A restored path is always the snapshot's absolute path re-rooted below the target. Progress
totals grow batch by batch, as files are planned.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import stat
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from fogvault.errors import DestinationUnwritable, IntegrityError, UnsafePath, UsageError
from fogvault.fsmeta import FlagsRefused, MetadataProblem, chmod_at
from fogvault.hardlinks import Hardlinks
from fogvault.heap import release_free_memory
from fogvault.patterns import PathPatterns, pattern_warnings
from fogvault.repo.cache import default_cache_dir
from fogvault.repo.index import IndexEntry
from fogvault.repo.repository import Repository, is_damage
from fogvault.repo.snapshot import Snapshot
from fogvault.repo.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Node, Tree
from fogvault.restore.content import (
    CREATE_FLAGS,
    ContentWriter,
    FileJob,
    explained,
    impossible,
    not_restored,
    set_metadata,
)
from fogvault.restore.extras import Deleted, Extras, Kept, kept_within
from fogvault.restore.flags import RestoredFlags
from fogvault.restore.progress import RestoreProgress
from fogvault.restore.safefs import Parts, SafeRoot, check_mount_table
from fogvault.restore.workers import WorkerSetup, WriterProcesses
from fogvault.sizes import counted
from fogvault.storage import ObjectNotFound
from fogvault.storage.local import LocalStorage
from fogvault.targets.ledger import default_state_dir
from fogvault.warning_list import WarningList

log = logging.getLogger("fogvault")

OVERWRITE_MODES = ("always", "if-changed", "never")


@dataclass(slots=True)
class RestoreOptions:
    #: the folder below which the snapshot's paths are recreated; None: the current folder,
    #: except with ``delete``, which needs one named (the CLI requires ``-t``)
    target: str | None = None
    includes: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    #: as includes and excludes, ignoring case (taken after them)
    iincludes: list[str] = field(default_factory=list)
    iexcludes: list[str] = field(default_factory=list)
    overwrite: str = "always"
    #: delete what the snapshot does not have from the folders restored (see extras)
    delete: bool = False
    #: ...even if the backup could not read some files: the snapshot lacks them, so they are
    #: deleted too (without it, such a snapshot is refused for delete)
    delete_unreadable: bool = False
    #: what delete never deletes, besides the repository's local folders and the cache
    #: (the CLI's password file)
    keep: list[Kept] = field(default_factory=list)
    verify: bool = False
    dry_run: bool = False
    #: set the inode flags the snapshot holds (chattr's; borg's default); False: --no-flags
    inode_flags: bool = True
    workers: int | None = None  # spans fetched at once (None: see _fetch_threads)
    processes: bool | None = None  # worker processes write (None: see _decide_processes)
    restore_owner: bool = field(default_factory=lambda: os.geteuid() == 0)


@dataclass(slots=True)
class RestoreSummary:
    files: int = 0
    dirs: int = 0
    links: int = 0
    specials: int = 0
    bytes_written: int = 0
    total_bytes: int = 0
    skipped: int = 0
    verified: int = 0
    deleted: int = 0  # entries (a folder with all in it: one); in a dry run, to delete
    warnings: WarningList = field(default_factory=WarningList)


class Restorer:
    def __init__(
        self,
        repo: Repository,
        snapshot: Snapshot,
        options: RestoreOptions,
        progress: RestoreProgress | None = None,
        deleted: Deleted | None = None,
    ) -> None:
        """``deleted`` is told of each entry ``options.delete`` deletes (or would)."""
        if options.overwrite not in OVERWRITE_MODES:
            raise UsageError(f"--overwrite must be one of {', '.join(OVERWRITE_MODES)}")
        failed = snapshot.summary.files_failed
        if options.delete and failed and not options.delete_unreadable:
            raise UsageError(
                f"--delete refused: the backup of snapshot {snapshot.uid} could not read "
                f"{counted(failed, 'file')}, which the snapshot therefore lacks, so --delete "
                "would delete them from the target. Restore without --delete, or add "
                "--delete-unreadable to delete them too")
        if options.delete and not options.target:
            raise UsageError("delete needs a target folder named (not the current folder "
                             "by default): it deletes what the snapshot lacks there")
        if options.delete:
            check_mount_table()  # before anything is written
        self.repo = repo
        self.snapshot = snapshot
        self._target = os.fsencode(os.path.abspath(options.target or "."))
        self.options = options
        self.progress = progress or RestoreProgress()
        self.summary = RestoreSummary()
        self._includes = PathPatterns(options.includes, options.iincludes)
        self._excludes = PathPatterns(options.excludes, options.iexcludes)
        self._unmatched = set(self._includes.plain())  # include patterns no path matched yet
        self._files: list[FileJob] = []
        self._batch_blobs = 0  # chunks planned in self._files (see PLAN_BATCH_BLOBS)
        self._folders = _FolderQueue()
        self._as_root = os.geteuid() == 0  # folder modes do not keep it out
        self._batch = 0  # the batch being planned
        self._hardlinks: Hardlinks[Parts] = Hardlinks()  # the first name's path
        # the names linked to a hardlinked file's first name, counted as files restored until
        # its contents fail (see _count_incomplete); the first names whose contents failed
        self._links_made: dict[Parts, int] = {}
        self._failed_firsts: set[Parts] = set()
        self._way: Parts = ()  # the folders leading to it are reachable (see _open_way)
        self._way_modes: list[tuple[Parts, int]] = []  # found modes to put back (_close_way)
        #: folders of the snapshot opened by _reach_into whose metadata is not set yet, with
        #: the modes found: put back if the restore stops before it sets theirs (_close_way)
        self._reached: dict[Parts, int] = {}
        self._use_processes: bool | None = None  # decided by _write_contents
        self._processes: WriterProcesses | None = None
        self._deleted = deleted
        self._extras: Extras | None = None  # with options.delete, once the target is open
        #: the kept paths (_kept) at or below the target, as components -> why: never written
        self._kept_here: dict[Parts, str] = {}
        self._spared: set[Parts] = set()  # those warned about
        self._flags = RestoredFlags(enabled=options.inode_flags, delete=options.delete)
        # Entries of the snapshot not restored in full: if any, --delete deletes nothing.
        self._incomplete = 0
        # (tasks handed to the worker processes by its end, files) of each batch written, until
        # those tasks are done and its files' failures are counted
        self._writing: deque[tuple[int, list[FileJob]]] = deque()

    def run(self) -> RestoreSummary:
        target = self._target
        o = self.options
        for patterns in ([*o.includes, *o.iincludes], [*o.excludes, *o.iexcludes]):
            for line in pattern_warnings(patterns):  # they would quietly match nothing
                self.progress.warning(line)
        self._kept_here = kept_within(os.fsencode(os.path.realpath(target)), self._kept())
        if self.options.dry_run:
            self._dry_run(target)
            return self.summary
        with self.repo.lock(writes=False):  # shared: prune cannot delete what is restored
            # ...from now on: a prune that ran since the index was loaded deleted packs it names.
            self.repo.load_index()
            try:
                root = SafeRoot(target)
            except OSError as exc:
                why = ("a file is in the way: the target must be a folder"
                       if isinstance(exc, FileExistsError | NotADirectoryError)
                       else _made_in(exc, target).strerror)
                raise DestinationUnwritable(
                    f"cannot restore into {os.fsdecode(target)}: {why}") from exc
            self._extras = self._find_extras(root)
            try:
                for _ in self._plan(root):
                    if self._files:
                        self._write_contents(root)
                        if self.options.verify:  # reads contents only: folder times stay
                            self._verify(root)
                    self._clear_batch()
                    self._settle_folders(root)
                    release_free_memory()  # the batch's tree reads, freed among live objects
                if self._processes is not None:
                    self._processes.drain()
                self._count_incomplete()
                self._delete_extras(root)  # before folders that keep this process out are set
                self._settle_folders(root, finished=True)
                self._finish_flags(root)
            except BaseException:
                self._stop_processes(stop=True)
                if self._extras is not None:  # an interrupt, an error: say where they are
                    self._extras.leave_aside()
                raise
            finally:
                self._stop_processes(stop=False)
                self._close_way(root)
                root.close()
        return self.summary

    def _dry_run(self, target: bytes) -> None:
        """Plan without writing; with --delete, look at what the target holds."""
        view = SafeRoot.if_exists(target) if self.options.delete else None
        self._extras = self._find_extras(view)
        try:
            for _ in self._plan(None):
                self._clear_batch()
            self._delete_extras(view)
        finally:
            if view is not None:
                view.close()

    def _clear_batch(self) -> None:
        tasks_sent = self._processes.tasks_sent if self._processes is not None else 0
        self._writing.append((tasks_sent, self._files))
        self._files = []
        self._batch_blobs = 0
        self._folders.batch_handed(self._batch, tasks_sent)
        self._batch += 1
        self._count_incomplete()

    def _count_incomplete(self) -> None:
        """Count the files not written in full of the batches whose writing is done: they
        leave the summary's files, which counts the files restored."""
        done = self._processes.tasks_done_in_order() if self._processes is not None else None
        while self._writing and (done is None or self._writing[0][0] <= done):
            for job in self._writing.popleft()[1]:
                links = self._links_made.pop(job.parts, 0) if job.node.nlink > 1 else 0
                if job.failed:
                    self._incomplete += 1
                    self.summary.files -= 1 + links
                    if job.node.nlink > 1:
                        self._failed_firsts.add(job.parts)

    def _stop_processes(self, *, stop: bool) -> None:
        if self._processes is not None:
            self._processes.close(stop=stop)
            self._processes = None

    def _warn(self, message: str) -> None:
        self.summary.warnings.add(message)
        self.progress.warning(message)

    def _note(self, problem: MetadataProblem) -> None:
        """A metadata problem: a warning, or inode flags refused (summed up at the end)."""
        if isinstance(problem, FlagsRefused):
            self._flags.refused(problem)
        else:
            self._warn(problem)

    def _shown(self, parts: Parts) -> str:
        """The entry ``parts`` in a message: its path at the target, as every warning names it
        (also in a dry run, where nothing is written there)."""
        return os.fsdecode(os.path.join(self._target, *parts))

    def _warn_unrestored(self, message: str) -> None:
        """A warning about an entry of the snapshot that is not restored (in full)."""
        self._incomplete += 1
        self._warn(message)

    # ---- phase 1: plan and create ----------------------------------------------------

    def _plan(self, root: SafeRoot | None) -> Iterator[None]:
        """Plan and create entries depth-first; pause (yield) whenever ``self._files`` holds a
        batch or enough folders wait for their metadata, for the caller to write and clear the
        batch, and once at the end."""
        # (path, tree to plan, inside an included path, the selected folder's node); a tree of
        # None marks the end of that folder: everything below it is planned.
        stack: list[tuple[Parts, bytes | None, bool, Node | None]] = [
            ((), self.snapshot.tree, False, None)]
        while stack:
            parts, tree_id, inside_match, folder = stack.pop()
            if tree_id is None:
                self._leave(root, parts, folder)
                if len(self._folders) >= PLAN_BATCH_FILES:
                    yield
                continue
            if (folder is not None and root is not None) or self._extras is not None:
                stack.append((parts, None, False, folder))  # popped after everything below
            tree = self._load_tree(parts, tree_id)
            if tree is None:
                continue
            if self._extras is not None:
                self._extras.entered(parts, tree)
            subfolders = []
            for node in tree.nodes:  # in name order, as the backup met them
                child = (*parts, node.name)
                path = b"/" + b"/".join(child)
                if self._excludes and self._excludes.matches(path):
                    continue
                if self._unmatched:  # also below a folder that matched: it may be named too
                    self._unmatched -= self._includes.matching(path)
                selected = self._selected(path, inside_match)
                if selected and self._kept_here and self._spares(child):
                    continue
                if selected and self._extras is not None:
                    self._extras.writes_in(parts)
                if node.type == DIR:
                    if selected and root is not None and not self._make_dir(root, child):
                        continue  # warned: nothing below it can be restored either
                    if selected:
                        self.summary.dirs += 1
                        node = self._flags.folder(child, node)
                    subfolders.append(
                        (child, node.subtree or b"", selected, node if selected else None))
                elif selected:
                    self._plan_entry(root, child, node)
                    if (len(self._files) >= PLAN_BATCH_FILES  # also within a wide folder
                            or self._batch_blobs >= PLAN_BATCH_BLOBS):
                        yield
            stack.extend(reversed(subfolders))  # reversed: the stack pops them in name order
        if self._extras is not None:
            self._extras.left((), None, made=False)  # the target's own entries
        folded = set(self.options.iincludes)
        for pattern in sorted(self._unmatched):  # a typo would restore nothing, and say nothing
            option = "--iinclude" if pattern in folded else "--include"
            self._warn(f"{option} '{pattern}' matches nothing in snapshot {self.snapshot.uid} "
                       "that is not excluded")
        yield

    def _spares(self, parts: Parts) -> bool:
        """Whether ``parts`` is at or below a kept path at the target (the repository's own
        folders, say, when a snapshot that holds them is restored in place): it is not
        written, with one warning for each kept path."""
        for kept, why in self._kept_here.items():
            if parts[:len(kept)] == kept:
                if kept not in self._spared:
                    self._spared.add(kept)
                    self._warn(f"{self._shown(kept)}: not restored over: {why}")
                return True
        return False

    def _leave(self, root: SafeRoot | None, parts: Parts, folder: Node | None) -> None:
        """Everything below the folder ``parts`` is planned (``folder``: its node if it is
        selected)."""
        if self._extras is not None:
            self._extras.left(parts, folder, made=root is not None and root.made(parts))
        if root is not None:
            root.forget_made(parts)
            if folder is not None:
                self._folders.planned(self._batch, parts, folder, self._stays_reachable(folder))

    def _selected(self, path: bytes, inside_match: bool) -> bool:
        """Whether ``path`` is restored: with includes, if the last include pattern matching it
        is a plain one, or none matches and a folder above it was selected (so an include
        brings a folder whole, and a later ``!`` include takes back a part of it)."""
        if not self._includes:
            return True
        if inside_match and not self._includes.negates:
            return True  # nothing could take it back: spare matching every path below
        decided = self._includes.decide(path)
        return inside_match if decided is None else decided

    def _load_tree(self, parts: Parts, tree_id: bytes) -> Tree | None:
        """The folder's tree; None, with a warning, if no target holds it intact: the rest of
        the snapshot is still restored. The snapshot's own root tree is not optional."""
        try:
            return self.repo.load_tree(tree_id)
        except (IntegrityError, ObjectNotFound) as exc:
            if not parts or not is_damage(exc):
                raise
            self._warn_unrestored(
                f"{self._shown(parts)}: its contents cannot be restored: {exc}")
            return None

    def _stays_reachable(self, folder: Node) -> bool:
        """Whether this process can still reach into ``folder`` once its mode is set."""
        return self._stays_reachable_mode(folder.mode)

    def _stays_reachable_mode(self, mode: int) -> bool:
        """Whether this process can reach into a folder it owns of mode ``mode``."""
        return self._as_root or mode & 0o700 == 0o700

    def _make_dir(self, root: SafeRoot, parts: Parts) -> bool:
        """Make the folder ``parts``; False (with a warning) if it cannot be made."""
        try:
            if not root.made(parts[:-1]):  # in a folder this restore made, nothing is in the way
                self._make_parents(root, parts)
                existing = root.lstat(parts)
                if existing is not None and not stat.S_ISDIR(existing.st_mode):
                    if self.options.overwrite != "always":
                        raise UnsafePath(
                            f"{os.fsdecode(root.path(parts))} exists and is not a folder")
                    root.remove(parts)
                elif existing is not None and self._reach_into(root, parts, existing):
                    self._reached[parts] = stat.S_IMODE(existing.st_mode)
            with root.open_dir(parts, create=True):
                pass
        except OSError as exc:
            self._warn_unrestored(not_restored(root, parts, exc))
            return False
        return True

    def _reach_into(self, root: SafeRoot, parts: Parts, existing: os.stat_result) -> bool:
        """Give this process (not root) read, write and search on a folder it owns at the
        target that lacks them: one the restore of a read-only folder left (``000``, ``555``),
        as a first restore sets such modes last. Its entries could be neither restored nor
        replaced otherwise; its own mode is set again with its metadata, at the end, or (only
        on the way to an include) put back by _close_way. True if it was changed."""
        if self._stays_reachable_mode(existing.st_mode) or existing.st_uid != os.geteuid():
            return False
        with root.open_dir(parts[:-1]) as dir_fd:
            chmod_at(dir_fd, parts[-1], stat.S_IMODE(existing.st_mode) | 0o700)
        return True

    def _make_parents(self, root: SafeRoot, parts: Parts) -> None:
        """Make the folders leading to the entry ``parts`` where they are missing: an included
        entry's are not selected themselves, but must exist, and be reachable."""
        if self._includes and not self._as_root:
            self._open_way(root, parts[:-1])
        with root.open_dir(parts[:-1], create=True):
            pass

    def _open_way(self, root: SafeRoot, folder: Parts) -> None:
        """Reach into the folders down to ``folder`` that the target holds already
        (_reach_into), noting the modes found, which _close_way puts back: those only on the
        way to an include have no metadata to set (a selected folder was reached when it was
        made, and is left alone here). The plan goes depth first, so the folders leading to
        the last ``folder`` are not looked at again."""
        common = 0
        while common < min(len(self._way), len(folder)) and self._way[common] == folder[common]:
            common += 1
        self._way = folder[:common]
        for depth in range(common + 1, len(folder) + 1):
            parts = folder[:depth]
            existing = root.lstat(parts)
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                return  # to be made (0700), or refused by open_dir: nothing found below
            if self._reach_into(root, parts, existing):
                self._way_modes.append((parts, stat.S_IMODE(existing.st_mode)))
            self._way = parts

    def _close_way(self, root: SafeRoot) -> None:
        """Put back the modes found of the folders _reach_into opened that get no mode of their
        own: those _open_way found on the way to an include, and, when the restore stops
        part-way, those of the snapshot not set yet. Children before parents, after everything
        else (also after a failure or an interrupt: a process killed leaves them ``u+rwx``)."""
        left = sorted([*self._way_modes, *self._reached.items()], key=lambda item: len(item[0]))
        self._way_modes.clear()
        self._reached.clear()
        while left:
            parts, mode = left.pop()
            try:
                with root.open_dir(parts[:-1]) as dir_fd:
                    chmod_at(dir_fd, parts[-1], mode)
            except (OSError, UnsafePath) as exc:
                why = exc.strerror if isinstance(exc, OSError) else exc
                self._warn(f"{os.fsdecode(root.path(parts))}: its mode {mode:03o} could not be "
                           f"put back: {why}; chmod {mode:03o} it")

    def _plan_entry(self, root: SafeRoot | None, parts: Parts, node: Node) -> None:
        try:
            # A folder this restore made holds only what it put there: one entry of each name.
            if root is not None and not root.made(parts[:-1]):
                self._make_parents(root, parts)
                if not self._make_room(root, parts, node):
                    self.summary.skipped += 1
                    return
            elif (root is None and self._extras is not None and self.options.overwrite != "never"
                  and not self._extras.would_clear(parts)):  # as _make_room would
                self._warn_in_the_way(parts)
                self.summary.skipped += 1
                return
            self._create(root, parts, node)
        except OSError as exc:  # only writing raises it: a dry run (no root) writes nothing
            assert root is not None
            self._warn_unrestored(not_restored(root, parts, exc))
        except (ValueError, OverflowError) as exc:  # NUL in a link target, absurd numbers
            raise impossible(parts, exc) from exc

    def _make_room(self, root: SafeRoot, parts: Parts, node: Node) -> bool:
        """Decide about an existing entry: False to keep it (and skip this node)."""
        existing = root.lstat(parts)
        if existing is None:
            return True
        mode = self.options.overwrite
        unchanged = (node.type == FILE and stat.S_ISREG(existing.st_mode)
                     and (existing.st_size, existing.st_mtime_ns) == (node.size, node.mtime_ns))
        if mode != "always" and unchanged and self._keeps_links(root, parts, node, existing):
            for problem in self._flags.kept(root, parts, node):
                self._note(problem)
            return False
        if mode == "never":
            return False
        if stat.S_ISDIR(existing.st_mode):
            return self._remove_folder(root, parts)
        else:
            root.remove(parts)
        return True

    def _remove_folder(self, root: SafeRoot, parts: Parts) -> bool:
        """Remove the folder where the snapshot has another entry; False (with a warning) if
        it stays. With --delete, it is moved aside, to be deleted with what the filters
        select in it at the end, as an extra folder is (else no restore could ever replace
        it); without, only if empty."""
        if self._extras is not None:
            if self._extras.clear_in_the_way(parts):
                return True
            self._warn_in_the_way(parts)
            return False
        try:
            root.remove(parts)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise  # the caller's warning, or the restore stops (read-only, full)
            self._warn_unrestored(
                f"{os.fsdecode(root.path(parts))}: a non-empty folder is in the way")
            return False
        return True

    def _warn_in_the_way(self, parts: Parts) -> None:
        assert self._extras is not None
        self._warn_unrestored(f"{self._extras.shown(parts)}: a folder is in the way where the "
                              "snapshot has no folder, and --delete cannot delete all of it")

    def _keeps_links(self, root: SafeRoot, parts: Parts, node: Node, existing: os.stat_result
                     ) -> bool:
        """Whether keeping this unchanged file keeps its hardlinks whole. The first name of its
        link group met stands for the group (the names restored after it are linked to it);
        a later one must be that file already, or be replaced by a link to it."""
        link_key = (node.dev, node.ino)
        if node.nlink < 2:
            return True
        first = self._hardlinks.peek(link_key)
        if first is None:
            self._hardlinks.remember(link_key, parts, node.nlink)
            return True
        linked = root.lstat(first)
        if linked is None or (linked.st_dev, linked.st_ino) != (existing.st_dev, existing.st_ino):
            return False
        self._hardlinks.take(link_key)  # counts this name
        return True

    def _create(self, root: SafeRoot | None, parts: Parts, node: Node) -> None:
        if node.type == FILE:
            self._create_file(root, parts, node)
            return
        if node.type in (CHARDEV, BLOCKDEV) and not self.options.restore_owner:
            self._warn(f"{self._shown(parts)}: device node not restored (needs root)")
            return
        if root is not None:
            with root.open_dir(parts[:-1]) as dir_fd:
                name = parts[-1]
                if node.type == SYMLINK:
                    os.symlink(node.target, name, dir_fd=dir_fd)
                elif node.type == FIFO:
                    os.mkfifo(name, node.mode, dir_fd=dir_fd)
                else:
                    kind = stat.S_IFCHR if node.type == CHARDEV else stat.S_IFBLK
                    os.mknod(name, kind | node.mode, node.rdev, dir_fd=dir_fd)
            # Now, not at the end with the folders': nothing written later changes a link's or
            # a special file's metadata, and keeping their nodes cost ~1 KB each until then.
            self._set_metadata(root, parts, node)
        self.summary.links += node.type == SYMLINK
        self.summary.specials += node.type != SYMLINK

    def _create_file(self, root: SafeRoot | None, parts: Parts, node: Node) -> None:
        """Plan the file ``parts`` (a later name of a hardlinked file: link it). Counted, and
        remembered as the first name of its links, only once it exists: if its creation
        fails, the next name takes its place, as a first name."""
        link_key = (node.dev, node.ino)
        first = self._hardlinks.take(link_key) if node.nlink > 1 else None
        if first is not None:
            if root is not None:
                self._link(root, first, parts)
            if first not in self._failed_firsts:  # a name of a file not restored in full
                self._links_made[first] = self._links_made.get(first, 0) + 1
                self.summary.files += 1
            return
        node, waiting_flags = self._flags.file(node)
        # A file with content is created when its first blob is written: creating it here
        # and opening it again then cost an open and a close more per file. Empty files are
        # complete now, and a hardlink's first name must exist for the links that follow.
        create_now = root is not None and (not node.content or node.nlink > 1)
        if create_now:
            with root.open_file(parts, CREATE_FLAGS) as fd:
                if not node.content:
                    self._set_metadata(root, parts, node, fd)
        if node.nlink > 1:
            self._hardlinks.remember(link_key, parts, node.nlink)
        self.summary.files += 1
        self.summary.total_bytes += node.size
        job = FileJob(parts, node, len(node.content), created=create_now)
        self._files.append(job)
        if waiting_flags:  # once the names linked to it are made
            self._flags.wait(job, waiting_flags)
        # A file of more than SEGMENT_BLOBS is written a segment at a time, but its node's
        # chunk ids (about 70 bytes each) are held until its batch is written: it ends one.
        self._batch_blobs += len(node.content)

    def _link(self, root: SafeRoot, first: Parts, parts: Parts) -> None:
        """Make ``parts`` a hard link to ``first``: refused where the folder, or the file
        (kept by --overwrite, with its i or a), is immutable or append-only, which it says."""
        with root.open_dir(first[:-1]) as src_fd, root.open_dir(parts[:-1]) as dst_fd:
            try:
                os.link(first[-1], parts[-1], src_dir_fd=src_fd, dst_dir_fd=dst_fd,
                        follow_symlinks=False)
            except OSError as exc:
                exc = explained(exc, dst_fd, parts[-1], folder_too=True)
                raise explained(exc, src_fd, first[-1], subject=(
                    f"the file it links to, {os.fsdecode(root.path(first))},")) from None

    # ---- --delete --------------------------------------------------------------------

    def _find_extras(self, root: SafeRoot | None) -> Extras | None:
        if not self.options.delete:
            return None
        return Extras(root, Extras.backed_up(self.snapshot.paths), self._deletes, self._warn,
                      self._kept())

    def _kept(self) -> list[Kept]:
        """What a restore never writes over and --delete never deletes: the repository's local
        folders, its cache folder (the one in use, and the default one), FogVault's state
        folder (the run log, the targets' ledger), and ``options.keep``. Restoring in place a
        snapshot that holds them would otherwise put their old contents back over the ones
        the restore reads (or, with --delete, delete them if the backup excluded them)."""
        kept = [Kept(str(target.raw.root), "a folder of the repository")
                for target in self.repo.targets.targets if isinstance(target.raw, LocalStorage)]
        caches = [default_cache_dir()]
        if self.repo.cache is not None:
            caches.append(self.repo.cache.root.parent)
        kept += [Kept(str(cache), "the cache folder") for cache in caches]
        kept.append(Kept(str(default_state_dir()), "FogVault's state folder"))
        return kept + self.options.keep

    def _deletes(self, path: bytes, inside_match: bool) -> bool:
        """Whether --delete may delete ``path``, which the snapshot lacks: if it would be
        restored, were it there (the filters select it)."""
        return not (self._excludes and self._excludes.matches(path)) and self._selected(
            path, inside_match)

    def _delete_extras(self, root: SafeRoot | None) -> None:
        """Delete what the restored folders hold beyond the snapshot, now that everything is
        written (see extras): only if every entry was restored in full. The folders it changes
        get their times again, but those set at the very end (they keep this process out)."""
        if self._extras is None:
            return
        if self._incomplete:
            self._warn(f"--delete deleted nothing: {counted(self._incomplete, 'entry', 'entries')}"
                       " of the snapshot could not be restored in full, and what it would delete"
                       " could be the only copy left of one; restore again once they can be")
            self._extras.leave_aside()
            return
        dry_run = self.options.dry_run
        for parts, folder in self._extras.delete(self._report_deleted, dry_run=dry_run):
            if root is not None and not dry_run and self._stays_reachable(folder):
                self._set_metadata(root, parts, folder)

    def _report_deleted(self, path: bytes, is_dir: bool) -> None:
        self.summary.deleted += 1
        if self._deleted is not None:
            self._deleted(path, is_dir)

    # ---- phase 2: content ------------------------------------------------------------

    def _write_contents(self, root: SafeRoot) -> None:
        """Write the batch's contents: here (threads) or by worker processes (see workers);
        files of more than SEGMENT_BLOBS chunks here, a segment at a time."""
        jobs, locations, large = [], [], []
        for job in self._files:
            if len(job.node.content) > SEGMENT_BLOBS:
                large.append(job)
            elif (entries := self._locations(job)) is not None:
                jobs.append(job)
                locations.append(entries)
            else:
                self._not_restored(job, 0)
        self.progress.start(self.summary.total_bytes)
        if self._use_processes is None:
            self._decide_processes(root)
        if self._processes is None:
            self._writer(root).write(jobs, locations)
        else:
            for start, end in _tasks(jobs):
                self._processes.submit(jobs[start:end], locations[start:end])
        del locations
        for job in large:
            self._write_in_segments(root, job)
        if self.options.verify and self._processes is not None:
            self._processes.drain()  # verify reads what the workers wrote

    def _write_in_segments(self, root: SafeRoot, job: FileJob) -> None:
        """Write a file of many chunks SEGMENT_BLOBS chunks at a time: the job carries its
        state (created, chunks still to write) from one segment to the next."""
        writer = self._writer(root)
        offset = 0
        for first in range(0, len(job.node.content), SEGMENT_BLOBS):
            if job.failed:  # could not be created or written: warned about, nothing more to read
                return
            entries = self._locations(job, first, first + SEGMENT_BLOBS)
            if entries is None:
                self._not_restored(job, offset)
                return
            writer.write([job], [entries], [offset])
            offset += sum(entry.raw_length for entry in entries)

    def _locations(self, job: FileJob, first: int = 0, end: int | None = None
                   ) -> list[IndexEntry] | None:
        """Where the file's blobs ``first`` to ``end`` are; None (the file is not restored,
        with a warning) if one is in no index: without its length, nothing after it has a
        place either."""
        entries = []
        for blob_id in job.node.content[first:end]:
            entry = self.repo.index.get(blob_id)
            if entry is None:
                job.failed = True
                self._warn(f"{self._shown(job.parts)}: not restored: its blob "
                           f"{blob_id.hex()[:16]} is in no index; run 'fogvault check'")
                return None
            entries.append(entry)
        return entries

    def _not_restored(self, job: FileJob, written: int) -> None:
        """Take the bytes of a file that will not be written (past ``written`` bytes) out of
        the total (the file leaves the files restored with its batch: _count_incomplete)."""
        self.summary.total_bytes -= job.node.size - written

    def _writer(self, root: SafeRoot) -> ContentWriter:
        """Spans are fetched in parallel (remote reads wait on latency; decryption and zstd
        release the GIL) and written by WRITERS threads of their own: the kernel's work for a
        small file is most of a restore's CPU time, and one writing thread left the second
        core idle meanwhile."""
        return ContentWriter(self.repo, root, restore_owner=self.options.restore_owner,
                             fetch_threads=self._fetch_threads(), writers=WRITERS,
                             report=self._report)

    def _fetch_threads(self) -> int:
        """Remote reads wait on latency, so several are in flight; a local folder answers at
        once, and every thread more contends for the GIL with the writers (restoring 50,000
        small files into tmpfs: 11.8-13.6 s with 2 fetch threads, 13.8-14.8 s with 4)."""
        if self.options.workers is not None:
            return self.options.workers
        return LOCAL_FETCH_THREADS if self.repo.targets.reads_local else REMOTE_FETCH_THREADS

    def _start_processes(self, root: SafeRoot, folders: list[str]) -> WriterProcesses | None:
        try:
            processes = WriterProcesses(self._worker_setup(root, folders), PROCESSES, self._report,
                                        self.repo.targets.remember_damage)
            log.debug("restore: contents written by %d worker processes", PROCESSES)
            return processes
        except OSError as exc:  # no processes to be had: this one writes
            log.warning("cannot start restore workers (%s); restoring in one process",
                        exc.strerror or exc)
            return None

    def _decide_processes(self, root: SafeRoot) -> None:
        """Start worker processes for a restore of many files from folders on this machine
        (which they can open by path), once PROCESS_MIN_FILES files are planned (batches cut
        short by folders or chunks are written here until then); a few files, or remote
        targets (bound by their latency, and reached with credentials a worker would need
        too), are written by threads here. Decided once."""
        wanted = self.options.processes
        if wanted is None:
            if (os.cpu_count() or 1) < 2:
                wanted = False
            elif self.summary.files < PROCESS_MIN_FILES:
                return  # not yet
            else:
                wanted = True
        folders = self.repo.targets.local_folders() if wanted and sys.executable else None
        if folders is not None:
            self._processes = self._start_processes(root, folders)
        self._use_processes = self._processes is not None

    def _worker_setup(self, root: SafeRoot, folders: list[str]) -> WorkerSetup:
        repo = self.repo
        policy = repo.targets.policy
        if policy.limit_download:  # a bucket per process: the workers share the limit
            policy = dataclasses.replace(
                policy, limit_download=max(1, policy.limit_download // PROCESSES))
        return WorkerSetup(
            folders=folders, policy=policy,
            master=repo.master.to_bytes(), key_id=repo.key_id, config=repo.config,
            target=root.root, target_fd=root.root_fd, restore_owner=self.options.restore_owner,
            log_level=logging.getLogger("fogvault").getEffectiveLevel(),
        )

    def _report(self, done: int, stored: int, warnings: list[MetadataProblem]) -> None:
        """What a writer did (in this thread, in order)."""
        for problem in warnings:
            self._note(problem)
        self.progress.bytes_done(done)
        self.summary.bytes_written += stored

    # ---- phase 3: metadata -----------------------------------------------------------

    def _settle_folders(self, root: SafeRoot, *, finished: bool = False) -> None:
        """Set the metadata of the folders whose contents are all written (``finished``: of
        every folder left). Waits for the worker processes when too many folders wait: a
        plan of many folders and few files would otherwise run ahead of the workers."""
        self._set_folders(root, finished)
        while (len(self._folders) >= PLAN_BATCH_FILES and self._processes is not None
               and self._processes.busy()):
            self._processes.wait_for_reports()
            self._set_folders(root, finished)

    def _set_folders(self, root: SafeRoot, finished: bool) -> None:
        done = self._processes.tasks_done_in_order() if self._processes is not None else 0
        for parts, node in self._folders.settled(done, finished=finished):
            self._set_metadata(root, parts, node)
            self._reached.pop(parts, None)

    def _set_metadata(self, root: SafeRoot, parts: Parts, node: Node, fd: int | None = None
                      ) -> None:
        for problem in set_metadata(root, parts, node, self.options.restore_owner, fd):
            self._note(problem)

    def _finish_flags(self, root: SafeRoot) -> None:
        """The inode flags that waited for the end, and a line for each kind refused."""
        for line in [*self._flags.finish(root), *self._flags.summary()]:
            self._warn(line)

    # ---- verify ----------------------------------------------------------------------

    def _verify(self, root: SafeRoot) -> None:
        for job in self._files:
            if job.failed:  # warned about already
                continue
            path = os.fsdecode(root.path(job.parts))
            try:
                matches = self._file_matches(root, job)
            except OSError as exc:  # unreadable (mode 0200 without root), an I/O error
                self._warn_unrestored(f"{path}: cannot verify: {exc.strerror}")
                continue
            if matches:
                self.summary.verified += 1
            else:
                self._warn_unrestored(f"{path}: restored content does not match")

    def _file_matches(self, root: SafeRoot, job: FileJob) -> bool:
        with root.open_file(job.parts, os.O_RDONLY) as fd:
            if os.fstat(fd).st_size != job.node.size:
                return False
            offset = 0
            for blob_id in job.node.content:
                entry = self.repo.index.get(blob_id)
                if entry is None:
                    return False
                data = os.pread(fd, entry.raw_length, offset)
                if self.repo.blob_id(data) != blob_id:
                    return False
                offset += entry.raw_length
            return offset == job.node.size


def _made_in(exc: OSError, target: bytes) -> OSError:
    """``exc``, the target folder refused, saying why where the folder it was to be made in
    (the nearest that exists) is immutable or append-only."""
    folder = os.path.dirname(target)
    while not os.path.lexists(folder) and folder != os.path.dirname(folder):
        folder = os.path.dirname(folder)
    folder = os.path.realpath(folder)
    return explained(exc, None, folder, subject=os.fsdecode(folder))


PLAN_BATCH_FILES = 2_000  # files planned before their contents are written (see the top)
PLAN_BATCH_BLOBS = 16_384  # ...or chunks of those files (about 9 MB of plan)
SEGMENT_BLOBS = PLAN_BATCH_BLOBS  # a file of more chunks is written a segment at a time
WRITERS = 2  # threads writing files in this process (see _writer)
LOCAL_FETCH_THREADS = 2  # spans read at once from a local folder (see _fetch_threads)
REMOTE_FETCH_THREADS = 4  # from other targets
PROCESSES = 2  # worker processes, where they are used (see _decide_processes)
PROCESS_MIN_FILES = 1_000  # files planned for worker processes to pay off
TASK_FILES = 256  # consecutive files handed to a worker process at once...
TASK_BYTES = 16 * 1024 * 1024  # ...or fewer, if these many bytes are reached first


def _tasks(jobs: list[FileJob]) -> Iterator[tuple[int, int]]:
    """``jobs`` cut into (start, end) runs for worker processes: consecutive files, whose blobs
    were packed together by the backup, so that two workers rarely read the same span."""
    start, size = 0, 0
    for number, job in enumerate(jobs):
        size += job.node.size
        if number + 1 - start >= TASK_FILES or size >= TASK_BYTES:
            yield start, number + 1
            start, size = number + 1, 0
    if start < len(jobs):
        yield start, len(jobs)


class _FolderQueue:
    """Folders whose subtrees are planned, waiting for the batches holding their files to be
    written, in the order they were left (children before parents)."""

    def __init__(self) -> None:
        self._waiting: deque[tuple[int, Parts, Node]] = deque()  # (batch, path, node)
        self._last: list[tuple[Parts, Node]] = []  # set at the very end (see the top)
        # (batch, tasks handed to worker processes up to its end): written once they are done
        self._handed: deque[tuple[int, int]] = deque()
        self._written = -1  # every batch up to this one is written

    def __len__(self) -> int:
        return len(self._waiting)

    def planned(self, batch: int, parts: Parts, node: Node, reachable: bool) -> None:
        if reachable:
            self._waiting.append((batch, parts, node))
        else:
            self._last.append((parts, node))

    def batch_handed(self, batch: int, tasks_sent: int) -> None:
        """``batch`` is written (here), or handed to the worker processes, which have been
        sent ``tasks_sent`` tasks by then (0: no workers). Only a batch that folders wait for
        is recorded: a folder is queued while its batch is planned, before it is handed."""
        if self._waiting and self._waiting[-1][0] == batch:
            self._handed.append((batch, tasks_sent))

    def settled(self, done: int, *, finished: bool) -> Iterator[tuple[Parts, Node]]:
        """The folders whose batches are written, once the workers have done every task up
        to number ``done`` (0 without workers)."""
        while self._handed and (finished or self._handed[0][1] <= done):
            self._written = self._handed.popleft()[0]
        while self._waiting and (finished or self._waiting[0][0] <= self._written):
            _, parts, node = self._waiting.popleft()
            yield parts, node
        if finished:
            yield from self._last
            self._last.clear()
