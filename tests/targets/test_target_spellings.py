"""One target given twice under two spellings (``repo`` and ``./repo``, a symlink, a file://
URL) is a usage error, found before anything is written: no lock is left, nothing is counted
twice. Through the library and the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FAST_KDF, PASSWORD

from fogvault.errors import UsageError
from fogvault.maintenance.membership import add_target
from fogvault.repo.repository import Repository


@pytest.fixture
def repo_folder(fogvault, tmp_path) -> Path:
    """tmp_path/repo with one snapshot of tmp_path/src, and tmp_path/link a symlink to it."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "file").write_bytes(b"some data")
    assert fogvault("-r", "repo", "init", "--kdf", "interactive").returncode == 0
    assert fogvault("-r", "repo", "backup", "src").returncode == 0
    (tmp_path / "link").symlink_to(tmp_path / "repo")
    return tmp_path / "repo"


def _locks(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("locks/*"))


@pytest.mark.parametrize(("spelling", "command"), [
    ("./repo", ["snapshots"]),
    ("repo/", ["backup", "src"]),
    ("{tmp}/repo", ["check"]),
    ("file://{tmp}/repo", ["forget", "--keep-last", "1"]),
    ("link", ["restore", "-V", "latest", "-t", "out"]),
    ("./repo", ["prune"]),
    ("./repo", ["repair"]),
])
def test_a_command_refuses_one_target_under_two_spellings(fogvault, repo_folder, tmp_path,
                                                          spelling, command):
    spelled = spelling.format(tmp=tmp_path)
    done = fogvault("-r", "repo", "-r", spelled, *command)
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode() == (
        f"error: the same target is given twice: 'repo' and '{spelled}'\n")
    assert _locks(repo_folder) == []
    assert not (tmp_path / "out").exists()


def test_the_repository_environment_variable_too(fogvault, repo_folder):
    done = fogvault("snapshots", env={"FOGVAULT_REPO": "repo,./repo/"})
    assert done.returncode == 2 and b"'repo' and './repo/'" in done.stderr


def test_init_refuses_one_target_under_two_spellings(fogvault, tmp_path):
    done = fogvault("-r", "new", "-r", f"file://{tmp_path}/new/", "init", "--kdf", "interactive")
    assert done.returncode == 2 and b"given twice: 'new' and 'file://" in done.stderr
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("spelling", ["./repo/", "link", "{tmp}/repo"])
def test_target_add_refuses_a_target_already_given(fogvault, repo_folder, tmp_path, spelling):
    spelled = spelling.format(tmp=tmp_path)
    for dry_run in ([], ["-n"]):
        done = fogvault("-r", "repo", "target", "add", spelled, *dry_run)
        assert done.returncode == 2, done.stderr
        assert done.stderr.decode() == (
            f"error: '{spelled}' is already one of the targets given, as '{repo_folder}'\n")
    assert _locks(repo_folder) == []


def test_the_library_refuses_one_target_under_two_spellings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"given twice: 'lib' and '\./lib/'"):
        Repository.init(["lib", "./lib/"], PASSWORD, kdf=FAST_KDF, use_cache=False)
    assert not (tmp_path / "lib").exists()
    with (Repository.init(["lib"], PASSWORD, kdf=FAST_KDF, use_cache=False) as repo,
          pytest.raises(UsageError, match="already one of the targets given")):
        add_target(repo, f"file://{tmp_path}/lib")
    (tmp_path / "alias").symlink_to(tmp_path / "lib")
    with pytest.raises(UsageError, match="given twice: 'lib' and 'alias'"):
        Repository.open(["lib", "alias"], PASSWORD, use_cache=False)
    assert _locks(tmp_path / "lib") == []
