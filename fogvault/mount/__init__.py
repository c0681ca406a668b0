"""``fogvault mount``: the repository's snapshots as a read-only file system (FUSE), as
``restic mount`` and ``borg mount`` show theirs.

- :mod:`~fogvault.mount.layout`: the folders above the snapshots (ids/, snapshots/, hosts/,
  tags/, ``latest``), built from a list of snapshots; pure.
- :mod:`~fogvault.mount.view`: paths to entries, listings and file contents over an open
  repository, without FUSE (:class:`SnapshotView`, :class:`MountOptions`).
- :mod:`~fogvault.mount.files`, :mod:`~fogvault.mount.cache`, :mod:`~fogvault.mount.chunks`:
  reads at any offset; the bounded caches of chunks and folder listings; chunks loaded once
  for the requests that want them at once, and ahead of reads in order.
- :mod:`~fogvault.mount.fuse_ops`: the mfusepy adapter (loads libfuse when imported).
- :mod:`~fogvault.mount.server`: :func:`serve`, which holds the lock and runs the mount until
  it is unmounted or interrupted.

Library use::

    from fogvault.mount import MountOptions, serve
    with Repository.open(["/mnt/usb/vault"], password, load_index=False) as repo:
        serve(repo, "/mnt/snapshots", MountOptions(host="laptop"))  # until unmounted
"""

from fogvault.mount.server import (
    FuseUnavailable,
    check_allow_other,
    check_mountpoint,
    require_fuse,
    serve,
    unmount,
)
from fogvault.mount.view import Entry, MountOptions, SnapshotView, Usage

__all__ = ["Entry", "FuseUnavailable", "MountOptions", "SnapshotView", "Usage",
           "check_allow_other", "check_mountpoint", "require_fuse", "serve", "unmount"]
