"""Restoring inode flags (``chattr``'s): which entries get their i and a only at the end of a
restore, and one line for each kind of refusal that every entry of the destination meets alike.

An entry's flags are the last of its metadata to be set (fsmeta), and a folder's metadata is
set after everything in it: immutable (i) and append-only (a) forbid what would come after.
Two kinds of entries are changed later still, so their i and a wait for the end of the restore,
after every entry is written and ``--delete`` has deleted:

* a file with several names: link(2) refuses a new name to an immutable or append-only file,
  and the first name is written, and gets its metadata, before the names after it are linked;
* with ``--delete``, folders: what they hold beyond the snapshot is deleted at the end, and
  their times are set again then.

Their other flags forbid none of that, and are set with the rest of their metadata, through the
descriptor that sets it or one opened before the mode is set: set at the end, through the path,
they were refused to a process that is not root where the mode keeps the owner out (000).
Only entries that have i or a wait: their paths are held to the end, nothing for the others.

Refusals that every entry of the destination would meet (a file system without inode flags,
such as ramfs, vfat or NFS, or without some of them, such as tmpfs; a process without
CAP_LINUX_IMMUTABLE, which i and a take) are counted and reported in one line each, naming the
flags refused and the first entry, instead of one per entry.

A file the restore keeps because it is unchanged (``--overwrite if-changed``, ``never``) gets its
flags as a file it writes does, so a restore resumed after one that stopped before the end,
or run again after ``chattr -R -i -a``, gives them back.

What this does not do: clear i or a on entries already at the target (fsmeta keeps them; what
restore would change there is refused, and ``content.explained`` says why).
"""

from __future__ import annotations

import dataclasses
import errno
import os
from dataclasses import dataclass

from fogvault.fsmeta import (
    LOCKING_FLAGS,
    FlagsRefused,
    MetadataProblem,
    apply_flags,
    flag_letters,
)
from fogvault.repo.tree import DIR, FILE, Node
from fogvault.restore.content import FileJob, located
from fogvault.restore.safefs import Parts, SafeRoot
from fogvault.sizes import counted


@dataclass(slots=True)
class _Waiting:
    """An entry whose flags are set at the end (with its i or a)."""

    parts: Parts
    kind: str  # DIR or FILE
    flags: int
    job: FileJob | None  # a file's: its flags are set only if it was written in full


@dataclass(slots=True)
class _Refusals:
    """Refusals of one kind: how many entries met one, the bits refused, the first met."""

    count: int
    bits: int
    first: FlagsRefused

    @classmethod
    def add(cls, known: _Refusals | None, refusal: FlagsRefused, counted_already: bool
            ) -> _Refusals:
        if known is None:
            return cls(1, refusal.bits, refusal)
        known.count += not counted_already
        known.bits |= refusal.bits
        return known


class RestoredFlags:
    """The inode flags of one restore: the nodes as their metadata is set now (without flags
    where they are not restored, or wait), the entries that wait, and the refusals."""

    def __init__(self, *, enabled: bool, delete: bool) -> None:
        self._enabled = enabled  # False: restore --no-flags
        self._delete = delete
        self._waiting: list[_Waiting] = []
        self._unsupported: _Refusals | None = None  # the file system keeps no such flags
        self._not_permitted: _Refusals | None = None  # this process may not set them

    def folder(self, parts: Parts, node: Node) -> Node:
        """The node of the folder ``parts`` (made) for its metadata, set after its contents."""
        if self._delete and self._enabled and node.flags & LOCKING_FLAGS:
            self._waiting.append(_Waiting(parts, DIR, node.flags, None))
        return self._now(node, waits=self._delete)

    def file(self, node: Node) -> tuple[Node, int]:
        """The node of a file to write (not a second name linked to the first), and the flags
        that must wait for its other names (0: none)."""
        waits = node.nlink > 1
        later = node.flags if self._enabled and waits and node.flags & LOCKING_FLAGS else 0
        return self._now(node, waits=waits), later

    def _now(self, node: Node, *, waits: bool) -> Node:
        """``node`` with the flags to set with its metadata: none with --no-flags, all but i
        and a if those ``waits`` for the end."""
        flags = node.flags & ~LOCKING_FLAGS if waits else node.flags
        if not self._enabled:
            flags = 0
        return node if flags == node.flags else dataclasses.replace(node, flags=flags)

    def kept(self, root: SafeRoot, parts: Parts, node: Node) -> list[MetadataProblem]:
        """Give the file ``parts`` the restore keeps (as unchanged) its ``node``'s flags, as to
        a file it writes: a resumed restore's files, or files whose i and a were lifted, get
        them back. (Its i and a wait too if it has other names: they may yet be linked.)"""
        if not node.flags:
            return []
        now, later = self.file(node)
        if later:
            self._waiting.append(_Waiting(parts, FILE, later, None))
        return _set_flags(root, parts, FILE, now.flags) if self._enabled else []

    def wait(self, job: FileJob, flags: int) -> None:
        """Set ``flags`` on the file of ``job`` at the end, if it is written in full."""
        self._waiting.append(_Waiting(job.parts, FILE, flags, job))

    def refused(self, refusal: FlagsRefused, *, counted_already: bool = False) -> None:
        """Note ``refusal``; ``counted_already``: its entry is counted (its bits still are)."""
        if refusal.unsupported:
            self._unsupported = _Refusals.add(self._unsupported, refusal, counted_already)
        else:
            self._not_permitted = _Refusals.add(self._not_permitted, refusal, counted_already)

    def finish(self, root: SafeRoot) -> list[str]:
        """Set the flags that waited (everything is restored); the warnings (refusals are
        noted, for the summary)."""
        warnings: list[str] = []
        for waiting in self._waiting:
            if waiting.job is not None and waiting.job.failed:
                continue
            for problem in _set_flags(root, waiting.parts, waiting.kind, waiting.flags):
                if isinstance(problem, str):
                    warnings.append(problem)
                else:  # a file system without flags refused its others already (ENOTTY)
                    self.refused(problem, counted_already=problem.errno == errno.ENOTTY
                                 and bool(waiting.flags & ~LOCKING_FLAGS))
        self._waiting.clear()
        return warnings

    def summary(self) -> list[str]:
        """One warning for each kind of refusal met, naming the flags refused."""
        lines = []
        for refusals, why in (
                (self._unsupported, "the file system does not support them"),
                (self._not_permitted, "not permitted (i and a take CAP_LINUX_IMMUTABLE, as root "
                                      "has; the others the entry's owner)")):
            if refusals is None:
                continue
            first = refusals.first
            lines.append(
                f"inode flags (chattr) {flag_letters(refusals.bits, ' ')} of "
                f"{counted(refusals.count, 'entry', 'entries')} not restored: {why}; the first: "
                f"{first.path}: {os.strerror(first.errno)}"
                + ("; restore --no-flags leaves them out" if first.unsupported else ""))
        return lines


def _set_flags(root: SafeRoot, parts: Parts, kind: str, flags: int) -> list[MetadataProblem]:
    try:
        with root.open_dir(parts[:-1]) as dir_fd:
            problems = apply_flags(dir_fd, parts[-1], kind, flags)
    except OSError as exc:
        problems = [f"cannot set inode flags: {exc.strerror}"]
    return located(root, parts, problems)
