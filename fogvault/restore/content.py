"""Writing planned files' contents: blobs fetched span by span, each file written by one writer.

Used by the restorer in its own process (a fetch thread per span in flight, ``writers``
threads writing) and by each restore worker process (everything in one thread; see
``workers``). A file's blobs are written in the order they arrive, all by the same writer, so
a file's state has a single owner; whoever writes its last blob sets its size and metadata
through the descriptor that wrote it. All-zero blocks are not written, so sparse files keep
their holes.

A blob that no target holds intact costs only the files that use it: the rest of each such file
is written, the blob's bytes are left as zeros, and the file gets its size but not its metadata
(so that its time differs from the snapshot's, and ``--overwrite if-changed`` writes it again
once the repository is repaired), with a warning naming the file and the blob.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from fogvault.errors import DestinationUnwritable, MalformedObject, UnsafePath
from fogvault.fsmeta import (
    LOCKED,
    LOCKING_FLAGS,
    FlagsRefused,
    MetadataProblem,
    apply_file_metadata,
    apply_metadata,
    flags_at,
)
from fogvault.repo.index import IndexEntry
from fogvault.repo.pack import pack_spans
from fogvault.repo.repository import BlobDamage, Repository
from fogvault.repo.tree import Node
from fogvault.restore.safefs import Parts, SafeRoot

HOLE_BLOCK = 64 * 1024
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL
FETCH_SPAN = 1024 * 1024  # bytes of a pack read at once (a larger blob is read alone)
#: A write that fails with these stops the restore: no other entry could be written either.
UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})

#: what a writer reports after each share: bytes restored, bytes written (holes are not),
#: warnings (and inode flags refused, which the restore sums up)
Report = Callable[[int, int, list[MetadataProblem]], None]


@dataclass(slots=True)
class FileJob:
    parts: Parts
    node: Node
    pending: int  # blobs not yet written; whoever writes the last one sets the metadata
    created: bool  # False until its first blob arrives: the file is created with it
    end: int = 0  # where the last byte written so far ends
    failed: bool = False  # could not be created or written: its blobs are skipped
    unreadable: int = 0  # places of blobs no target could give, left as zeros...
    first_unreadable: str = ""  # ...the first of them met, described


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A blob of a file that no target could give intact, and where it goes in the file."""

    entry: IndexEntry
    offset: int
    reason: str  # the error's text: the error itself would hold its traceback's frames

    def describe(self) -> str:
        end = self.offset + self.entry.raw_length
        return (f"bytes {self.offset}-{end} (blob {self.entry.blob_id.hex()[:16]} in pack "
                f"{self.entry.pack_id.hex()[:16]}: {self.reason})")


@dataclass(slots=True)
class _Share:
    """One writer's part of a span: (file, offset, plaintext) to write, then what it did."""

    blobs: list[tuple[FileJob, int, bytes | Unreadable]] = field(default_factory=list)
    done: int = 0  # bytes restored
    stored: int = 0  # bytes written (zero blocks left as holes are not)
    warnings: list[MetadataProblem] = field(default_factory=list)  # reported by the calling thread


class ContentWriter:
    """Writes the contents of files already planned (folders made, empty files created).

    ``fetch_threads`` spans are read at once (0: read in the calling thread) and ``writers``
    threads write them (0: the calling thread writes). ``report`` is called in the calling
    thread, in order, after each share is written (it may raise to stop)."""

    def __init__(self, repo: Repository, root: SafeRoot, *, restore_owner: bool,
                 fetch_threads: int, writers: int, report: Report) -> None:
        self.repo = repo
        self.root = root
        self.restore_owner = restore_owner
        self.fetch_threads = fetch_threads
        self.writers = writers
        self.report = report

    def write(self, jobs: list[FileJob], locations: list[list[IndexEntry]],
              starts: list[int] | None = None) -> None:
        """Write ``jobs``, the blobs of ``jobs[i]`` being at ``locations[i]`` (in file order),
        from offset ``starts[i]`` of the file (default: all from the start)."""
        by_pack: dict[bytes, dict[bytes, IndexEntry]] = defaultdict(dict)
        destinations: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
        for number, entries in enumerate(locations):
            offset = starts[number] if starts is not None else 0
            for entry in entries:
                by_pack[entry.pack_id][entry.blob_id] = entry
                destinations[entry.blob_id].append((number, offset))
                offset += entry.raw_length
        # A 16 MiB pack read at once was held as ciphertext and as plaintext together, in
        # each of the reads in flight and in the one being written: about 160 MiB (and
        # ``pack_size`` may be up to 512 MiB). Reading at most FETCH_SPAN bytes at a time
        # bounds that to about 2 x FETCH_SPAN per read; the local reads cost no more, the
        # remote ones a request per span (docs/performance-log.md, "Session 3").
        fetches = [group for entries in by_pack.values()
                   for group in pack_spans(entries.values(), FETCH_SPAN)]
        del by_pack
        spans = self.repo.read_spans(fetches, threads=self.fetch_threads,
                                     ahead=max(self.fetch_threads - 1, 0), salvage=True)
        if self.writers == 0:
            for blobs in spans:
                share = _split(blobs, destinations, jobs, 1)[0]
                del blobs
                self._finish_share(self._write_share(share))
            return
        self._write_in_threads(spans, destinations, jobs)

    def _write_in_threads(self, spans: Iterator[list[tuple[IndexEntry, bytes | BlobDamage]]],
                          destinations: dict[bytes, list[tuple[int, int]]],
                          jobs: list[FileJob]) -> None:
        # Held: the spans in flight, and up to 3 x writers shares waiting to be written or
        # being written. (Every fetch thread writing what it fetched handed the GIL over at
        # each system call, doubling the CPU time.)
        writers = [ThreadPoolExecutor(1, thread_name_prefix="restore-writer")
                   for _ in range(self.writers)]
        queued: deque[Future[_Share]] = deque()
        try:
            for blobs in spans:
                shares = _split(blobs, destinations, jobs, self.writers)
                for writer, share in zip(writers, shares, strict=True):
                    if share.blobs:
                        queued.append(writer.submit(self._write_share, share))
                del blobs, shares, share  # the plaintexts are held by the queued shares alone
                while len(queued) > 2 * self.writers:
                    self._finish_share(queued.popleft().result())
            while queued:
                self._finish_share(queued.popleft().result())
        finally:
            for writer in writers:  # cancel what has not started on all, then wait for all
                writer.shutdown(wait=False, cancel_futures=True)
            for writer in writers:
                writer.shutdown()

    def _finish_share(self, share: _Share) -> None:
        self.report(share.done, share.stored, share.warnings)

    def _write_share(self, share: _Share) -> _Share:
        """Write one writer's blobs of a span, dropping each plaintext once written."""
        share.blobs.reverse()
        while share.blobs:
            job, offset, data = share.blobs.pop()
            if isinstance(data, Unreadable):
                share.done += data.entry.raw_length
                job.unreadable += 1
                job.first_unreadable = job.first_unreadable or data.describe()
                data = b""  # nothing to write: the blob's bytes stay a hole
            share.done += len(data)
            share.stored += self._write_blob(job, offset, data, share.warnings)
            del data
        return share

    def _write_blob(self, job: FileJob, offset: int, data: bytes, warnings: list[MetadataProblem]
                    ) -> int:
        """Write one blob of ``job``; the bytes written, without the zero blocks left as
        holes."""
        if job.failed:
            return 0
        runs = data_runs(data)
        last = job.pending == 1
        if not runs and not last:  # all holes, and not the file's last blob: nothing to do
            job.pending -= 1
            return 0
        try:
            # Created with its first blob: an open and a close less per file.
            fd = self.root.open_fd(job.parts, os.O_WRONLY if job.created else CREATE_FLAGS)
            job.created = True
            try:
                _write_runs(fd, data, offset, runs)
                if runs:
                    job.end = max(job.end, offset + runs[-1][1])
                job.pending -= 1
                if last:
                    self._finish_file(job, fd, warnings)
            finally:
                os.close(fd)  # where NFS and CIFS report a full disk
        except OSError as exc:  # too large for the file system, an I/O error: left as it is
            warnings.append(not_restored(self.root, job.parts, exc))
            job.failed = True
            return 0
        return sum(end - start for start, end in runs)

    def _finish_file(self, job: FileJob, fd: int, warnings: list[MetadataProblem]) -> None:
        """Size and metadata of a file whose blobs are all written. Files are not pre-sized
        (one system call less per file): only one whose last bytes are zeros, skipped to
        leave a hole, still ends short of its size. A file that cannot be given its size is
        not restored: it gets no metadata."""
        if job.end < job.node.size:
            try:
                os.ftruncate(fd, job.node.size)
            except (ValueError, OverflowError) as exc:  # a size no file system has
                raise impossible(job.parts, exc) from exc
        if job.unreadable:
            warnings.append(_partly_restored(self.root, job))
            job.failed = True  # not verified: it cannot match
            return
        warnings.extend(set_metadata(self.root, job.parts, job.node, self.restore_owner, fd))


def _write_runs(fd: int, data: bytes, offset: int, runs: list[tuple[int, int]]) -> None:
    """Write ``data``'s ``runs`` (start, end) at ``offset`` in the file."""
    for start, end in runs:
        view = memoryview(data)[start:end]
        position = offset + start
        while view:
            written = os.pwrite(fd, view, position)
            view, position = view[written:], position + written


def _split(blobs: list[tuple[IndexEntry, bytes | BlobDamage]],
           destinations: dict[bytes, list[tuple[int, int]]], jobs: list[FileJob], count: int
           ) -> list[_Share]:
    """A span's blobs for each of ``count`` writers: a file's blobs always go to the same one."""
    shares = [_Share() for _ in range(count)]
    for entry, data in blobs:
        for number, offset in destinations[entry.blob_id]:
            blob = Unreadable(entry, offset, str(data)) if isinstance(data, Exception) else data
            shares[number % count].blobs.append((jobs[number], offset, blob))
    return shares


def _partly_restored(root: SafeRoot, job: FileJob) -> str:
    """The warning for a file written but for the blobs no target could give."""
    more = f" and {job.unreadable - 1} more range(s)" if job.unreadable > 1 else ""
    links = " (and its hard links)" if job.node.nlink > 1 else ""
    return (f"{os.fsdecode(root.path(job.parts))}{links}: not restored in full: "
            f"{job.first_unreadable}{more} could not be read and are zeros; its metadata is not "
            "set. 'fogvault check --read-data' tells what is damaged")


def set_metadata(root: SafeRoot, parts: Parts, node: Node, restore_owner: bool,
                 fd: int | None = None) -> list[MetadataProblem]:
    """Metadata of one entry: through ``fd`` if the caller holds the file open, else through
    its folder. Returns the warnings."""
    problems: list[MetadataProblem]
    try:
        if fd is not None:
            problems = apply_file_metadata(fd, node, restore_owner=restore_owner)
        else:
            with root.open_dir(parts[:-1]) as dir_fd:  # reached without following symlinks
                problems = apply_metadata(dir_fd, parts[-1], node, restore_owner=restore_owner)
    except OSError as exc:  # its mode refused: the error says why (an immutable folder?)
        stop_if_unwritable(root, parts, exc)
        problems = [f"cannot set metadata: {exc.strerror}"]
    except (ValueError, OverflowError) as exc:  # NUL in an xattr name, absurd numbers
        raise impossible(parts, exc) from exc
    return located(root, parts, problems)


def located(root: SafeRoot, parts: Parts, problems: list[MetadataProblem]) -> list[MetadataProblem]:
    """``problems`` of the entry ``parts``, with its path: lines as warnings, refused flags
    with their ``path``."""
    if not problems:
        return problems
    path = os.fsdecode(root.path(parts))
    return [dataclasses.replace(problem, path=path) if isinstance(problem, FlagsRefused)
            else f"{path}: {problem}" for problem in problems]


class _Explained(OSError):
    """An error :func:`explained` gave its reason already."""


def explained(exc: OSError, dir_fd: int | None, name: bytes, *, folder_too: bool = False,
              subject: str = "it") -> OSError:
    """``exc``, a change to the entry ``name`` in the folder ``dir_fd`` (None: ``name`` is a
    path) refused, saying why where the entry (``subject`` in the message) is immutable or
    append-only, which refuses root too; with ``folder_too`` (a creation or removal), or its
    folder. Restore does not lift those flags on what it finds there."""
    if exc.errno != errno.EPERM or isinstance(exc, _Explained):
        return exc
    if flags_at(dir_fd, name) & LOCKING_FLAGS:
        held = f"{subject} is"
    elif folder_too and flags_at(dir_fd, b".") & LOCKING_FLAGS:
        held = "its folder is"
    else:
        return exc
    return _Explained(exc.errno, f"{exc.strerror}: {held} {LOCKED}")


def explained_at(root: SafeRoot, parts: Parts, exc: OSError) -> OSError:
    """:func:`explained` (``folder_too``) for the entry ``parts`` below ``root``, its folder
    opened for it; ``exc`` as it is if the folder cannot be reached."""
    if exc.errno != errno.EPERM:
        return exc
    try:
        with root.open_dir(parts[:-1]) as dir_fd:
            return explained(exc, dir_fd, parts[-1], folder_too=True)
    except (OSError, UnsafePath):
        return exc  # the folder cannot be reached: the error says so as it is


def not_restored(root: SafeRoot, parts: Parts, exc: OSError) -> str:
    """The warning for an entry that could not be created or written (see
    :func:`stop_if_unwritable`), saying why where the entry in the way (or the folder) is
    immutable or append-only."""
    stop_if_unwritable(root, parts, exc)
    return _cannot_restore(root, parts, explained_at(root, parts, exc))


def stop_if_unwritable(root: SafeRoot, parts: Parts, exc: OSError) -> None:
    """Raise DestinationUnwritable if ``exc`` says the file system is full or read-only: no
    other entry could be written either, so the restore stops instead of warning about each."""
    if exc.errno in UNWRITABLE:
        raise DestinationUnwritable(_cannot_restore(root, parts, exc)) from exc


def _cannot_restore(root: SafeRoot, parts: Parts, exc: OSError) -> str:
    return f"{os.fsdecode(root.path(parts))}: cannot restore: {exc.strerror}"


def impossible(parts: Parts, exc: Exception) -> MalformedObject:
    """A node whose values no file system produces (the tree decoder checks types, not
    ranges): a malformed snapshot, not a crash."""
    return MalformedObject(
        f"{os.fsdecode(b'/'.join(parts))}: impossible entry in snapshot ({exc})"
    )


def data_runs(data: bytes) -> list[tuple[int, int]]:
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
