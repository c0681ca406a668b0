"""The cache folder as ``fogvault cache`` sees it: what each repository's folder holds, measured
while other processes change it, and a ``--cache-dir`` that is no folder."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import AS_USER

from fogvault.repo.cache import cache_folders


def _repo_folder(root: Path, copies: int) -> Path:
    folder = root / ("ab" * 16)  # named as a repository id
    folder.mkdir(parents=True)
    for i in range(copies):
        (folder / f"data_00_{i:064x}").write_bytes(b"x" * 10)
    return folder


def test_a_file_that_goes_while_its_folder_is_measured_is_left_out(tmp_path, monkeypatch):
    """A copy swept, or a temporary file renamed, between the folder's listing and the file's
    stat: the folder was left out of the listing altogether."""
    folder = _repo_folder(tmp_path / "cache", 3)
    gone = folder / f"data_00_{0:064x}"
    listed = os.scandir

    def listing_then_removal(path: str | Path = ".") -> list[os.DirEntry]:
        entries = list(listed(path))
        if Path(path) == folder:
            gone.unlink()  # as another process would, just after the listing
        return entries

    monkeypatch.setattr(os, "scandir", listing_then_removal)
    [measured] = cache_folders(tmp_path / "cache")
    assert (measured.path, measured.tree_packs, measured.size) == (folder, 2, 20)


def test_a_cache_dir_that_is_a_file_is_a_usage_error(fogvault, tmp_path):
    (tmp_path / "afile").write_bytes(b"")
    done = fogvault("--cache-dir", "afile", "cache")
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "error: the cache path afile is not a folder"]


def test_a_cache_dir_that_cannot_be_listed_is_an_error(fogvault, tmp_path):
    (tmp_path / "locked").mkdir(mode=0)
    done = fogvault("--cache-dir", "locked", "cache", wrap=AS_USER)  # root lists any
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        "error: cannot list the cache folder locked: Permission denied"]


def test_the_cache_is_tagged_so_that_a_backup_skipping_caches_skips_it(fogvault, tmp_path):
    """A home folder backed up with --exclude-caches stored the cache in it (index files and
    pack-sized copies of tree packs): the cache folder now has a CACHEDIR.TAG, which keeps it
    in the snapshot, empty."""
    home = tmp_path / "home"
    (home / "docs").mkdir(parents=True)
    (home / "docs" / "notes.txt").write_text("x")
    cache = home / ".cache" / "fogvault"
    common = ["-r", "repo", "--cache-dir", str(cache)]
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    for _ in range(2):  # the second finds the first's index file and tree pack in the cache
        done = fogvault(*common, "backup", "--exclude-caches", str(home))
        assert done.returncode == 0, done.stderr
    assert any(cache.glob("*/data_*"))
    assert (cache / "CACHEDIR.TAG").read_bytes().startswith(
        b"Signature: 8a477f597d28d172789f06886806bc55")

    listed = fogvault(*common, "ls", "-R", "latest", str(home)).stdout.decode().splitlines()
    assert str(home / "docs" / "notes.txt") in listed
    assert [p for p in listed if p.startswith(str(cache))] == [str(cache)]
