"""How a mount starts and ends: SIGTERM, Ctrl-C and SIGHUP unmount and exit 130 as an
interrupted command does (a mount in use: after Ctrl-C it is served until left, unless stopped
again; after SIGTERM or SIGHUP it stops at once), an unmount from outside exits 0, the lock goes
with the mount; and what keeps it from starting, each one line with its exit code, never a
traceback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from outputs import one_error_line
from polling import wait_until

from tests.mount.mounting import MountProcess, is_mounted


@pytest.fixture
def repo(fogvault, tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("data")
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    assert fogvault("backup", "-r", "repo", "src").returncode == 0
    return tmp_path / "repo"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_unmounts_and_exits_as_an_interrupted_command(repo: Path, start_mount,
                                                               signum: int) -> None:
    mount = start_mount("-r", "repo").wait_mounted()
    assert os.listdir(repo / "locks")  # a shared lock while mounted
    assert mount.stop(signum) == 130
    assert not is_mounted(mount.point)
    assert mount.stderr == "interrupted\n"
    assert os.listdir(repo / "locks") == []


def test_no_lock_mounts_without_a_lock(repo: Path, start_mount) -> None:
    """For read-only targets; a prune elsewhere may then repack what the mount reads (the
    view reads a repacked blob again after reloading the index)."""
    mount = start_mount("--no-lock", "-r", "repo").wait_mounted()
    assert os.listdir(mount.point / "snapshots") and os.listdir(repo / "locks") == []
    assert mount.stop() == 130


def test_an_unmount_from_outside_ends_it_with_0(repo: Path, start_mount) -> None:
    mount = start_mount("-r", "repo").wait_mounted()
    subprocess.run(["fusermount", "-u", str(mount.point)], check=True)
    assert mount.process.wait(timeout=30) == 0
    assert mount.stderr == ""
    assert os.listdir(repo / "locks") == []


# A user of the mount: a file open, then (at each line on stdin) a read of it and a listing.
_USER = """
import os, sys
opened = open("f")
print("open", flush=True)
for _ in sys.stdin:
    try:
        print(opened.read(), os.listdir("."), flush=True)
        opened.seek(0)
    except OSError as exc:
        print(exc.strerror, flush=True)
"""


@pytest.fixture
def user_inside(repo: Path, start_mount) -> Iterator[tuple[MountProcess, subprocess.Popen]]:
    """A mount, and a process inside it with a file open."""
    mount = start_mount("-r", "repo").wait_mounted()
    [uid] = os.listdir(mount.point / "ids")
    inside = mount.point / "ids" / uid / str(repo.parent / "src").lstrip("/")
    user = subprocess.Popen([sys.executable, "-c", _USER], cwd=inside, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert user.stdout.readline() == "open\n"
        yield mount, user
    finally:
        user.kill()
        user.wait()


def _ask(user: subprocess.Popen) -> str:
    user.stdin.write("\n")
    user.stdin.flush()
    return user.stdout.readline()


def _detached_warning(mount: MountProcess) -> str:
    return (f"warning: {mount.point} is in use: detached, it goes on serving what is open in it "
            f"until the last user leaves; another Ctrl-C or 'kill {mount.process.pid}' stops "
            "it at once\n")


def _stopped_warning(mount: MountProcess) -> str:
    return (f"warning: stopped while {mount.point} was in use: what is open in it fails from "
            "now on\n")


def _stopped_in_use(repo: Path, mount: MountProcess, user: subprocess.Popen) -> None:
    """The mount has exited 130 with its user still inside: that user's file fails, the mount
    point is gone, and so is the lock."""
    assert _ask(user) == "Transport endpoint is not connected\n"
    assert not is_mounted(mount.point)
    assert os.listdir(repo / "locks") == []


def test_ctrl_c_detaches_a_mount_in_use_and_serves_its_users_until_they_leave(
        repo: Path, user_inside: tuple[MountProcess, subprocess.Popen]) -> None:
    mount, user = user_inside
    mount.process.send_signal(signal.SIGINT)
    wait_until(lambda: not is_mounted(mount.point), "detached")
    assert _ask(user) == "data ['f']\n"  # still served, with the lock held
    assert mount.process.poll() is None and os.listdir(repo / "locks")
    user.stdin.close()
    assert user.wait(timeout=30) == 0
    assert mount.process.wait(timeout=30) == 130  # its last user has left
    # It names the process to kill; not fusermount, which cannot reach a detached mount.
    assert mount.stderr == _detached_warning(mount) + "interrupted\n"
    assert os.listdir(repo / "locks") == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_another_signal_stops_a_detached_mount_at_once(
        repo: Path, user_inside: tuple[MountProcess, subprocess.Popen], signum: int) -> None:
    mount, user = user_inside
    mount.process.send_signal(signal.SIGINT)
    wait_until(lambda: "stops it at once" in mount.stderr, "detached")
    assert mount.stop(signum) == 130
    assert mount.stderr == (_detached_warning(mount) + _stopped_warning(mount)
                            + "interrupted\n")
    _stopped_in_use(repo, mount, user)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_a_mount_in_use_at_once(
        repo: Path, user_inside: tuple[MountProcess, subprocess.Popen], signum: int) -> None:
    """kill, systemd, timeout and a closed terminal: nobody may be there to stop it again (and
    systemd would SIGKILL it, leaving its lock behind)."""
    mount, user = user_inside
    assert mount.stop(signum) == 130  # while its user is still inside
    assert mount.stderr == _stopped_warning(mount) + "interrupted\n"
    _stopped_in_use(repo, mount, user)


def test_mount_points_that_cannot_be_used(fogvault, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for point, why in (("missing", "does not exist"), ("file", "is not a folder"),
                       ("full", "is not empty")):
        done = fogvault("mount", "-r", "repo", point)  # no repository needed to say so
        assert done.returncode == 2
        assert one_error_line(done) == f"error: mount point {point} {why}"


def test_no_fuse_and_a_wrong_password(fogvault, repo: Path, tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    done = fogvault("mount", "-r", "repo", "mnt",
                    env={"FUSE_LIBRARY_PATH": str(tmp_path / "no-libfuse.so.2")})
    assert done.returncode == 1
    assert one_error_line(done).startswith("error: FUSE is not available: libfuse cannot be loaded")
    done = fogvault("mount", "-r", "repo", "mnt", env={"FOGVAULT_PASSWORD": "wrong"})
    assert done.returncode == 12
    assert not is_mounted(tmp_path / "mnt")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="hiding /dev/fuse takes a mount namespace (root, unshare)")
def test_no_fuse_device(fogvault, repo: Path, tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    # a /dev of its own, with /dev/null (ctypes looks for libfuse with ldconfig's help)
    hide_dev = ["unshare", "--mount", "sh", "-c",
                'mount -t tmpfs none /dev && mknod -m 666 /dev/null c 1 3 && exec "$@"', "sh"]
    done = fogvault("mount", "-r", "repo", "mnt", wrap=hide_dev)
    assert done.returncode == 1
    assert one_error_line(done) == ("error: FUSE is not available: cannot open /dev/fuse: No such "
                                    "file or directory (load the fuse module; in a container, pass "
                                    "the device in)")
