"""``restore --delete``: the entries of the restored folders that the snapshot does not have.

Which folders: those the restore writes in (selected, or on the way to a selected entry) that
the snapshot holds whole, at or below one of its backed-up paths. A folder above them (``/home``
of a backup of ``/home/ann``) holds in the snapshot only the way to them: what else is there
was never backed up, so it is never deleted. Which entries: those whose names the snapshot's
folder lacks and that the restore's filters select, as restic's ``--delete`` (an excluded path
is left alone). A folder goes with everything in it that the filters select; what they leave
out stays, with the folders holding it.

When: a folder is listed once the plan has left it (its names known, and whether the restore
writes in it), and what it holds beyond the snapshot is deleted at the very end, only after
every entry of the snapshot was restored in full. A restore that stops, or leaves a file
unwritten or damaged (a chunk no target can give), deletes nothing: a file it deleted could be
the last copy of one it could not restore (a file moved to another folder since the backup).
Held until then: the names of the folders being planned (those on the way from the target) and
the entries found, folder by folder.

A folder where the snapshot has a file or link must make way for it while the plan meets it,
yet may hold the last copy of what the restore then fails to write: it is only renamed, in
place and at once, to a hidden name in the same folder (``.NAME.fogvault-in-the-way-PID``), and
deleted as an extra folder at the end, when every entry was restored in full. Else it stays
there, with a warning naming both paths. Filters, kept paths and messages see it by its own
name.

What the backup excluded is not in the snapshot, so it is deleted as restic's is; but never
what FogVault itself needs (:class:`Kept`: the repository's local folders, the cache folder,
the password file, FogVault's state folder): such an entry, compared by (``st_dev``,
``st_ino``) and by path (as given, and real), is left with one warning, and so are the folders
holding it and each symlink it was named through below the target (``-r T/repolink``).

Listing and deleting go through the restore's :class:`SafeRoot`: no symlink is followed (one
is deleted as a link), nothing outside the target is reached, and the target itself is never
deleted. Nothing is listed or deleted at or below a mount point below the target (read once
from ``/proc/self/mountinfo``: a bind mount from the same file system too), nor in a folder on
another file system than the target's (``rm --one-file-system``): a backup disk mounted in a
restored folder is no entry of it. Each is one warning. A folder that cannot be listed, or an
entry that cannot be deleted, is a warning too.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from fogvault.errors import UnsafePath
from fogvault.repo.tree import Node, Tree
from fogvault.restore.content import explained_at
from fogvault.restore.safefs import Listing, Parts, SafeRoot, mount_points_below

#: whether the restore selects the snapshot path given, inside a selected folder or not
Selects = Callable[[bytes, bool], bool]
#: told of each entry deleted (or, in a dry run, to delete): its path, and if it is a folder
Deleted = Callable[[bytes, bool], None]

MOUNTED = "another file system is mounted there"
#: what a folder in the way of a snapshot's file is renamed to, until it is deleted
ASIDE = b".%s.fogvault-in-the-way-%d"
#: a folder an earlier, incomplete restore --delete set aside: it may hold the only copy of
#: what stood there, so no later --delete deletes it (the user moves it back or away)
_SET_ASIDE = re.compile(rb"\..+\.fogvault-in-the-way-[0-9]+", re.DOTALL)
SET_ASIDE = "set aside by an earlier restore --delete that was not complete"
_ASIDE_NAME_MAX = 200  # of its own name kept in that one: a name holds at most 255 bytes


@dataclass(frozen=True, slots=True)
class Kept:
    """A path ``--delete`` never deletes, nor a folder holding it; ``why`` says what it is."""

    path: str
    why: str


@dataclass(slots=True)
class _Found:
    """Entries to delete in one folder (``node``: the snapshot's, if the restore selected it)."""

    parts: Parts
    node: Node | None
    names: list[bytes]


@dataclass(slots=True)
class _Walk:
    """A folder being deleted: what is left to look at in it, the top-most entries deleted in
    it so far, and whether all of it is going (nothing in it kept or failing)."""

    parts: Parts
    children: list[tuple[bytes, bool]] | None  # None: it cannot be listed, or is not deleted
    gone: list[tuple[Parts, bool]] = field(default_factory=list)
    whole: bool = True


class _Guard:
    """What is never listed or deleted below the target ``root``: mount points below it (and
    all below them), what is on another file system, and the ``kept`` entries (and the folders
    holding them). Each one left alone is one warning."""

    def __init__(self, root: SafeRoot, kept: list[Kept], warn: Callable[[str], None]) -> None:
        self._root = root
        self._warn = warn
        self._device = os.fstat(root.root_fd).st_dev
        self._paths: dict[Parts, str] = dict.fromkeys(mount_points_below(root.root), MOUNTED)
        self._paths.update(kept_within(root.root, kept))
        self._folders: dict[tuple[int, int], str] = {}  # (st_dev, st_ino) -> why
        self._files: dict[tuple[int, int], str] = {}
        for entry in kept:
            if (st := _stat_kept(entry)) is not None:
                identities = self._folders if stat.S_ISDIR(st.st_mode) else self._files
                identities[(st.st_dev, st.st_ino)] = entry.why
        self._warned: set[Parts] = set()

    def spares_tree(self, parts: Parts) -> bool:
        """Whether ``parts`` is at or below a mount point or a kept path (warned once)."""
        for path, why in self._paths.items():
            if parts[:len(path)] == path:
                return self._spare(path, why)
        return False

    def spares_name(self, parts: Parts) -> bool:
        """Whether ``parts``, in a folder not spared, is a mount point or a kept path."""
        why = self._paths.get(parts)
        return why is not None and self._spare(parts, why)

    def spare(self, parts: Parts, why: str) -> bool:
        """Spare ``parts`` for ``why`` (warned once)."""
        return self._spare(parts, why)

    def spares_folder(self, parts: Parts, listing: Listing) -> bool:
        """Whether the folder ``parts`` listed is kept, or on another file system."""
        why = self._folders.get((listing.device, listing.inode))
        if why is None and listing.device != self._device:
            why = MOUNTED
        return why is not None and self._spare(parts, why)

    def spares_file(self, parts: Parts, st: os.stat_result | None = None) -> bool:
        """Whether the entry ``parts`` (not a folder; ``st``: its lstat) is a kept file."""
        if not self._files:
            return False
        if st is None and (st := self._root.lstat(parts)) is None:
            return False
        why = self._files.get((st.st_dev, st.st_ino))
        return why is not None and self._spare(parts, why)

    def _spare(self, parts: Parts, why: str) -> bool:
        if parts not in self._warned:
            self._warned.add(parts)
            self._warn(f"{os.fsdecode(self._root.path(parts))}: left alone by --delete: {why}")
        return True


class Extras:
    """``root``: the target (None: there is none, so nothing to delete); ``whole``: the
    snapshot's backed-up paths as components; ``warn``: where problems go; ``kept``: what is
    never deleted."""

    def __init__(self, root: SafeRoot | None, whole: list[Parts], selects: Selects,
                 warn: Callable[[str], None], kept: list[Kept] | None = None) -> None:
        self._root = root
        self._guard = _Guard(root, kept or [], warn) if root is not None else None
        self._whole = whole
        self._selects = selects
        self._warn = warn
        self._names: dict[Parts, frozenset[bytes]] = {}  # of the folders being planned
        self._written: set[Parts] = set()  # folders being planned that something goes into
        self._found: list[_Found] = []
        self._aside: dict[Parts, Parts] = {}  # folders in the way: where they are -> were
        self._aside_in: dict[Parts, Node] = {}  # the selected folders holding them

    @staticmethod
    def backed_up(paths: list[str]) -> list[Parts]:
        """A snapshot's ``paths`` as components (``/`` as none)."""
        return [tuple(part for part in os.fsencode(path).split(b"/") if part) for path in paths]

    # ---- while planning ------------------------------------------------------------------

    def entered(self, parts: Parts, tree: Tree) -> None:
        """The plan reads the folder ``parts``, whose snapshot entries are ``tree``'s."""
        if self._root is not None and self._holds_whole(parts):
            self._names[parts] = frozenset(node.name for node in tree.nodes)

    def writes_in(self, parts: Parts) -> None:
        """The restore selected an entry in the folder ``parts``."""
        self._written.add(parts)

    def left(self, parts: Parts, node: Node | None, *, made: bool) -> None:
        """Everything below the folder ``parts`` is planned; ``node`` if it is selected,
        ``made`` if this restore made it (so it held nothing before)."""
        names = self._names.pop(parts, None)
        written = node is not None or parts in self._written
        self._written.discard(parts)
        if written and parts:
            self._written.add(parts[:-1])
        if node is not None and any(aside[:-1] == parts for aside in self._aside):
            self._aside_in[parts] = node
        if names is None or not written or made:
            return
        assert self._guard is not None
        if self._guard.spares_tree(parts):
            return
        listing = self._listing(parts)
        if listing is None or self._guard.spares_folder(parts, listing):
            return
        inside = node is not None
        extra = [name for name, _ in listing.entries
                 if name not in names and (*parts, name) not in self._aside
                 and self._selects(_snapshot_path((*parts, name)), inside)
                 and not (_SET_ASIDE.fullmatch(name)
                          and self._guard.spare((*parts, name), SET_ASIDE))]
        if extra:
            self._found.append(_Found(parts, node, extra))

    def _holds_whole(self, parts: Parts) -> bool:
        return any(parts[:len(path)] == path for path in self._whole)

    def clear_in_the_way(self, parts: Parts) -> bool:
        """Move the folder ``parts`` out of the way of the snapshot's file there (see the
        module's notes): True if it is out of the way, or there is none; False if it is to
        stay: what the filters leave out, or a kept entry, would keep part of it (checked
        first, deleting nothing)."""
        if self._root is None:
            return True
        if not self._goes_whole(parts):
            return False
        aside = ASIDE % (parts[-1][:_ASIDE_NAME_MAX], os.getpid())
        self._aside[self._root.rename(parts, aside)] = parts
        return True

    def would_clear(self, parts: Parts) -> bool:
        """A dry run's :meth:`clear_in_the_way`: note the folder ``parts``, if one is there
        and can go whole, to tell at the end of it and what in it would be deleted."""
        if self._root is None:
            return True
        try:
            existing = self._root.lstat(parts)
        except (OSError, UnsafePath):
            return True  # the folder on the way is missing, or a symlink the restore replaces
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            return True
        if not self._goes_whole(parts):
            return False
        self._aside[parts] = parts
        return True

    def _goes_whole(self, parts: Parts) -> bool:
        """Whether the folder ``parts`` could be deleted whole (a dry run's delete, telling
        nothing; what it leaves alone is warned of)."""
        return self._delete(parts, lambda path, is_dir: None, dry_run=True)[1]

    def shown(self, parts: Parts) -> str:
        """The path of ``parts`` below the target, for messages."""
        return os.fsdecode(self._path(parts))

    def leave_aside(self) -> None:
        """Nothing is deleted: warn of each folder moved out of the way, which stays."""
        for aside, was in self._aside.items():
            if aside != was:
                self._warn(f"{os.fsdecode(self._path(was))}: the folder that stood where the "
                           f"snapshot has a file is kept, as {os.fsdecode(self._path(aside))}")
        self._aside.clear()

    # ---- at the end ----------------------------------------------------------------------

    def delete(self, deleted: Deleted, *, dry_run: bool) -> list[tuple[Parts, Node]]:
        """Delete the entries found (``dry_run``: only tell of them). Returns the selected
        folders something was deleted in: their times are to be set again."""
        changed = []
        for aside, was in list(self._aside.items()):
            told, gone = self._delete(aside, deleted, dry_run)  # told of by its own name...
            del self._aside[aside]  # ...and then forgotten: an interrupt names those left
            if not gone and not dry_run:
                self._warn(f"{os.fsdecode(self._path(was))}: the folder that stood where the "
                           "snapshot has a file could not be deleted whole: what is left of it "
                           f"is in {os.fsdecode(self._path(aside))}")
            if told and (folder := self._aside_in.get(aside[:-1])) is not None:
                changed.append((aside[:-1], folder))
        for found in self._found:
            told = sum(self._delete((*found.parts, name), deleted, dry_run)[0]
                       for name in found.names)
            if told and found.node is not None:
                changed.append((found.parts, found.node))
        self._found.clear()
        return changed

    def _delete(self, parts: Parts, deleted: Deleted, dry_run: bool) -> tuple[int, bool]:
        """Delete the entry ``parts``: the number of entries told of, and whether it is gone
        (or was not there)."""
        assert self._root is not None and self._guard is not None
        if self._guard.spares_tree(self._named(parts)):
            return 0, False
        try:
            existing = self._root.lstat(parts)
        except (OSError, UnsafePath) as exc:
            self._warn(f"{os.fsdecode(self._path(parts))}: cannot delete: {_why(exc)}")
            return 0, False
        if existing is None:
            return 0, True  # gone meanwhile
        if stat.S_ISDIR(existing.st_mode):
            return self._delete_folder(parts, deleted, dry_run)
        if self._guard.spares_file(parts, existing) or not self._remove(parts, dry_run):
            return 0, False
        deleted(self._path(self._named(parts)), False)
        return 1, True

    def _delete_folder(self, top: Parts, deleted: Deleted, dry_run: bool) -> tuple[int, bool]:
        """Delete the folder ``top`` and what the filters select in it, children first (one
        folder open at a time: no limit on the depth); tell of the top-most entries gone, and
        return how many, and whether ``top`` went too."""
        assert self._guard is not None
        told, gone = 0, False
        stack = [_Walk(top, self._children(top))]
        while stack:
            walk = stack[-1]
            if walk.children:
                name, is_dir = walk.children.pop()
                child = (*walk.parts, name)
                named = self._named(child)
                if (not self._selects(_snapshot_path(named), True)  # left out by the filters
                        or self._guard.spares_name(named)):
                    walk.whole = False
                elif is_dir:
                    stack.append(_Walk(child, self._children(child)))
                elif not self._guard.spares_file(child) and self._remove(child, dry_run):
                    walk.gone.append((child, False))
                else:
                    walk.whole = False
                continue
            stack.pop()
            parent = stack[-1] if stack else None
            if walk.children is not None and walk.whole and self._remove(walk.parts, dry_run):
                if parent is not None:
                    parent.gone.append((walk.parts, True))
                    continue
                walk.gone, gone = [(walk.parts, True)], True
            elif parent is not None:
                parent.whole = False
            for parts, is_dir in walk.gone:  # top-most: the folder holding each one stays
                deleted(self._path(self._named(parts)), is_dir)
            told += len(walk.gone)
        return told, gone

    def _children(self, parts: Parts) -> list[tuple[bytes, bool]] | None:
        """The entries of the folder ``parts`` to delete; None (with a warning) if it cannot
        be listed, is kept, or another file system is mounted on it."""
        assert self._guard is not None
        listing = self._listing(parts)
        if listing is None or self._guard.spares_folder(parts, listing):
            return None
        return listing.entries

    def _listing(self, parts: Parts) -> Listing | None:
        """What the folder ``parts`` holds; None if there is no folder there (a dry run's
        target may lack it, or hold a symlink the restore would replace), or (with a warning)
        if it cannot be listed."""
        assert self._root is not None
        try:
            return self._root.listing(parts)
        except (FileNotFoundError, NotADirectoryError, UnsafePath):
            return None
        except OSError as exc:
            self._warn(f"{os.fsdecode(self._path(parts))}: cannot list it to delete what the "
                       f"snapshot does not have: {exc.strerror}")
            return None

    def _remove(self, parts: Parts, dry_run: bool) -> bool:
        """Remove one entry (a folder: empty by now); False, with a warning, if it stays."""
        assert self._root is not None
        if dry_run:
            return True
        try:
            self._root.remove(parts)
        except FileNotFoundError:
            return True  # gone meanwhile
        except (OSError, UnsafePath) as exc:
            if isinstance(exc, OSError):  # it, or its folder, immutable or append-only?
                exc = explained_at(self._root, parts, exc)
            self._warn(f"{os.fsdecode(self._path(parts))}: cannot delete: {_why(exc)}")
            return False
        return True

    def _named(self, parts: Parts) -> Parts:
        """The path the entry ``parts`` had before its folder was moved out of the way."""
        for aside, was in self._aside.items():
            if parts[:len(aside)] == aside:
                return was + parts[len(aside):]
        return parts

    def _path(self, parts: Parts) -> bytes:
        assert self._root is not None
        return self._root.path(parts)


def kept_within(root: bytes, kept: list[Kept]) -> dict[Parts, str]:
    """Where the ``kept`` entries that exist are at or below the target folder ``root`` (its
    real path), as components below it -> why: each one's path as given, every symlink met
    resolving it, and its real path; () if the target is inside one."""
    within: dict[Parts, str] = {}
    target = root.rstrip(b"/") + b"/"
    for entry in kept:
        if _stat_kept(entry) is None:
            continue  # not there: nothing to keep
        *named, real = _resolving(entry.path)
        for path in (os.fsencode(os.path.abspath(entry.path)), *named, real):
            if (path + b"/").startswith(target):
                within[tuple(part for part in path[len(target):].split(b"/") if part)] = (
                    entry.why)
        if target.startswith(real.rstrip(b"/") + b"/"):
            within[()] = entry.why  # the target is inside it: all of it is kept
    return within


def _stat_kept(entry: Kept) -> os.stat_result | None:
    """What a kept entry is (what a symlink there points to: the entry used); None if it is
    not there."""
    try:
        return os.stat(entry.path)
    except (OSError, ValueError):
        return None


def _resolving(path: str) -> list[bytes]:
    """Each symlink met resolving ``path`` (in its folder's real path), then its real path:
    one a user names a kept entry through (``-r T/repolink``) is as kept as what it points to,
    as deleting it would leave the next run without its repository or password."""
    met, real, hops = [], b"/", 0
    pending = [part for part in os.fsencode(os.path.abspath(path)).split(b"/") if part]
    while pending:
        name = pending.pop(0)
        if name in (b".", b".."):
            real = os.path.dirname(real) if name == b".." else real
            continue
        step = os.path.join(real, name)
        if not os.path.islink(step) or hops == _MAX_LINKS:  # a loop: stat failed on it anyway
            real = step
            continue
        met.append(step)
        hops += 1
        link = os.readlink(step)
        real = b"/" if link.startswith(b"/") else real
        pending[:0] = [part for part in link.split(b"/") if part]
    return [*met, real]


_MAX_LINKS = 40  # as Linux's


def _snapshot_path(parts: Parts) -> bytes:
    """The snapshot path the entry ``parts`` below the target stands for (what filters see)."""
    return b"/" + b"/".join(parts)


def _why(exc: OSError | UnsafePath) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
