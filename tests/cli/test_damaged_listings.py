"""Listings of a repository with one damaged snapshot: the rest is still listed, the damaged
one is named, and the command ends with exit 3, never 0 (what it showed lacked something)."""

from __future__ import annotations

import json

from conftest import PASSWORD
from crafted import DATA, save_snapshot, store

from fogvault.repo.format import snapshot_name
from fogvault.repo.repository import Repository


def _repo_with_a_good_snapshot(fogvault, tmp_path) -> str:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("keep me")
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    done = fogvault("backup", "-r", "repo", "src", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.decode().splitlines()[-1])["snapshot"]


def _open(tmp_path) -> Repository:
    return Repository.open([str(tmp_path / "repo")], PASSWORD, use_cache=False)


def test_find_searches_the_other_snapshots_and_names_the_one_it_could_not(fogvault, tmp_path):
    good = _repo_with_a_good_snapshot(fogvault, tmp_path)
    with _open(tmp_path) as repo:
        repo.load_index()
        not_a_tree = store(repo, DATA, b"these bytes are no tree")
        bad = save_snapshot(repo, not_a_tree).uid
    done = fogvault("find", "-r", "repo", "notes.txt")
    assert done.returncode == 3
    out = done.stdout.decode()
    assert f"snapshot {good}" in out and "notes.txt" in out
    err = done.stderr.decode()
    assert "Traceback" not in err
    assert f"snapshot {bad} was not searched in full (tree {not_a_tree.hex()}: " in err
    ls = fogvault("ls", "-r", "repo", bad)
    assert ls.returncode == 1
    assert f"tree {not_a_tree.hex()}: tree is not valid JSON" in ls.stderr.decode()


def test_a_snapshot_that_cannot_be_read_makes_latest_and_listings_exit_3(fogvault, tmp_path):
    """The newest manifest damaged: 'latest' is the one before it, said so, and exit 3."""
    first = _repo_with_a_good_snapshot(fogvault, tmp_path)
    done = fogvault("backup", "-r", "repo", "src", "--json")
    newest = json.loads(done.stdout.decode().splitlines()[-1])["snapshot"]
    with open(tmp_path / "repo" / snapshot_name(newest), "r+b") as f:
        f.truncate(10)
    listing = fogvault("snapshots", "-r", "repo", "--json")
    assert listing.returncode == 3
    assert [s["uid"] for s in json.loads(listing.stdout)] == [first]
    assert listing.stderr.decode().splitlines()[-1] == (
        f"warning: 1 snapshot could not be read and was left out ({newest}): 'fogvault check' "
        "tells more")
    restore = fogvault("restore", "-r", "repo", "latest", "-t", "out")
    assert restore.returncode == 3
    assert (tmp_path / "out" / str(tmp_path / "src" / "notes.txt").lstrip("/")).read_text() == (
        "keep me")


def test_node_values_no_file_system_has_are_shown_or_refused_in_one_line(fogvault, tmp_path):
    """A mode beyond the permission bits failed 'ls -l' and 'find' with 'unexpected error
    (OverflowError)', and an rdev beyond 64 bits 'dump' as a tar archive; mount's stat cuts
    such values to the C types (the kernel was answered an error for the entry)."""
    from crafted import fifo_node, store_tree

    from fogvault.mount.fuse_ops import stat_fields
    from fogvault.mount.view import Entry

    _repo_with_a_good_snapshot(fogvault, tmp_path)
    with _open(tmp_path) as repo:
        tree = store_tree(repo, [fifo_node("wide", mode=2**40 | 0o640),
                                 {**fifo_node("dev", rdev=2**70), "type": "chardev"}])
        uid = save_snapshot(repo, tree, ["/x"]).uid
    listed = fogvault("ls", "-r", "repo", "-l", uid, "/wide")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith(b"prw-r----- "), listed.stdout
    found = fogvault("find", "-r", "repo", "-s", uid, "wide")
    assert found.returncode == 0, found.stderr
    dumped = fogvault("dump", "-r", "repo", uid, "/", "-t", str(tmp_path / "x.tar"))
    assert dumped.returncode == 1
    assert dumped.stderr.decode().splitlines() == [
        "error: /dev: impossible device number in snapshot"]
    fields = stat_fields(Entry(ino=1, type="chardev", mode=2**40 | 0o600, uid=2**40, gid=1,
                               size=2**70, nlink=2**40, rdev=2**70 | 0x0801))
    assert fields["st_mode"] & 0o7777 == 0o600 and fields["st_size"] == 2**63 - 1
    assert fields["st_uid"] == fields["st_nlink"] == 2**32 - 1
    assert fields["st_rdev"] == 0x0801
