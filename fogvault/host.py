"""Where and as whom this process runs: recorded in locks, key files, snapshots and job runs."""

from __future__ import annotations

import os


def hostname() -> str:
    # The kernel's node name, which is what socket.gethostname() returns too, without
    # importing socket (0.3-0.4 MiB of the peak RSS of every command that takes a lock).
    return os.uname().nodename


def username() -> str:
    import getpass  # here: only writers of locks and key files ask

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers), or no passwd entry
        return ""
