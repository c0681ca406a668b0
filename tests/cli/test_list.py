"""``fogvault list`` through the real CLI: the ids of each kind of object, as the targets hold
them, and the blobs of the index."""

from __future__ import annotations

import json
import os


def _ids(folder) -> list[str]:
    return sorted(name for _, _, names in os.walk(folder) for name in names)


def test_each_kind_lists_what_the_targets_hold(fogvault, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_bytes(os.urandom(3_000_000))
    (tmp_path / "src" / "b").write_bytes(b"small")
    assert fogvault("init", "-r", "one", "-r", "two", "--kdf", "interactive").returncode == 0
    for _ in range(2):
        assert fogvault("backup", "-r", "one", "-r", "two", "src").returncode == 0
    os.unlink(tmp_path / "two" / "snapshots" / _ids(tmp_path / "two" / "snapshots")[0])
    (tmp_path / "two" / "data" / "ab").mkdir(exist_ok=True)
    (tmp_path / "two" / "data" / "ab" / "garbage.tmp").write_bytes(b"not a pack")
    for kind, folder in (("snapshots", "snapshots"), ("index", "index"), ("packs", "data"),
                         ("keys", "keys"), ("locks", "locks")):
        done = fogvault("list", kind, "-r", "one", "-r", "two")
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().splitlines() == _ids(tmp_path / "one" / folder), kind
    assert len(_ids(tmp_path / "one" / "snapshots")) == 2  # the union, not one target's

    blobs = json.loads(fogvault("list", "blobs", "-r", "one", "--json").stdout)
    assert blobs == sorted(set(_blobs_of_index_files(fogvault, tmp_path / "one")))
    assert {line.split()[0] for line in blobs} == {"data", "tree"}


def _blobs_of_index_files(fogvault, repo) -> list[str]:
    blobs = []
    for index_id in _ids(repo / "index"):
        done = fogvault("cat", "index", index_id, "-r", str(repo))
        blobs += [f"{blob['type']} {blob['id']}" for pack in json.loads(done.stdout)["packs"]
                  for blob in pack["blobs"]]
    return blobs


def test_an_unknown_kind_is_a_usage_error(fogvault):
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    done = fogvault("list", "trees", "-r", "repo")
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "error: list takes one of: snapshots, index, packs, keys, locks, blobs"]
