"""``fogvault init`` on targets an interrupted init left with a key file and no config.

The interrupted init is a real process killed with SIGKILL between its key file write and its
config write (its storage runs the kill as a hook before the config is written), so the targets
hold exactly what a Ctrl-C, a power loss or a kill -9 at that moment leaves."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PASSWORD

_KILLED_INIT = """
import os, signal, sys
from datetime import datetime
from fogvault.crypto import KDF_PROFILES, password_key, random_salt, seal
from fogvault.repo.format import ObjectKind, aad
from fogvault.repo.keys import KeyFile
from fogvault.repo.repository import Repository
from fogvault.storage import open_storage
from fogvault.storage.faulty import Fault, FaultyStorage

def die(method, name):
    os.kill(os.getpid(), signal.SIGKILL)

def create(cls, master, password, params, key_id=sys.argv[2]):
    # KeyFile.create with a chosen id (tests must not depend on random id order)
    salt = random_salt()
    sealed = seal(password_key(password, salt, params), master.to_bytes(),
                  aad(ObjectKind.KEY, key_id.encode()))
    return cls(key_id, params, salt, sealed, datetime.now().astimezone().isoformat(), "h", "u")

if sys.argv[2]:
    KeyFile.create = classmethod(create)
targets = []
for url in sys.argv[3:]:
    storage = FaultyStorage(open_storage(url))
    storage.inject("write", Fault(hook=die, prefix="config"))
    targets.append(storage)
Repository.init(targets, os.fsencode(sys.argv[1]), kdf=KDF_PROFILES["interactive"],
                use_cache=False)
"""


def killed_init(password: bytes, *urls: str, key_id: str = "") -> list[str]:
    """Run an init of the local folders ``urls`` in a process killed (SIGKILL) right before
    it writes the config anywhere; its key file gets the id ``key_id`` if one is given.
    Returns the ids of the key files it left."""
    done = subprocess.run([sys.executable, "-c", _KILLED_INIT, password.decode(), key_id, *urls],
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    left = {p.name for url in urls for p in (Path(url) / "keys").iterdir()}
    for url in urls:
        assert not (Path(url) / "config").exists()
        assert sorted(p.name for p in Path(url).iterdir()) == ["keys"]
    return sorted(left)


def _keys(fogvault, *args: str, env: dict[str, str] | None = None) -> list[dict]:
    done = fogvault("key", "list", *args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _removal_note(url: str, key_id: str) -> str:
    return (f"warning: {url}: removed key file {key_id}, left by an init that did not finish "
            "(it opens nothing here)")


@pytest.mark.parametrize("old_password", [PASSWORD, b"another password"],
                         ids=["same-password", "other-password"])
def test_init_succeeds_where_an_init_was_killed_after_its_key(fogvault, tmp_path, old_password):
    repo = str(tmp_path / "repo")
    [stray] = killed_init(old_password, repo)
    stuck = fogvault("snapshots", "-r", "repo")
    assert stuck.returncode == 10  # no config: not a repository yet

    done = fogvault("init", "-r", "repo", "--kdf", "interactive", "--json")
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert created["stray_keys"] == [] and created["removed_keys"] == [stray]
    note = [ln for ln in done.stderr.decode().splitlines() if stray in ln]
    assert note == [_removal_note(repo, stray)], done.stderr
    assert "Traceback" not in done.stderr.decode()
    [key] = _keys(fogvault, "-r", "repo")
    assert key["current"] and key["id"] != stray
    assert [p.name for p in (tmp_path / "repo" / "keys").iterdir()] == [key["id"]]

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(bytes(range(256)) * 300)
    (tmp_path / "src" / "g").write_text("small file\n")
    backup = fogvault("backup", "-r", "repo", "src")
    assert backup.returncode == 0 and backup.stderr == b"", backup.stderr  # nothing to warn of
    restored = fogvault("restore", "-r", "repo", "--version", "latest",
                        "--target", str(tmp_path / "out"), "--verify")
    assert restored.returncode == 0, restored.stderr
    out = tmp_path / "out" / str(tmp_path / "src").lstrip("/")
    for name in ("f", "g"):
        assert (out / name).read_bytes() == (tmp_path / "src" / name).read_bytes()

    checked = fogvault("check", "-r", "repo")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stderr == b""

    if old_password != PASSWORD:  # the interrupted init's password opens nothing now
        old = fogvault("snapshots", "-r", "repo", env={"FOGVAULT_PASSWORD": old_password.decode()})
        assert old.returncode != 0
        assert stray not in old.stderr.decode()


@pytest.mark.parametrize("stray", ["0000000000000000", "ffffffffffffffff"],
                         ids=["stray-sorts-first", "stray-sorts-last"])
def test_check_passes_after_init_of_two_targets_one_with_a_stray_key(fogvault, tmp_path, stray):
    """An init of another password was killed after its key reached target one only. The new
    init deletes that key file there once its own config is written (it wraps another master
    key), so every target holds the same key files: check passes, whichever way the ids sort.
    (Before, check said "missing: keys/<stray>" on target two and exited 1.)"""
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    assert killed_init(b"another password", one, key_id=stray) == [stray]
    done = fogvault("init", "-r", one, "-r", two, "--kdf", "interactive", "--json")
    assert done.returncode == 0, done.stderr

    checked = fogvault("check", "-r", one, "-r", two)
    report = (checked.stdout + checked.stderr).decode()
    assert checked.returncode == 0, report
    assert checked.stderr == b"" and "missing" not in report

    [ours] = [k["id"] for k in _keys(fogvault, "-r", one, "-r", two)]

    assert json.loads(done.stdout)["removed_keys"] == [stray]
    assert [ln for ln in done.stderr.decode().splitlines() if stray in ln] == [
        _removal_note(one, stray)]
    for folder in ("one", "two"):
        assert [p.name for p in (tmp_path / folder / "keys").iterdir()] == [ours]
    assert (tmp_path / "one" / "config").read_bytes() == (tmp_path / "two" / "config").read_bytes()

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"data " * 5000)
    assert fogvault("backup", "-r", one, "-r", two, "src").returncode == 0
    for url in (one, two):  # each target alone is a whole repository
        target = tmp_path / f"out-{Path(url).name}"
        restored = fogvault("restore", "-r", url, "--version", "latest", "--target",
                            str(target), "--verify")
        assert restored.returncode == 0, restored.stderr
        assert restored.stderr == b""


def test_init_of_two_targets_both_killed_before_the_config(fogvault, tmp_path):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    [stray] = killed_init(PASSWORD, one, two)
    done = fogvault("init", "-r", one, "-r", two, "--kdf", "interactive")
    assert done.returncode == 0, done.stderr
    [note] = [ln for ln in done.stderr.decode().splitlines() if stray in ln]
    assert note == _removal_note(f"{one}, {two}", stray)
    for url in (one, two):
        assert [k["current"] for k in _keys(fogvault, "-r", url)] == [True]
    checked = fogvault("check", "-r", one, "-r", two)
    assert checked.returncode == 0 and checked.stderr == b"", checked.stdout + checked.stderr


@pytest.mark.parametrize("extra", ["config", "data/ab/" + "ab" * 32, "index/" + "cd" * 32,
                                   "snapshots/0123456789abcdef", "locks/0123456789abcdef",
                                   "keys/not-a-key", "keys/0123456789abcdef"])
def test_init_still_refuses_a_target_with_more_than_key_files(fogvault, tmp_path, extra):
    """A config, anything under data/, index/, snapshots/ or locks/, or something under keys/
    that is not a key file: the target is (part of) a repository, or not ours to take."""
    [stray] = killed_init(PASSWORD, str(tmp_path / "repo"))
    (tmp_path / "repo" / extra).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "repo" / extra).write_bytes(b"not a key file")
    done = fogvault("init", "-r", "repo", "--kdf", "interactive")
    assert done.returncode == 1
    err = [ln for ln in done.stderr.decode().splitlines() if ln.strip()]
    assert err == [f"error: {tmp_path / 'repo'}: a repository already exists there"]
    assert (tmp_path / "repo" / "keys" / stray).exists()  # a refused target is left alone
