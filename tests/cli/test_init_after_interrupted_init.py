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
from fogvault.crypto import KDF_PROFILES
from fogvault.repo.repository import Repository
from fogvault.storage import open_storage
from fogvault.storage.faulty import Fault, FaultyStorage

def die(method, name):
    os.kill(os.getpid(), signal.SIGKILL)

targets = []
for url in sys.argv[2:]:
    storage = FaultyStorage(open_storage(url))
    storage.inject("write", Fault(hook=die, prefix="config"))
    targets.append(storage)
Repository.init(targets, os.fsencode(sys.argv[1]), kdf=KDF_PROFILES["interactive"],
                use_cache=False)
"""


def killed_init(password: bytes, *urls: str) -> list[str]:
    """Run an init of the local folders ``urls`` in a process killed (SIGKILL) right before
    it writes the config anywhere. Returns the ids of the key files it left."""
    done = subprocess.run([sys.executable, "-c", _KILLED_INIT, password.decode(), *urls],
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


@pytest.mark.parametrize("old_password", [PASSWORD, b"another password"],
                         ids=["same-password", "other-password"])
def test_init_succeeds_where_an_init_was_killed_after_its_key(fogvault, tmp_path, old_password):
    repo = str(tmp_path / "repo")
    [stray] = killed_init(old_password, repo)
    stuck = fogvault("snapshots", "-r", "repo")
    assert stuck.returncode == 10  # no config: not a repository yet

    done = fogvault("init", "-r", "repo", "--kdf", "interactive")
    assert done.returncode == 0, done.stderr
    assert b"created repository" in done.stdout
    note = [ln for ln in done.stderr.decode().splitlines() if stray in ln]
    assert len(note) == 1, done.stderr
    assert f"fogvault key remove {stray}" in note[0]
    assert "Traceback" not in done.stderr.decode()

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(bytes(range(256)) * 300)
    (tmp_path / "src" / "g").write_text("small file\n")
    assert fogvault("backup", "-r", "repo", "src").returncode == 0
    restored = fogvault("restore", "-r", "repo", "--version", "latest",
                        "--target", str(tmp_path / "out"), "--verify")
    assert restored.returncode == 0, restored.stderr
    out = tmp_path / "out" / str(tmp_path / "src").lstrip("/")
    for name in ("f", "g"):
        assert (out / name).read_bytes() == (tmp_path / "src" / name).read_bytes()

    checked = fogvault("check", "-r", "repo")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert b"corrupt" not in checked.stdout + checked.stderr

    if old_password != PASSWORD:  # the interrupted init's password opens only its key file
        old = fogvault("snapshots", "-r", "repo", env={"FOGVAULT_PASSWORD": old_password.decode()})
        assert old.returncode == 1
        assert f"opens only key file(s) {stray}" in old.stderr.decode()

    keys = {k["id"]: k["current"] for k in _keys(fogvault, "-r", "repo")}
    assert len(keys) == 2 and keys[stray] is False
    removed = fogvault("key", "remove", stray, "-r", "repo")
    assert removed.returncode == 0, removed.stderr
    [key] = _keys(fogvault, "-r", "repo")
    assert key["current"] and key["id"] != stray
    assert [p.name for p in (tmp_path / "repo" / "keys").iterdir()] == [key["id"]]
    assert fogvault("snapshots", "-r", "repo").stderr == b""  # no warning left about it


def test_init_of_two_targets_one_half_initialised_one_empty(fogvault, tmp_path):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    [stray] = killed_init(PASSWORD, one)
    (tmp_path / "two").mkdir()

    done = fogvault("init", "-r", one, "-r", two, "--kdf", "interactive")
    assert done.returncode == 0, done.stderr
    assert f"fogvault key remove {stray}" in done.stderr.decode()
    assert (tmp_path / "one" / "config").read_bytes() == (tmp_path / "two" / "config").read_bytes()

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"data " * 5000)
    assert fogvault("backup", "-r", one, "-r", two, "src").returncode == 0
    for url in (one, two):  # each target alone is a whole repository
        target = tmp_path / f"out-{Path(url).name}"
        restored = fogvault("restore", "-r", url, "--version", "latest", "--target",
                            str(target), "--verify")
        assert restored.returncode == 0, restored.stderr

    # Opening tries key files in name order: a stray one before ours is tried, opens with the
    # (same) password and is known to wrap another master key; one after ours is never tried,
    # and check cannot tell it from another password's key that missed target two.
    [ours] = [k["id"] for k in _keys(fogvault, "-r", one, "-r", two) if k["current"]]
    checked = fogvault("check", "-r", one, "-r", two)
    report = (checked.stdout + checked.stderr).decode()
    assert "corrupt" not in report
    assert f"'fogvault key remove {stray}' removes it" in report
    if stray < ours:
        assert checked.returncode == 0, report
        assert "missing" not in report
    else:
        assert checked.returncode == 1, report
        assert f"missing: keys/{stray}" in report
        assert f"is on {one} but not on {two}" in report

    removed = fogvault("key", "remove", stray, "-r", one, "-r", two)
    assert removed.returncode == 0, removed.stderr
    for url in (one, two):
        assert [k["current"] for k in _keys(fogvault, "-r", url)] == [True]
    checked = fogvault("check", "-r", one, "-r", two)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stderr == b""


def test_init_of_two_targets_both_killed_before_the_config(fogvault, tmp_path):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    [stray] = killed_init(PASSWORD, one, two)
    done = fogvault("init", "-r", one, "-r", two, "--kdf", "interactive")
    assert done.returncode == 0, done.stderr
    assert len([ln for ln in done.stderr.decode().splitlines() if stray in ln]) == 1
    assert fogvault("key", "remove", stray, "-r", one, "-r", two).returncode == 0
    for url in (one, two):
        assert [k["current"] for k in _keys(fogvault, "-r", url)] == [True]


@pytest.mark.parametrize("extra", ["config", "data/ab/" + "ab" * 32, "index/" + "cd" * 32,
                                   "snapshots/0123456789abcdef", "locks/0123456789abcdef",
                                   "keys/not-a-key", "keys/0123456789abcdef"])
def test_init_still_refuses_a_target_with_more_than_key_files(fogvault, tmp_path, extra):
    """A config, anything under data/, index/, snapshots/ or locks/, or something under keys/
    that is not a key file: the target is (part of) a repository, or not ours to take."""
    killed_init(PASSWORD, str(tmp_path / "repo"))
    (tmp_path / "repo" / extra).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "repo" / extra).write_bytes(b"not a key file")
    done = fogvault("init", "-r", "repo", "--kdf", "interactive")
    assert done.returncode == 1
    err = [ln for ln in done.stderr.decode().splitlines() if ln.strip()]
    assert err == [f"error: {tmp_path / 'repo'}: a repository already exists there"]
