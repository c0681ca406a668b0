"""How a mount starts and ends: SIGTERM, Ctrl-C and SIGHUP unmount and exit 130 as an
interrupted command does, an unmount from outside exits 0, the lock goes with the mount; and
what keeps it from starting, each one line with its exit code, never a traceback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.mount.mounting import is_mounted


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


def test_an_unmount_from_outside_ends_it_with_0(repo: Path, start_mount) -> None:
    mount = start_mount("-r", "repo").wait_mounted()
    subprocess.run(["fusermount", "-u", str(mount.point)], check=True)
    assert mount.process.wait(timeout=30) == 0
    assert mount.stderr == ""
    assert os.listdir(repo / "locks") == []


def test_a_mount_in_use_is_detached_when_stopped(repo: Path, start_mount,
                                                 tmp_path: Path) -> None:
    mount = start_mount("-r", "repo").wait_mounted()
    inside = subprocess.Popen(["sleep", "60"], cwd=mount.point / "ids")
    try:
        assert mount.stop() == 130
    finally:
        inside.kill()
        inside.wait()
    assert not is_mounted(mount.point)
    assert mount.stderr == (f"warning: {mount.point} is in use: detached, it goes away when "
                            "no longer used\ninterrupted\n")


def _one_line(done: subprocess.CompletedProcess) -> str:
    err = done.stderr.decode()
    assert "Traceback" not in err
    [line] = err.splitlines()
    return line


def test_mount_points_that_cannot_be_used(fogvault, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for point, why in (("missing", "does not exist"), ("file", "is not a folder"),
                       ("full", "is not empty")):
        done = fogvault("mount", "-r", "repo", point)  # no repository needed to say so
        assert done.returncode == 2
        assert _one_line(done) == f"error: mount point {point} {why}"


def test_no_fuse_and_a_wrong_password(fogvault, repo: Path, tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    done = fogvault("mount", "-r", "repo", "mnt",
                    env={"FUSE_LIBRARY_PATH": str(tmp_path / "no-libfuse.so.2")})
    assert done.returncode == 1
    assert _one_line(done).startswith("error: FUSE is not available: libfuse cannot be loaded")
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
    assert _one_line(done) == ("error: FUSE is not available: cannot open /dev/fuse: No such "
                               "file or directory (load the fuse module; in a container, pass "
                               "the device in)")
