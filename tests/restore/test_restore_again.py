"""Restoring again, as a user other than root, into a target that holds the snapshot already:
a read-only folder (mode 555, which the first restore sets last) is opened to its owner while
the restore writes in it, and gets its mode back at the end. The second restore could replace
nothing in it (``cannot restore: Permission denied`` for each entry, exit 3), so neither
``--overwrite if-changed`` after a repair nor a plain restore again could mend its files. The
same for a folder only on the way to what ``--include`` selects, which has no metadata to set:
it gets the mode it was found with back, also when the restore stops part-way."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from outputs import one_error_line

#: Root ignores modes: the restores run as nobody, keeping only the right to read and search
#: everywhere (this Python may be below /root, the repository is root's).
AS_NOBODY = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]
             if os.geteuid() == 0 else None)

Restore = Callable[..., subprocess.CompletedProcess]


def _backed_up(tmp_path: Path, fogvault, src: Path) -> tuple[Path, Restore]:
    """Back ``src`` up; where its restores as nobody put it, and what runs one."""
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    assert fogvault("-r", "repo", "backup", str(src)).returncode == 0
    user = tmp_path / "user"  # the restoring user's: the target, cache and state
    user.mkdir()
    if AS_NOBODY:
        os.chown(user, 65534, 65534)
    env = {f"XDG_{kind}_HOME": str(user / kind) for kind in ("CACHE", "CONFIG", "STATE")}
    target = user / "target"

    def restore(*args: str) -> subprocess.CompletedProcess:
        return fogvault("-r", str(tmp_path / "repo"), "--no-lock", "restore", "latest",
                        "-t", str(target), *args, env=env, wrap=AS_NOBODY)

    return target / src.relative_to("/"), restore


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.parametrize("overwrite", ["always", "if-changed"])
def test_a_read_only_folder_is_restored_into_again(tmp_path: Path, fogvault,
                                                   overwrite: str) -> None:
    src = tmp_path / "src"
    (src / "ro/inner").mkdir(parents=True)
    (src / "ro/file").write_bytes(b"in a read-only folder\n")
    (src / "ro/inner/deeper").write_bytes(b"deeper\n")
    (src / "ro/inner").chmod(0o500)
    (src / "ro").chmod(0o555)
    out, restore = _backed_up(tmp_path, fogvault, src)
    for run in range(2):
        if run:  # a file to mend in each folder: restore always, or if-changed, replaces it
            for name in ("ro/file", "ro/inner/deeper"):
                os.truncate(out / name, 0)
        done = restore("--overwrite", overwrite)
        assert (done.returncode, done.stderr) == (0, b"")
    assert (out / "ro/file").read_bytes() == b"in a read-only folder\n"
    assert (out / "ro/inner/deeper").read_bytes() == b"deeper\n"
    assert _mode(out / "ro") == 0o555
    assert _mode(out / "ro/inner") == 0o500


#: folders only on the way to the included files below, as the first, full, restore left them
ON_THE_WAY = {"ro": 0o555, "closed": 0o000, "closed/inner": 0o500}


@pytest.fixture
def restored_once(tmp_path: Path, fogvault) -> tuple[Path, Restore]:
    """A snapshot with files in read-only folders, restored in full as nobody."""
    src = tmp_path / "src"
    for folder in ("ro", "closed/inner", "zz"):
        (src / folder).mkdir(parents=True)
    for name in ("ro/file", "ro/empty", "closed/inner/file", "closed/inner/empty", "zz/file"):
        (src / name).write_bytes(b"" if name.endswith("empty") else f"{name}\n".encode())
    for folder, mode in sorted(ON_THE_WAY.items(), reverse=True):  # children first
        (src / folder).chmod(mode)
    out, restore = _backed_up(tmp_path, fogvault, src)
    done = restore()
    assert (done.returncode, done.stderr) == (0, b"")
    assert {folder: _mode(out / folder) for folder in ON_THE_WAY} == ON_THE_WAY
    return out, restore


def test_a_read_only_folder_on_the_way_to_an_include(tmp_path: Path, restored_once) -> None:
    out, restore = restored_once
    for name in ("ro/file", "closed/inner/file"):
        os.truncate(out / name, 0)
    src = tmp_path / "src"
    done = restore("--include", str(src / "ro/file"), "--include", str(src / "closed/inner/file"))
    assert (done.returncode, done.stderr) == (0, b"")
    assert (out / "ro/file").read_bytes() == b"ro/file\n"
    assert (out / "closed/inner/file").read_bytes() == b"closed/inner/file\n"
    assert {folder: _mode(out / folder) for folder in ON_THE_WAY} == ON_THE_WAY


def test_a_restore_that_stops_puts_the_modes_back(tmp_path: Path, restored_once) -> None:
    """The empty files are made as the plan meets them; the restore then stops at ``zz``,
    where a symlink stands, after it opened the folders on the way to them."""
    out, restore = restored_once
    for name in ("ro/empty", "closed/inner/empty"):
        os.unlink(out / name)
    os.rename(out / "zz", out / "zz.moved")
    os.symlink("zz.moved", out / "zz")
    src = tmp_path / "src"
    done = restore(*(arg for name in ("ro/empty", "closed/inner/empty", "zz/file")
                     for arg in ("--include", str(src / name))))
    assert done.returncode == 1
    assert "a symlink or file stands where a folder is restored" in one_error_line(done)
    assert (out / "ro/empty").read_bytes() == (out / "closed/inner/empty").read_bytes() == b""
    assert {folder: _mode(out / folder) for folder in ON_THE_WAY} == ON_THE_WAY


def test_a_full_restore_that_stops_puts_the_modes_found_back(tmp_path: Path,
                                                            restored_once) -> None:
    """The folders of the snapshot get their modes once everything below them is written; a
    restore that stopped before (at ``zz``, where a symlink stands) left the read-only ones
    it had opened ``u+rwx``."""
    out, restore = restored_once
    os.rename(out / "zz", out / "zz.moved")
    os.symlink("zz.moved", out / "zz")
    done = restore("--overwrite", "never")
    assert done.returncode == 1
    assert one_error_line(done).endswith("zz exists and is not a folder")
    assert {folder: _mode(out / folder) for folder in ON_THE_WAY} == ON_THE_WAY


@pytest.mark.skipif(AS_NOBODY is None, reason="needs root to make a folder nobody cannot write")
def test_a_hardlinked_file_whose_first_name_cannot_be_made_is_restored_at_its_other_name(
        tmp_path: Path, fogvault) -> None:
    """src/a/f and src/c/g are one file; the target's a belongs to root and nobody restores. f
    cannot be made, and g, linked to it, was not restored either ('No such file or
    directory') while the summary counted both."""
    src = tmp_path / "src"
    for folder in ("a", "c"):
        (src / folder).mkdir(parents=True)
    (src / "a" / "f").write_bytes(b"shared")
    os.link(src / "a" / "f", src / "c" / "g")
    restored, restore = _backed_up(tmp_path, fogvault, src)
    assert restore().returncode == 0
    (restored / "a" / "f").unlink()
    (restored / "c" / "g").unlink()
    os.chown(restored / "a", 0, 0)  # root's, 0755: nobody cannot write in it

    done = restore("--json")

    assert done.returncode == 3, done.stderr.decode()
    summary = json.loads(done.stdout.decode().splitlines()[-1])
    assert f"{restored}/a/f: cannot restore: Permission denied" in summary["warnings"]
    assert (restored / "c" / "g").read_bytes() == b"shared"
    assert summary["files"] == 1
