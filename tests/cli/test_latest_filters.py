"""--host/--tag/--path choose which snapshot 'latest' means in ls and dump (restic's), and which
snapshots find and stats look at, in a repository that several hosts back up into."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def two_hosts(fogvault, tmp_path):
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    for host, tag in (("alpha", "daily"), ("beta", "weekly")):
        (tmp_path / host).mkdir()
        (tmp_path / host / "note.txt").write_text(f"written on {host}")
        done = fogvault("backup", "-r", "repo", "--host", host, "--tag", tag, host)
        assert done.returncode == 0, done.stderr
    return tmp_path


def _ok(done) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def test_latest_is_the_latest_of_the_filtered_snapshots(fogvault, two_hosts):
    note = f"{two_hosts}/alpha/note.txt"
    assert _ok(fogvault("dump", "-r", "repo", "latest", note, "--host", "alpha")) == (
        "written on alpha")
    assert _ok(fogvault("dump", "-r", "repo", "latest", note, "--tag", "daily")) == (
        "written on alpha")
    assert note in _ok(fogvault("ls", "-r", "repo", "latest", "-R", "--path",
                                f"{two_hosts}/alpha"))
    assert note not in _ok(fogvault("ls", "-r", "repo", "latest", "-R"))  # beta's is newer
    none = fogvault("ls", "-r", "repo", "latest", "--host", "gamma")
    assert none.returncode == 1
    assert none.stderr.decode().splitlines() == [
        "error: no snapshot matches the --host/--tag/--path filters"]


def test_find_and_stats_look_at_the_filtered_snapshots_only(fogvault, two_hosts):
    found = json.loads(_ok(fogvault("find", "-r", "repo", "note.txt", "--json",
                                    "--host", "beta")))
    assert [m["path"] for hit in found for m in hit["matches"]] == [
        f"{two_hosts}/beta/note.txt"]
    found = json.loads(_ok(fogvault("find", "-r", "repo", "note.txt", "--json",
                                    "--snapshot", "latest", "--tag", "daily")))
    assert [m["path"] for hit in found for m in hit["matches"]] == [
        f"{two_hosts}/alpha/note.txt"]
    stats = json.loads(_ok(fogvault("stats", "-r", "repo", "--json", "--tag", "weekly")))
    assert (stats["snapshots"], stats["files"]) == (1, 1)
    everything = json.loads(_ok(fogvault("stats", "-r", "repo", "--json")))
    assert everything["snapshots"] == 2


def test_restore_latest_of_one_host(fogvault, two_hosts):
    _ok(fogvault("restore", "-r", "repo", "latest", "--host", "alpha", "-t", "out"))
    restored = two_hosts / "out" / str(two_hosts).lstrip("/")
    assert (restored / "alpha" / "note.txt").read_text() == "written on alpha"
    assert not (restored / "beta").exists()
