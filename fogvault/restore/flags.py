"""Restoring inode flags (``chattr``'s): which entries get theirs only at the end of a restore,
and one line for each kind of refusal that every entry of the destination meets alike.

An entry's flags are the last of its metadata to be set (fsmeta), and a folder's metadata is
set after everything in it: immutable (i) and append-only (a) forbid what would come after.
Two kinds of entries are changed later still, so their flags wait for the end of the restore,
after every entry is written and ``--delete`` has deleted:

* a file with several names: link(2) refuses a new name to an immutable or append-only file,
  and the first name is written, and gets its metadata, before the names after it are linked;
* with ``--delete``, folders: what they hold beyond the snapshot is deleted at the end, and
  their times are set again then.

Only entries that have flags wait: their paths are held to the end, nothing for the others.

Refusals that every entry of the destination would meet (a file system without inode flags,
such as ramfs, vfat or NFS; a process without CAP_LINUX_IMMUTABLE, which i and a take) are
counted and reported in one line each, naming the first entry, instead of one per entry.

What this does not do: clear i or a on entries already at the target (what restore would change
there is refused, and ``content.explained`` says why), or set flags on a file restore keeps
(``--overwrite if-changed``, ``never``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from fogvault.fsmeta import FLAGS_UNSUPPORTED, FlagsRefused, Problem, apply_flags
from fogvault.repo.tree import Node
from fogvault.restore.content import FileJob, located
from fogvault.restore.safefs import Parts, SafeRoot
from fogvault.sizes import counted


@dataclass(slots=True)
class _Waiting:
    """An entry whose flags are set at the end."""

    parts: Parts
    flags: int
    job: FileJob | None  # a file's: its flags are set only if it was written in full


@dataclass(slots=True)
class _Refusals:
    count: int
    first: FlagsRefused


class RestoredFlags:
    """The inode flags of one restore: the nodes as their metadata is set now (without flags
    where they are not restored, or wait), the entries that wait, and the refusals."""

    def __init__(self, *, enabled: bool, delete: bool) -> None:
        self._enabled = enabled  # False: restore --no-flags
        self._delete = delete
        self._waiting: list[_Waiting] = []
        self._refused: dict[bool, _Refusals] = {}  # unsupported? -> how many, the first

    def folder(self, parts: Parts, node: Node) -> Node:
        """The node of the folder ``parts`` (made) for its metadata, set after its contents."""
        if not node.flags or (self._enabled and not self._delete):
            return node
        if self._enabled:
            self._waiting.append(_Waiting(parts, node.flags, None))
        return dataclasses.replace(node, flags=0)

    def file(self, node: Node) -> tuple[Node, int]:
        """The node of a file to write (not a second name linked to the first), and the flags
        that must wait for its other names (0: none)."""
        if not node.flags:
            return node, 0
        if not self._enabled:
            return dataclasses.replace(node, flags=0), 0
        if node.nlink > 1:
            return dataclasses.replace(node, flags=0), node.flags
        return node, 0

    def wait(self, job: FileJob, flags: int) -> None:
        """Set ``flags`` on the file of ``job`` at the end, if it is written in full."""
        self._waiting.append(_Waiting(job.parts, flags, job))

    def refused(self, refusal: FlagsRefused) -> None:
        unsupported = refusal.errno in FLAGS_UNSUPPORTED
        known = self._refused.get(unsupported)
        if known is None:
            self._refused[unsupported] = _Refusals(1, refusal)
        else:
            known.count += 1

    def finish(self, root: SafeRoot) -> list[Problem]:
        """Set the flags that waited (everything is restored); what was not allowed."""
        problems: list[Problem] = []
        for waiting in self._waiting:
            if waiting.job is None or not waiting.job.failed:
                problems += _set_flags(root, waiting.parts, waiting.flags)
        self._waiting.clear()
        return problems

    def summary(self) -> list[str]:
        """One warning for each kind of refusal met."""
        lines = []
        for unsupported, refusals in self._refused.items():
            first = refusals.first
            why = ("the file system does not support them" if unsupported else
                   "not permitted (i and a take CAP_LINUX_IMMUTABLE, as root has; the others "
                   "the entry's owner)")
            lines.append(
                f"inode flags (chattr) of {counted(refusals.count, 'entry', 'entries')} not "
                f"restored: {why}; the first: {first.path}: {os.strerror(first.errno)}"
                + ("; restore --no-flags leaves them out" if unsupported else ""))
        return lines


def _set_flags(root: SafeRoot, parts: Parts, flags: int) -> list[Problem]:
    try:
        with root.open_dir(parts[:-1]) as dir_fd:
            problems = apply_flags(dir_fd, parts[-1], flags)
    except OSError as exc:
        problems = [f"cannot set inode flags: {exc.strerror}"]
    return located(root, parts, problems)

