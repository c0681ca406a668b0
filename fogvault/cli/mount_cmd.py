"""``fogvault mount``: the snapshots as a read-only file system until it is unmounted.

The mount point is checked, and FUSE looked for, before the repository is opened, so that
those mistakes cost no password prompt. Ctrl-C, SIGTERM or SIGHUP unmounts and exits 130 as
an interrupted command does; a mount in use is detached, and after Ctrl-C only served until its
last user leaves (another Ctrl-C or SIGTERM stops it at once). An unmount from outside
(``fusermount -u``) ends it with 0.
"""

from __future__ import annotations

import math
import sys
from typing import Annotated

import typer

from fogvault.cli.common import HostFilter, PathFilter, Printer, TagFilter, open_repository
from fogvault.errors import UsageError
from fogvault.sizes import counted


def register(app: typer.Typer) -> None:
    app.command("mount")(mount)


def mount(
    ctx: typer.Context,
    mountpoint: Annotated[str, typer.Argument(help="An empty folder to show the snapshots in.")],
    host: HostFilter = None,
    tag: TagFilter = None,
    path: PathFilter = None,
    reload_interval: Annotated[
        float, typer.Option("--reload-interval", min=0.0,
                            help="Look for new snapshots at most this often (seconds), when a "
                            "folder above them is listed.")
    ] = 5.0,
    allow_other: Annotated[
        bool, typer.Option("--allow-other",
                           help="Let other users in too; each file's stored owner and mode say "
                           "who may read it. A user other than root needs 'user_allow_other' in "
                           "/etc/fuse.conf.")
    ] = False,
) -> None:
    """Show the snapshots as a read-only file system at MOUNTPOINT (ids/, snapshots/, hosts/,
    tags/), until it is unmounted ('fusermount -u MOUNTPOINT') or Ctrl-C."""
    from fogvault.mount import (
        MountOptions,
        SnapshotView,
        check_allow_other,
        check_mountpoint,
        require_fuse,
        serve,
    )

    if not math.isfinite(reload_interval):
        raise UsageError("--reload-interval must be a number of seconds")
    check_mountpoint(mountpoint)
    require_fuse()
    if allow_other:
        check_allow_other()  # before the password is asked for
    out = Printer.of(ctx)
    options = MountOptions(host=host, tags=tuple(tag or ()), paths=tuple(path or ()),
                           reload_interval=reload_interval, allow_other=allow_other)

    def ready(view: SnapshotView) -> None:
        out.line(f"serving {counted(view.layout.snapshots, 'snapshot')} at {mountpoint}; "
                 f"unmount with 'fusermount -u {mountpoint}' or stop with Ctrl-C")
        sys.stdout.flush()  # a pipe's reader waits for this line

    with open_repository(ctx, drop_empty_targets=True, load_index=False) as repo:
        serve(repo, mountpoint, options, on_ready=ready)
