"""backup --skip-if-unchanged (no snapshot when nothing changed since the parent) and --time
(the snapshot's recorded time), through the real CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest


@pytest.fixture
def repo_with_source(fogvault: Callable, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("one")
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    return src


def _snapshots(fogvault: Callable) -> list[dict]:
    done = fogvault("snapshots", "-r", "repo", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _backup_json(fogvault: Callable, *args: str) -> dict:
    done = fogvault("backup", "-r", "repo", "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_an_unchanged_backup_saves_no_snapshot_only_when_asked(
        fogvault: Callable, repo_with_source: Path) -> None:
    src = str(repo_with_source)
    first = _backup_json(fogvault, src)["snapshot"]
    # the folder above the path changes: its metadata is stored, but not what was backed up
    (repo_with_source.parent / "beside").write_text("x")
    os.utime(repo_with_source.parent, (1, 1))
    skipped = fogvault("backup", "-r", "repo", "--skip-if-unchanged", src)
    assert skipped.returncode == 0, skipped.stderr
    assert f"nothing changed since snapshot {first}: no snapshot saved" in skipped.stdout.decode()
    summary = _backup_json(fogvault, "--skip-if-unchanged", src)
    assert summary["snapshot"] is None and summary["unchanged_since"] == first
    assert [s["uid"] for s in _snapshots(fogvault)] == [first]
    again = _backup_json(fogvault, src)  # without the option: a snapshot, as before
    assert again["snapshot"] not in (None, first) and again["unchanged_since"] is None
    assert len(_snapshots(fogvault)) == 2


@pytest.mark.parametrize("change", ["content", "tag", "paths", "new file", "chmod"])
def test_any_change_saves_a_snapshot(fogvault: Callable, repo_with_source: Path,
                                     change: str) -> None:
    src = repo_with_source
    _backup_json(fogvault, str(src))
    args = ["--skip-if-unchanged", str(src)]
    if change == "content":
        (src / "a").write_text("two")
    elif change == "tag":
        args += ["--tag", "extra"]
    elif change == "paths":
        (src.parent / "other").write_text("x")
        args += [str(src.parent / "other")]
    elif change == "chmod":
        os.chmod(src, 0o700)
    else:
        (src / "b").write_text("new")
    summary = _backup_json(fogvault, *args)
    assert summary["snapshot"] is not None and summary["unchanged_since"] is None
    assert len(_snapshots(fogvault)) == 2


def test_a_dry_run_says_it_would_save_nothing(fogvault: Callable, repo_with_source: Path) -> None:
    first = _backup_json(fogvault, str(repo_with_source))["snapshot"]
    done = fogvault("backup", "-r", "repo", "-n", "--skip-if-unchanged", str(repo_with_source))
    assert done.returncode == 0, done.stderr
    assert (f"nothing changed since snapshot {first}: no snapshot saved (dry run)"
            in done.stdout.decode())


def test_time_sets_the_snapshots_time(fogvault: Callable, repo_with_source: Path) -> None:
    _backup_json(fogvault, "--time", "2025-03-04 05:06:07", str(repo_with_source))
    _backup_json(fogvault, "--time", "2025-03-05T01:02:03+09:00", str(repo_with_source))
    times = [datetime.fromisoformat(s["time"]) for s in _snapshots(fogvault)]
    assert times == [datetime(2025, 3, 4, 5, 6, 7).astimezone(),
                     datetime.fromisoformat("2025-03-05T01:02:03+09:00")]


@pytest.mark.parametrize("value, why", [
    ("yesterday", "not a date and time"),
    ((datetime.now() + timedelta(days=1)).isoformat(timespec="seconds"), "in the future"),
    # a date, out of range once in UTC (year 0): it was called "not a date and time"
    ("0001-01-01T00:30:00+01:00", "is before 1970"),
    ("0001-01-01", "is before 1970"),
    ("2026-13-01", "not a date and time"),
    ("1969-12-31T23:59:59+00:00", "before 1970"),
    ("", "--time is empty"),
])
def test_a_bad_time_is_a_usage_error(fogvault: Callable, repo_with_source: Path, value: str,
                                     why: str) -> None:
    done = fogvault("backup", "-r", "repo", "--time", value, str(repo_with_source))
    assert done.returncode == 2
    assert why in done.stderr.decode() and len(done.stderr.strip().splitlines()) == 1
    assert _snapshots(fogvault) == []


@pytest.mark.skipif(not Path("/usr/share/zoneinfo/Europe/Berlin").exists(), reason="no tzdata")
def test_a_local_time_the_clocks_skip_is_refused_and_a_repeated_one_is_the_first(
        fogvault: Callable, repo_with_source: Path) -> None:
    berlin = {"TZ": "Europe/Berlin"}
    done = fogvault("backup", "-r", "repo", "--time", "2026-03-29 02:30", str(repo_with_source),
                    env=berlin)
    assert done.returncode == 2 and b"does not occur in the local time zone" in done.stderr
    done = fogvault("backup", "-r", "repo", "--time", "2026-10-25 02:30", str(repo_with_source),
                    env=berlin)
    assert done.returncode == 0, done.stderr
    [snapshot] = _snapshots(fogvault)
    assert snapshot["time"] == "2026-10-25T02:30:00+02:00"  # the first of the two


def _objects(repo: Path) -> list[Path]:
    """The repository's objects, not its locks (each run takes and removes one)."""
    return sorted(p.relative_to(repo) for p in repo.rglob("*")
                  if p.is_file() and p.parent.name != "locks")


def test_a_skipped_run_adds_nothing_to_the_repository(
        fogvault: Callable, repo_with_source: Path) -> None:
    """The folders above the path change (their times are stored), but no snapshot is saved,
    so none of their trees is stored either: no pack, no index file."""
    repo = repo_with_source.parent / "repo"
    _backup_json(fogvault, str(repo_with_source))
    before = _objects(repo)
    for round_ in range(3):
        (repo_with_source.parent / f"beside-{round_}").write_text("x")
        summary = _backup_json(fogvault, "--skip-if-unchanged", str(repo_with_source))
        assert summary["unchanged_since"] is not None
        assert (summary["bytes_added"], summary["tree_blobs_added"]) == (0, 0)
    assert _objects(repo) == before
    (repo_with_source / "a").write_text("changed")
    saved = _backup_json(fogvault, "--skip-if-unchanged", str(repo_with_source))
    assert saved["snapshot"] is not None
    restored = repo_with_source.parent / "restored"
    done = fogvault("restore", "-r", "repo", saved["snapshot"], "-t", str(restored))
    assert done.returncode == 0, done.stderr
    assert (restored / str(repo_with_source).lstrip("/") / "a").read_text() == "changed"
