"""Restoring a snapshot into a target folder, byte for byte, with metadata.

Three phases, the first two taking turns for each batch of ``PLAN_BATCH_FILES`` files:

1. **Plan and create** (one thread, depth-first): folders, symlinks, fifos, devices, hardlinks,
   empty files and hardlinked files' first names are created below the target through
   :class:`SafeRoot` (never following a symlink); other files are created with their first
   blob. Each file's chunks are mapped to (file, offset) destinations.
2. **Content** of the batch: each needed pack is read in spans of at most ``FETCH_SPAN``
   bytes, one ranged read each, and their blobs are verified and decrypted, a thread per span
   in flight; ``WRITERS`` threads write the destinations with ``pwrite``, each file by one of
   them (its blobs in the order they arrive, so a file's state has a single owner; their
   warnings are reported by this thread). A blob used by many files
   of a batch is fetched once (once per batch that uses it). All-zero blobs are not written,
   so sparse files keep their holes. Batches bound the plan's memory for regular files (a
   file's node, destinations and index entries: about 1 KiB); folders, links, specials and
   hardlink sources are still kept to the end, for their metadata.
3. **Metadata**: ownership (as root), xattrs, modes and times; folders last and deepest first,
   so writing their contents does not disturb their mtimes. A regular file gets its metadata
   as soon as its content is complete, through the descriptor that wrote the last of it.

A restored path is always the snapshot's absolute path re-rooted below the target. Progress
totals grow batch by batch, as files are planned.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from fogvault.errors import IntegrityError, MalformedObject, UnsafePath, UsageError
from fogvault.fsmeta import apply_file_metadata, apply_metadata
from fogvault.patterns import PathPatterns
from fogvault.repo.index import IndexEntry, pack_spans
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot
from fogvault.repo.tree import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Node
from fogvault.restore.progress import RestoreProgress
from fogvault.restore.safefs import Parts, SafeRoot

OVERWRITE_MODES = ("always", "if-changed", "never")


@dataclass(slots=True)
class RestoreOptions:
    target: str = "."
    includes: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    overwrite: str = "always"
    verify: bool = False
    dry_run: bool = False
    workers: int | None = None  # spans fetched at once (None: see _fetch_threads)
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
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _FileJob:
    parts: Parts
    node: Node
    pending: int  # blobs not yet written; whoever writes the last one sets the metadata
    created: bool  # False until its first blob arrives (see _create_file)
    end: int = 0  # where the last byte written so far ends
    failed: bool = False  # could not be created: its blobs are skipped


@dataclass(slots=True)
class _Share:
    """One writer's part of a span: (file, offset, plaintext) to write, then what it did."""

    blobs: list[tuple[_FileJob, int, bytes]] = field(default_factory=list)
    done: int = 0  # bytes restored
    stored: int = 0  # bytes written (zero blocks left as holes are not)
    warnings: list[str] = field(default_factory=list)  # reported by the main thread


class Restorer:
    def __init__(
        self,
        repo: Repository,
        snapshot: Snapshot,
        options: RestoreOptions,
        progress: RestoreProgress | None = None,
    ) -> None:
        if options.overwrite not in OVERWRITE_MODES:
            raise UsageError(f"--overwrite must be one of {', '.join(OVERWRITE_MODES)}")
        self.repo = repo
        self.snapshot = snapshot
        self.options = options
        self.progress = progress or RestoreProgress()
        self.summary = RestoreSummary()
        self._includes = PathPatterns(options.includes)
        self._excludes = PathPatterns(options.excludes)
        self._files: list[_FileJob] = []
        self._dirs: list[tuple[Parts, Node]] = []
        self._others: list[tuple[Parts, Node]] = []
        self._hardlinks: dict[tuple[int, int], Parts] = {}
        self._root: SafeRoot | None = None
        self._writing = threading.local()  # .share: the _Share a writer thread is writing

    def run(self) -> RestoreSummary:
        target = os.fsencode(os.path.abspath(self.options.target))
        if self.options.dry_run:
            for _ in self._plan(None):
                self._files.clear()
            return self.summary
        with self.repo.lock(writes=False):  # shared: prune cannot delete what is restored
            self._root = SafeRoot(target)
            try:
                for _ in self._plan(self._root):
                    self._write_contents(self._root)
                    if self.options.verify:  # reads contents only: folder times stay
                        self._verify(self._root)
                    self._files.clear()
                self._apply_metadata(self._root)
            finally:
                self._root.close()
        return self.summary

    def _warn(self, message: str) -> None:
        share = getattr(self._writing, "share", None)
        if share is not None:  # in a writer: the main thread reports it (_collect), in order
            share.warnings.append(message)
            return
        self.summary.warnings.append(message)
        self.progress.warning(message)

    def _not_restored(self, parts: Parts, exc: OSError) -> None:
        self._warn(f"{os.fsdecode(b'/'.join(parts))}: cannot restore: {exc.strerror}")

    # ---- phase 1: plan and create ----------------------------------------------------

    def _plan(self, root: SafeRoot | None) -> Iterator[None]:
        """Plan and create entries depth-first; pause (yield) whenever ``self._files`` holds a
        batch, for the caller to write and clear it, and once at the end."""
        stack: list[tuple[Parts, bytes, bool]] = [((), self.snapshot.tree, False)]
        while stack:
            parts, tree_id, inside_match = stack.pop()
            tree = self.repo.load_tree(tree_id)
            for node in reversed(tree.nodes):  # reversed: the stack pops in name order
                child = (*parts, node.name)
                path = b"/" + b"/".join(child)
                if self._excludes and self._excludes.matches(path):
                    continue
                selected = inside_match or not self._includes or self._includes.matches(path)
                if node.type == DIR:
                    if selected and root is not None:
                        self._make_dir(root, child, node)
                    if selected:
                        self.summary.dirs += 1
                        self._dirs.append((child, node))
                    stack.append((child, node.subtree or b"", selected))
                elif selected:
                    self._plan_entry(root, child, node)
                    if len(self._files) >= PLAN_BATCH_FILES:  # also within a wide folder
                        yield
        yield

    def _make_dir(self, root: SafeRoot, parts: Parts, node: Node) -> None:
        if not root.made(parts[:-1]):  # in a folder this restore made, nothing is in the way
            with root.open_dir(parts[:-1], create=True):
                pass  # an included folder's parents are not selected themselves, but must exist
            existing = root.lstat(parts)
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                if self.options.overwrite != "always":
                    raise UnsafePath(
                        f"{os.fsdecode(root.path(parts))} exists and is not a folder")
                root.remove(parts)
        with root.open_dir(parts, create=True):
            pass

    def _plan_entry(self, root: SafeRoot | None, parts: Parts, node: Node) -> None:
        # A folder this restore made holds only what it put there: one entry of each name.
        if root is not None and not root.made(parts[:-1]):
            with root.open_dir(parts[:-1], create=True):
                pass  # parents of an included entry exist even if not selected themselves
            if not self._make_room(root, parts, node):
                self.summary.skipped += 1
                return
        try:
            self._create(root, parts, node)
        except OSError as exc:
            self._not_restored(parts, exc)
        except (ValueError, OverflowError) as exc:  # NUL in a link target, absurd numbers
            raise _impossible(parts, exc) from exc

    def _make_room(self, root: SafeRoot, parts: Parts, node: Node) -> bool:
        """Decide about an existing entry: False to keep it (and skip this node)."""
        existing = root.lstat(parts)
        if existing is None:
            return True
        mode = self.options.overwrite
        if mode == "never":
            return False
        if mode == "if-changed" and node.type == FILE and stat.S_ISREG(existing.st_mode):
            unchanged = (existing.st_size, existing.st_mtime_ns) == (node.size, node.mtime_ns)
            if unchanged:
                return False
        if stat.S_ISDIR(existing.st_mode):
            try:
                root.remove(parts)
            except OSError:
                self._warn(f"{os.fsdecode(root.path(parts))}: a non-empty folder is in the way")
                return False
        else:
            root.remove(parts)
        return True

    def _create(self, root: SafeRoot | None, parts: Parts, node: Node) -> None:
        if node.type == FILE:
            self._create_file(root, parts, node)
            return
        if node.type in (CHARDEV, BLOCKDEV) and not self.options.restore_owner:
            self._warn(f"{os.fsdecode(b'/'.join(parts))}: device node not restored (needs root)")
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
        self.summary.links += node.type == SYMLINK
        self.summary.specials += node.type != SYMLINK
        self._others.append((parts, node))

    def _create_file(self, root: SafeRoot | None, parts: Parts, node: Node) -> None:
        self.summary.files += 1
        link_key = (node.dev, node.ino)
        first = self._hardlinks.get(link_key) if node.nlink > 1 else None
        if first is not None:
            if root is not None:
                with root.open_dir(first[:-1]) as src_fd, root.open_dir(parts[:-1]) as dst_fd:
                    os.link(first[-1], parts[-1], src_dir_fd=src_fd, dst_dir_fd=dst_fd,
                            follow_symlinks=False)
            return
        if node.nlink > 1:
            self._hardlinks[link_key] = parts
        self.summary.total_bytes += node.size
        # A file with content is created when its first blob is written: creating it here
        # and opening it again then cost an open and a close more per file. Empty files are
        # complete now, and a hardlink's first name must exist for the links that follow.
        create_now = root is not None and (not node.content or node.nlink > 1)
        if create_now:
            with root.open_file(parts, _CREATE) as fd:
                if not node.content:
                    self._set_metadata(root, parts, node, fd)
        self._files.append(_FileJob(parts, node, len(node.content), created=create_now))

    # ---- phase 2: content ------------------------------------------------------------

    def _write_contents(self, root: SafeRoot) -> None:
        by_pack: dict[bytes, dict[bytes, IndexEntry]] = defaultdict(dict)
        destinations: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
        for number, job in enumerate(self._files):
            offset = 0
            for blob_id in job.node.content:
                entry = self.repo.index.get(blob_id)
                if entry is None:
                    raise IntegrityError(
                        f"blob {blob_id.hex()} of {os.fsdecode(b'/'.join(job.parts))} "
                        "is not in the index; run 'fogvault check'"
                    )
                by_pack[entry.pack_id][blob_id] = entry
                destinations[blob_id].append((number, offset))
                offset += entry.raw_length
        self.progress.start(self.summary.total_bytes)
        # A 16 MiB pack read at once was held as ciphertext and as plaintext together, in
        # each of the ``workers`` reads in flight and in the one being written: about 160 MiB
        # (and ``pack_size`` may be up to 512 MiB). Reading at most FETCH_SPAN bytes at a time
        # bounds that to about 2 x FETCH_SPAN per read; the local reads cost no more, the remote
        # ones a request per span (1 MiB: 4 in flight keep ~4 MiB per round trip moving).
        # Restoring 50,000 small files peaked at 150 MiB with 4 MiB spans and at 112 MiB with
        # 1 MiB spans, in the same time (docs/performance.md, "Session 3").
        fetches = [group for entries in by_pack.values()
                   for group in pack_spans(entries.values(), FETCH_SPAN)]
        del by_pack

        # Spans are fetched in parallel (remote reads wait on latency; decryption and zstd
        # release the GIL) and written by WRITERS threads of their own: the kernel's work for a
        # small file (create, copy into the page cache, owner, mode, times) is most of a
        # restore's CPU time, and one writing thread left the second core idle meanwhile.
        # (Every fetch thread writing what it fetched handed the GIL over at each system
        # call, doubling the CPU time.) Held: the spans in flight, and up to 3 x WRITERS
        # shares waiting to be written or being written (3 spans).
        workers = self._fetch_threads()
        writers = [ThreadPoolExecutor(1, thread_name_prefix="restore-writer")
                   for _ in range(WRITERS)]
        queued: deque[Future[_Share]] = deque()
        try:
            for blobs in self.repo.read_spans(fetches, threads=workers, ahead=workers - 1):
                for writer, share in zip(writers, self._split(blobs, destinations), strict=True):
                    if share.blobs:
                        queued.append(writer.submit(self._write_share, root, share))
                del blobs, share  # the plaintexts are held by the queued shares alone
                while len(queued) > 2 * WRITERS:
                    self._collect(queued.popleft())
            while queued:
                self._collect(queued.popleft())
        finally:
            for writer in writers:  # cancel what has not started on both, then wait for both
                writer.shutdown(wait=False, cancel_futures=True)
            for writer in writers:
                writer.shutdown()

    def _fetch_threads(self) -> int:
        """Remote reads wait on latency, so several are in flight; a local folder answers at
        once, and every thread more contends for the GIL with the writers (restoring 50,000
        small files into tmpfs: 11.8-13.6 s with 2 fetch threads, 13.8-14.8 s with 4)."""
        if self.options.workers is not None:
            return self.options.workers
        return LOCAL_FETCH_THREADS if self.repo.targets.reads_local else REMOTE_FETCH_THREADS

    def _split(self, blobs: list[tuple[IndexEntry, bytes]],
               destinations: dict[bytes, list[tuple[int, int]]]) -> list[_Share]:
        """A span's blobs for each writer: a file's blobs always go to the same one."""
        shares = [_Share() for _ in range(WRITERS)]
        for entry, data in blobs:
            for number, offset in destinations[entry.blob_id]:
                shares[number % WRITERS].blobs.append((self._files[number], offset, data))
        return shares

    def _collect(self, written: Future[_Share]) -> None:
        """Report a share the writers finished (raising what writing it raised)."""
        share = written.result()
        for message in share.warnings:
            self._warn(message)
        self.progress.bytes_done(share.done)
        self.summary.bytes_written += share.stored

    def _write_share(self, root: SafeRoot, share: _Share) -> _Share:
        """Write one writer's blobs of a span (in a writer thread)."""
        self._writing.share = share
        try:
            share.blobs.reverse()
            while share.blobs:  # each plaintext is dropped as soon as it is written
                job, offset, data = share.blobs.pop()
                share.done += len(data)
                share.stored += self._write_blob(root, job, offset, data)
                del data
        finally:
            self._writing.share = None
        return share

    def _write_blob(self, root: SafeRoot, job: _FileJob, offset: int, data: bytes) -> int:
        """Write one blob of ``job`` (all of a file's blobs come from one thread); the bytes
        written, without the zero blocks left as holes."""
        if job.failed:
            return 0
        runs = _data_runs(data)
        last = job.pending == 1
        if not runs and not last:  # all holes, and not the file's last blob: nothing to do
            job.pending -= 1
            return 0
        fd = self._open_content(root, job)
        if fd is None:
            return 0
        try:
            for start, end in runs:
                view = memoryview(data)[start:end]
                position = offset + start
                while view:
                    written = os.pwrite(fd, view, position)
                    view, position = view[written:], position + written
            if runs:
                job.end = max(job.end, offset + runs[-1][1])
            job.pending -= 1
            if last:
                self._finish_file(root, job, fd)
        finally:
            os.close(fd)
        return sum(end - start for start, end in runs)

    def _open_content(self, root: SafeRoot, job: _FileJob) -> int | None:
        """Open ``job``'s file for writing (the caller closes it), creating it with its first
        blob; None (with a warning, as the plan phase gives) if it cannot be created."""
        if job.created:
            return root.open_fd(job.parts, os.O_WRONLY)
        try:
            fd = root.open_fd(job.parts, _CREATE)
        except OSError as exc:
            job.failed = True
            self._not_restored(job.parts, exc)
            return None
        job.created = True
        return fd

    def _finish_file(self, root: SafeRoot, job: _FileJob, fd: int) -> None:
        """Size and metadata of a file whose blobs are all written. Files are not pre-sized
        (one system call less per file): only one whose last bytes are zeros, skipped to
        leave a hole, still ends short of its size."""
        if job.end < job.node.size:
            try:
                os.ftruncate(fd, job.node.size)
            except OSError as exc:
                self._warn(f"{os.fsdecode(root.path(job.parts))}: cannot set size: {exc.strerror}")
            except (ValueError, OverflowError) as exc:  # a size no file system has
                raise _impossible(job.parts, exc) from exc
        self._set_metadata(root, job.parts, job.node, fd)

    # ---- phase 3: metadata -----------------------------------------------------------

    def _apply_metadata(self, root: SafeRoot) -> None:
        for parts, node in self._others:
            self._set_metadata(root, parts, node)
        for parts, node in sorted(self._dirs, key=lambda d: len(d[0]), reverse=True):
            self._set_metadata(root, parts, node)

    def _set_metadata(self, root: SafeRoot, parts: Parts, node: Node, fd: int | None = None
                      ) -> None:
        """Metadata of one entry: through ``fd`` if the caller holds the file open, else
        through its folder."""
        owner = self.options.restore_owner
        try:
            if fd is not None:
                problems = apply_file_metadata(fd, node, restore_owner=owner)
            else:
                with root.open_dir(parts[:-1]) as dir_fd:  # reached without following symlinks
                    problems = apply_metadata(dir_fd, parts[-1], node, restore_owner=owner)
        except OSError as exc:
            problems = [f"cannot set metadata: {exc.strerror}"]
        except (ValueError, OverflowError) as exc:  # NUL in an xattr name, absurd numbers
            raise _impossible(parts, exc) from exc
        for problem in problems:
            self._warn(f"{os.fsdecode(root.path(parts))}: {problem}")

    # ---- verify ----------------------------------------------------------------------

    def _verify(self, root: SafeRoot) -> None:
        for job in self._files:
            if job.failed:  # warned about already
                continue
            if self._file_matches(root, job):
                self.summary.verified += 1
            else:
                self._warn(f"{os.fsdecode(root.path(job.parts))}: restored content does not match")

    def _file_matches(self, root: SafeRoot, job: _FileJob) -> bool:
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


def _impossible(parts: Parts, exc: Exception) -> MalformedObject:
    """A node whose values no file system produces (the tree decoder checks types, not
    ranges): a malformed snapshot, not a crash."""
    return MalformedObject(
        f"{os.fsdecode(b'/'.join(parts))}: impossible entry in snapshot ({exc})"
    )


HOLE_BLOCK = 64 * 1024
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL
PLAN_BATCH_FILES = 2_000  # files planned before their contents are written (see the top)
WRITERS = 2  # threads writing files (see _write_contents)
LOCAL_FETCH_THREADS = 2  # spans read at once from a local folder (see _fetch_threads)
REMOTE_FETCH_THREADS = 4  # from other targets
FETCH_SPAN = 1024 * 1024  # bytes of a pack read at once (a larger blob is read alone)


def _data_runs(data: bytes) -> list[tuple[int, int]]:
    """The (start, end) ranges of ``data`` that are not all-zero ``HOLE_BLOCK`` blocks: what
    must be written so that zero blocks stay holes (sparse files); a file whose last bytes were
    skipped is extended to its size when it is complete."""
    runs: list[tuple[int, int]] = []
    size = len(data)
    for start in range(0, size, HOLE_BLOCK):
        end = min(start + HOLE_BLOCK, size)
        # A non-zero first or last byte settles it without counting the block's zeros: that
        # count took ~0.7 s of the writing thread per GiB restored.
        if not (data[start] or data[end - 1]) and data.count(0, start, end) == end - start:
            continue
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs
