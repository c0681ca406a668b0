"""Setting an entry's metadata never goes through a symlink that now stands in its place.

A restore in place (``-t /``) by root reuses the folders it finds, such as a user's; that user
may swap one for a symlink between its planning and its metadata, which is set only once
everything in it is written. chmod followed the symlink: root gave the folder's mode to any
file (``/etc/shadow``). The owner, times and xattrs were set without following already."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fogvault.fsmeta import apply_metadata
from fogvault.repo.tree import DIR, FIFO, Node


def _swapped(tmp_path: Path) -> tuple[Path, int]:
    """A folder holding ``entry``, a symlink to a private file ``victim`` next to it."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"secret\n")
    victim.chmod(0o600)
    folder = tmp_path / "restored"
    folder.mkdir()
    (folder / "entry").symlink_to(victim)
    return victim, os.open(folder, os.O_RDONLY | os.O_DIRECTORY)


@pytest.mark.parametrize("kind", [DIR, FIFO])  # a fifo's too is set through its folder
def test_a_symlink_swapped_in_does_not_pass_the_mode_on(tmp_path: Path, kind: str) -> None:
    victim, dir_fd = _swapped(tmp_path)
    node = Node(b"entry", kind, mode=0o777, mtime_ns=10**18)
    try:
        with pytest.raises(OSError, match="a symlink stands in its place now; not following"):
            apply_metadata(dir_fd, b"entry", node, restore_owner=False)
    finally:
        os.close(dir_fd)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert victim.stat().st_mtime_ns != 10**18
