"""``fogvault cache``: the cache's folders, one per repository, and removing old ones only."""

from __future__ import annotations

import json
import os
import time


def _folders(fogvault, *args) -> list[dict]:
    done = fogvault("cache", "--cache-dir", "cache", "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["folders"]


def test_old_folders_are_listed_and_removed_on_cleanup_only(fogvault, tmp_path):
    for repo in ("one", "two"):
        assert fogvault("init", "-r", repo, "--kdf", "interactive").returncode == 0
        assert fogvault("backup", "-r", repo, "--cache-dir", "cache", "cache").returncode == 0
    (tmp_path / "cache" / "not-a-repository").mkdir()  # --cache-dir may hold other things
    one, two = (json.loads(fogvault("cat", "config", "-r", r).stdout)["id"]
                for r in ("one", "two"))
    forty_days_ago = time.time() - 40 * 86400
    os.utime(tmp_path / "cache" / one, (forty_days_ago, forty_days_ago))

    listed = _folders(fogvault)
    assert [(f["repo_id"], f["old"], f["removed"]) for f in listed] == [
        (one, True, False), (two, False, False)]  # oldest use first
    assert all(f["size"] > 0 for f in listed)  # index files are cached
    text = fogvault("cache", "--cache-dir", "cache").stdout.decode()
    assert "1 of them not used for 30 days: 'fogvault cache --cleanup' removes them" in text

    assert [f["removed"] for f in _folders(fogvault, "--cleanup", "--max-age", "50")] == [
        False, False]
    assert [f["removed"] for f in _folders(fogvault, "--cleanup")] == [True, False]
    assert sorted(os.listdir(tmp_path / "cache")) == sorted(
        [two, "not-a-repository", "CACHEDIR.TAG"])


def test_opening_a_repository_marks_its_folder_used(fogvault, tmp_path):
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    assert fogvault("snapshots", "-r", "repo", "--cache-dir", "cache").returncode == 0
    [folder] = _folders(fogvault)
    long_ago = time.time() - 100 * 86400
    os.utime(tmp_path / "cache" / folder["repo_id"], (long_ago, long_ago))
    assert _folders(fogvault)[0]["old"]
    assert fogvault("snapshots", "-r", "repo", "--cache-dir", "cache").returncode == 0
    assert not _folders(fogvault)[0]["old"]


def test_repository_options_are_refused(fogvault):
    done = fogvault("cache", "-r", "repo")
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "error: -r/--repo cannot be used with 'fogvault cache': it opens no repository"]
    assert fogvault("cache", "--no-cache").returncode == 2
    assert fogvault("cache", "--cache-dir", "cache", "-q", "--json").returncode == 0


def test_cleanup_removes_only_folders_the_cache_wrote_and_goes_on_after_a_refusal(fogvault,
                                                                               tmp_path):
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    assert fogvault("backup", "-r", "repo", "--cache-dir", "cache", "cache").returncode == 0
    [ours] = [p.name for p in (tmp_path / "cache").glob("*/")]  # beside it: CACHEDIR.TAG
    theirs = tmp_path / "cache" / ("ab" * 16)  # named as a repository id, holding more
    (theirs / "sub").mkdir(parents=True)
    (theirs / "notes.txt").write_text("another tool's")
    long_ago = time.time() - 100 * 86400
    for folder in (theirs, tmp_path / "cache" / ours):
        os.utime(folder, (long_ago, long_ago))
    done = fogvault("cache", "--cache-dir", "cache", "--cleanup", "--json")
    assert done.returncode == 3
    assert "which the cache does not write: not removed" in done.stderr.decode()
    removed = {f["repo_id"]: f["removed"] for f in json.loads(done.stdout)["folders"]}
    assert removed == {ours: True, theirs.name: False}
    assert sorted(os.listdir(tmp_path / "cache")) == ["CACHEDIR.TAG", theirs.name]
    assert (theirs / "notes.txt").read_text() == "another tool's"
