"""Restoring again, as a user other than root, into a target that holds the snapshot already:
a read-only folder (mode 555, which the first restore sets last) is opened to its owner while
the restore writes in it, and gets its mode back at the end. The second restore could replace
nothing in it (``cannot restore: Permission denied`` for each entry, exit 3), so neither
``--overwrite if-changed`` after a repair nor a plain restore again could mend its files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

#: Root ignores modes: the restores run as nobody, keeping only the right to read and search
#: everywhere (this Python may be below /root, the repository is root's).
AS_NOBODY = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]
             if os.geteuid() == 0 else None)


@pytest.mark.parametrize("overwrite", ["always", "if-changed"])
def test_a_read_only_folder_is_restored_into_again(tmp_path: Path, fogvault,
                                                   overwrite: str) -> None:
    src = tmp_path / "src"
    (src / "ro/inner").mkdir(parents=True)
    (src / "ro/file").write_bytes(b"in a read-only folder\n")
    (src / "ro/inner/deeper").write_bytes(b"deeper\n")
    (src / "ro/inner").chmod(0o500)
    (src / "ro").chmod(0o555)
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    assert fogvault("-r", "repo", "backup", str(src)).returncode == 0
    user = tmp_path / "user"  # the restoring user's: the target, cache and state
    user.mkdir()
    if AS_NOBODY:
        os.chown(user, 65534, 65534)
    env = {f"XDG_{kind}_HOME": str(user / kind) for kind in ("CACHE", "CONFIG", "STATE")}
    target = user / "target"
    out = target / src.relative_to("/")
    for run in range(2):
        if run:  # a file to mend in each folder: restore always, or if-changed, replaces it
            for name in ("ro/file", "ro/inner/deeper"):
                os.truncate(out / name, 0)
        done = fogvault("-r", str(tmp_path / "repo"), "--no-lock", "restore", "latest",
                        "-t", str(target), "--overwrite", overwrite, env=env, wrap=AS_NOBODY)
        assert (done.returncode, done.stderr) == (0, b"")
    assert (out / "ro/file").read_bytes() == b"in a read-only folder\n"
    assert (out / "ro/inner/deeper").read_bytes() == b"deeper\n"
    assert stat.S_IMODE(os.stat(out / "ro").st_mode) == 0o555
    assert stat.S_IMODE(os.stat(out / "ro/inner").st_mode) == 0o500
