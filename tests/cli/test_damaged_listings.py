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
