"""Rebuilding snapshot trees bottom-up, a folder's subtrees before the folder: shared by
``rewrite`` (trees without some entries), ``repair --snapshots`` (trees without what is lost)
and ``copy`` (trees with another repository's ids).

A caller describes one tree as a generator (:data:`Visit`): it yields the key of each subtree
whose result it needs, is sent that result back, and returns its own tree's result.
:func:`fold_trees` runs those generators on an explicit stack, so trees of any depth work
(no recursion), and each key once: a key whose result is known is answered at once. What a key
is (a tree id; a tree id and the path it is at) is the caller's choice. Nothing is stored here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Hashable
from typing import TypeVar

from fogvault import __version__
from fogvault.errors import UnsupportedFormat
from fogvault.repo.snapshot import Snapshot
from fogvault.repo.tree import Node

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")
#: one tree's rebuild: yields subtree keys, is sent their results, returns the tree's result
Visit = Callable[[K], Generator[K, R, R]]


def fold_trees(root: K, visit: Visit[K, R], done: dict[K, R]) -> R:
    """The result of ``visit(root)``, every subtree it asks for done first. ``done`` holds
    the results known (of earlier folds too) and gets each new one; an error raised by a
    visit ends the fold (the visits under way are closed) and goes on."""
    if root in done:
        return done[root]
    keys, frames = [root], [visit(root)]
    sent: R | None = None  # a generator is started with None
    try:
        while True:
            try:
                child = frames[-1].send(sent)  # type: ignore[arg-type]
            except StopIteration as finished:
                frames.pop()
                result = done[keys.pop()] = finished.value
                if not frames:
                    return result
                sent = result
                continue
            if child in done:
                sent = done[child]
            else:
                keys.append(child)
                frames.append(visit(child))
                sent = None
    except BaseException:
        for frame in frames:
            frame.close()
        raise


def with_subtree(node: Node, subtree: bytes) -> Node:
    """``node`` (a folder) with ``subtree`` as its tree; the same object if nothing changes."""
    return node if node.subtree == subtree else dataclasses.replace(node, subtree=subtree)


def refuse_newer_writer(snapshot: Snapshot, command: str) -> None:
    """UnsupportedFormat if a newer FogVault wrote ``snapshot``: its trees may hold fields that
    this version drops in encoding them again (``command`` names what to do with that one)."""
    if _version(snapshot.program_version) > _version(__version__):
        raise UnsupportedFormat(f"snapshot {snapshot.uid} was written by FogVault "
                                f"{snapshot.program_version}, newer than this one "
                                f"({__version__}): {command} it with that version")


def _version(text: str) -> tuple[int, ...]:
    """'0.1.0' as (0, 1, 0); an empty or unparsable version counts as the oldest."""
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return ()
