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
    assert _ok(fogvault("dump", "-r", "repo", "latest", note, "-H", "alpha")) == (
        "written on alpha")  # restic's short form
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


def test_a_named_snapshot_that_cannot_be_read_is_an_error_not_an_empty_answer(fogvault,
                                                                               two_hosts):
    snaps = json.loads(_ok(fogvault("snapshots", "-r", "repo", "--json")))
    alpha, beta = (next(s["uid"] for s in snaps if s["host"] == h) for h in ("alpha", "beta"))
    manifest = two_hosts / "repo" / "snapshots" / beta
    damaged = bytearray(manifest.read_bytes())
    damaged[-5] ^= 0xFF
    manifest.write_bytes(bytes(damaged))
    done = fogvault("stats", "-r", "repo", beta, "--json")
    assert done.returncode == 1 and "authentication failed" in done.stderr.decode()
    done = fogvault("find", "-r", "repo", "note.txt", "-s", beta)
    assert done.returncode == 1
    done = fogvault("stats", "-r", "repo", "latest", "--host", "beta")
    assert done.returncode == 1
    assert done.stderr.decode().splitlines()[-1] == (
        f"error: no snapshot matches the --host/--tag/--path filters; 1 cannot be read: {beta}")
    stats = json.loads(_ok(fogvault("stats", "-r", "repo", alpha, "--json")))  # not exit 3
    assert stats["snapshots"] == 1


def test_an_empty_tag_selects_the_snapshots_without_tags(fogvault, two_hosts):
    """restic's idiom for the untagged snapshots ('forget --tag "" ...', also in snapshots,
    stats, ls latest...): it selected nothing, with exit 0."""
    done = fogvault("backup", "-r", "repo", "--host", "alpha", "alpha", "--json")
    untagged = json.loads(_ok(done).splitlines()[-1])["snapshot"]
    listed = json.loads(_ok(fogvault("snapshots", "-r", "repo", "--tag", "", "--json")))
    assert [s["uid"] for s in listed] == [untagged]
    stats = json.loads(_ok(fogvault("stats", "-r", "repo", "--tag", "", "--json")))
    assert stats["snapshots"] == 1


def test_find_lists_what_a_matching_folder_holds(fogvault, tmp_path):
    """As restic's find, and as an exclude takes a folder with its contents: 'find tree' gave
    the folder alone. A sibling whose name only starts the same is not inside it."""
    src = tmp_path / "src"
    (src / "tree" / "sub").mkdir(parents=True)
    (src / "tree" / "a").write_text("a")
    (src / "tree" / "sub" / "b").write_text("b")
    (src / "treeish").write_text("not inside")
    (src / "other").write_text("o")
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    assert fogvault("backup", "-r", "repo", str(src)).returncode == 0
    (found,) = json.loads(_ok(fogvault("find", "-r", "repo", "tree", "--json")))
    assert [m["path"].removeprefix(str(src)) for m in found["matches"]] == [
        "/tree", "/tree/a", "/tree/sub", "/tree/sub/b"]
