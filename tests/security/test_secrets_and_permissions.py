"""Secrets stay out of output and logs; local files holding repository data are private;
an interrupted password change never leaves the repository without a working password."""

from __future__ import annotations

import json
import os
import signal
import stat

import pytest
from conftest import AS_USER, PASSWORD


def _all_output(done) -> bytes:
    return done.stdout + done.stderr


def test_password_and_keys_never_appear_in_output(fogvault, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("content")
    runs = [
        fogvault("init", "-r", "repo", "--kdf", "interactive", "--json"),
        fogvault("backup", "-r", "repo", "src", "--json", "-vv"),
        fogvault("snapshots", "-r", "repo", "--json"),
        fogvault("key", "list", "-r", "repo", "--json"),
        fogvault("cat", "config", "-r", "repo"),
        fogvault("check", "-r", "repo", "--json", "-vv"),
        fogvault("snapshots", "-r", "repo", env={"FOGVAULT_PASSWORD": "wrong-secret-xyz"}),
        fogvault("snapshots", "-r", "repo", "-v", env={
            "FOGVAULT_PASSWORD": "",
            "FOGVAULT_PASSWORD_COMMAND": "sh -c 'echo leaked-pw; exit 3'"}),
    ]
    for done in runs:
        output = _all_output(done)
        assert PASSWORD not in output
        assert b"wrong-secret-xyz" not in output
        assert b"leaked-pw" not in output


def test_key_file_holds_no_plaintext_master_key(make_repo, tmp_path):
    repo = make_repo()
    [key_path] = (tmp_path / "repo" / "keys").iterdir()
    raw = key_path.read_bytes()
    master = repo.master.to_bytes()
    for secret in (master, master.hex().encode(), repo.master.encryption):
        assert secret not in raw
    assert "secret" in repr(repo.master)
    assert master.hex() not in repr(repo.master)


def test_cache_and_local_target_files_are_private(make_repo, tmp_path, cache_dir):
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    from fogvault.backup.archiver import Archiver, BackupOptions

    Archiver(repo, BackupOptions()).run([str(src)])
    repo_cache = cache_dir / repo.config.repo_id
    assert stat.S_IMODE(repo_cache.stat().st_mode) == 0o700
    cached = list(repo_cache.iterdir())
    assert cached
    for path in cached:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for path in (tmp_path / "repo").rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.mark.parametrize("crash_after", [2, 3])
def test_interrupted_key_passwd_keeps_a_working_password(fogvault, tmp_path, crash_after):
    """Killed before writing the new key (2: its lock is the first change) or between writing
    the new key and deleting the old one (3): the old password works, or the new one does;
    never neither."""
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    (tmp_path / "new").write_text("the new password")
    done = fogvault("key", "passwd", "-r", "repo", "--new-password-file", "new",
                    "--kdf", "interactive",
                    env={"FOGVAULT_CRASH_AFTER_WRITES": str(crash_after)})
    assert done.returncode == -signal.SIGKILL
    old_ok = fogvault("snapshots", "-r", "repo").returncode == 0
    new_ok = fogvault("snapshots", "-r", "repo",
                      env={"FOGVAULT_PASSWORD": "the new password"}).returncode == 0
    assert old_ok or new_ok
    assert (old_ok, new_ok) == ((True, False) if crash_after == 2 else (True, True))


def test_missing_password_file_is_a_clear_error(fogvault, tmp_path):
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    done = fogvault("snapshots", "-r", "repo", "--password-file", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert b"cannot read password file" in done.stderr and b"Traceback" not in done.stderr


def test_read_only_repository_is_readable_with_no_lock(fogvault, tmp_path):
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    assert fogvault("backup", "-r", "repo", "src").returncode == 0
    for path in [tmp_path / "repo", *(tmp_path / "repo").rglob("*")]:
        if path.is_dir():
            os.chmod(path, 0o555)
    try:
        listed = fogvault("snapshots", "-r", "repo", "--json")
        assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 1
        restored = fogvault("restore", "-r", "repo", "--version", "latest", "--no-lock",
                            "--target", "out", wrap=AS_USER)
        assert restored.returncode == 0, restored.stderr
        restored_file = tmp_path / "out" / str(tmp_path / "src" / "f").lstrip("/")
        assert restored_file.read_text() == "x"
        locked = fogvault("restore", "-r", "repo", "--version", "latest", "--target", "out2",
                          wrap=AS_USER)
        assert locked.returncode == 1 and b"Traceback" not in locked.stderr
        assert locked.stderr.endswith(b"(a read-only repository can be read with --no-lock)\n")
    finally:
        for path in [tmp_path / "repo", *(tmp_path / "repo").rglob("*")]:
            if path.is_dir():
                os.chmod(path, 0o755)


def test_permission_denied_on_the_target_is_a_clear_error(fogvault, tmp_path):
    """A target the user may not write to: backup stops with one line (the lock cannot be
    written) and changes nothing; reading still works with --no-lock."""
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    folders = [tmp_path / "repo", *(p for p in (tmp_path / "repo").rglob("*") if p.is_dir())]
    for path in folders:
        os.chmod(path, 0o555)
    try:
        done = fogvault("backup", "-r", "repo", "src", wrap=AS_USER)
        assert done.returncode == 1, done.stderr
        lines = [ln for ln in done.stderr.decode().splitlines() if ln.strip()]
        assert len(lines) == 1 and "permission denied" in lines[0].lower(), lines
        assert "--no-lock" not in lines[0]  # not for a backup
        listed = fogvault("snapshots", "-r", "repo", "--json", wrap=AS_USER)
        assert listed.returncode == 0 and json.loads(listed.stdout) == []
    finally:
        for path in folders:
            os.chmod(path, 0o755)


def test_a_key_file_asking_for_more_memory_than_there_is_is_skipped(make_repo, tmp_path):
    """A key file (a hostile writer's, or one made on a larger machine) whose Argon2id memory
    the process cannot get: 'unexpected error (RuntimeError)' stopped the open, and the good key
    file after it was never tried. Now it is skipped with a warning (a real allocation failure,
    under an address-space limit)."""
    import subprocess
    import sys

    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from fogvault.crypto import KdfParams, password_key\n"
        "from fogvault.errors import FogVaultError\n"
        "try:\n"
        "    password_key(b'pw', bytes(16), KdfParams(opslimit=1, memlimit=2 << 30))\n"
        "except FogVaultError as exc:\n"
        "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Argon2id could not get the 2048 MiB of memory the key file asks for\n"
