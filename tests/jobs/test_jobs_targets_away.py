"""A job whose target is away (a disk not mounted, a server down) while ``min_targets`` lets the
backup commit: the target is *behind* (partial, exit 3), also when the check step runs, and the
runs after it catch it up; damage found by the check still fails the run (exit 21)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from fogvault.jobs.runner import run_job
from fogvault.repo.repository import Repository


def _two_targets(tmp_path: Path, setup, job: str = 'check = "always"\n',
                 paths: str = '["src"]') -> tuple[Path, Path]:
    from conftest import FAST_KDF, PASSWORD

    a, b = tmp_path / "t" / "a", tmp_path / "t" / "b"  # their renames leave src's parent as is
    Repository.init([str(a), str(b)], PASSWORD, kdf=FAST_KDF, use_cache=False).close()
    setup.write(job, repo="min_targets = 1", targets='["t/a", "t/b"]', paths=paths)
    return a, b


def _snapshot_names(target: Path) -> set[str]:
    return {p.name for p in (target / "snapshots").iterdir()}


def _copy_missing(source: Path, target: Path, *folders: str) -> None:
    """Copy the files of ``folders`` that ``target`` lacks from ``source``."""
    for folder in folders:
        for path in (source / folder).rglob("*"):
            copy = target / path.relative_to(source)
            if path.is_file() and not copy.exists():
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, copy)


def test_a_check_with_a_target_away_is_partial_and_says_why(tmp_path, setup):
    a, b = _two_targets(tmp_path, setup, 'check = "daily"\n')
    b.rename(b.with_name("b.away"))  # the USB disk is not mounted
    (setup.src / "new.txt").write_text("new\n")

    record = run_job(setup.load(), "home")
    assert (record.result, record.exit_code) == ("partial", 3), record
    assert record.error is None and record.targets_behind == [str(b)]
    check = record.steps["check"]
    assert check.status == "incomplete", check
    assert check.detail.startswith("no problems on the targets checked; ")
    assert f"{b} not checked: no repository there (not mounted?" in check.detail
    repair = record.steps["repair"]
    assert repair.status == "incomplete"
    assert f"{b} not reached: no repository there (not mounted?" in repair.detail

    # An incomplete check is not a check done: it is still due at the next run (daily).
    again = run_job(setup.load(), "home")
    assert (again.exit_code, again.steps["check"].status) == (3, "incomplete"), again

    # The disk is back: the backup finds it behind, the check says so (no damage), the repair
    # catches it up, and the run is a success.
    b.with_name("b.away").rename(b)
    back = run_job(setup.load(), "home")
    assert (back.result, back.exit_code) == ("success", 0), back
    assert back.steps["check"].status == "done"
    assert back.steps["check"].detail.startswith(f"no damage; {b} is behind: "), back.steps
    assert back.steps["repair"].status == "done"
    assert _snapshot_names(b) == _snapshot_names(a) and len(_snapshot_names(a)) == 3


def test_an_unreachable_server_is_behind_and_named_with_the_reason(tmp_path, setup,
                                                                   monkeypatch):
    """An SFTP target whose port refuses connections (a socket bound, not listening)."""
    from conftest import FAST_KDF, PASSWORD

    Repository.init([str(tmp_path / "a")], PASSWORD, kdf=FAST_KDF, use_cache=False).close()
    monkeypatch.setenv("FOGVAULT_RETRY_ATTEMPTS", "1")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"sftp://u@127.0.0.1:{closed.getsockname()[1]}/x"
        setup.write('check = "always"\n', repo="min_targets = 1", targets=f'["a", "{url}"]')
        record = run_job(setup.load(), "home")
    assert (record.result, record.exit_code) == ("partial", 3), record
    assert record.targets_behind == [url]
    assert record.steps["check"].status == "incomplete"
    assert f"{url} not checked: unreachable (" in record.steps["check"].detail
    assert "refused" in record.steps["check"].detail.lower()  # why, not only the word
    assert f"{url} not reached: unreachable (" in record.steps["repair"].detail


def test_a_target_that_missed_only_a_snapshot_is_caught_up_by_the_next_run(tmp_path, setup):
    """Nothing new to store: the target away misses only the snapshot file, so the next open
    cannot tell it is behind. The run log can: the next run's repair step copies it."""
    a, b = _two_targets(tmp_path, setup, "", paths='["src/b.bin"]')  # one file, unchanged
    assert run_job(setup.load(), "home").exit_code == 0
    b.rename(b.with_name("b.away"))
    away = run_job(setup.load(), "home")
    assert (away.exit_code, away.targets_behind) == (3, [str(b)]), away
    b.with_name("b.away").rename(b)
    # Only the snapshot file is missing. The backup may have stored a tree too (the parent
    # folders' times change when other processes create folders in /tmp): B gets it here.
    _copy_missing(a, b, "data", "index")
    assert _snapshot_names(b) != _snapshot_names(a)

    back = run_job(setup.load(), "home")
    assert (back.exit_code, back.targets_behind) == (0, []), back
    assert back.steps["repair"].status == "done", back.steps["repair"]
    assert _snapshot_names(b) == _snapshot_names(a)


def test_copies_missing_on_a_target_not_known_to_be_behind_are_damage(tmp_path, setup):
    _a, b = _two_targets(tmp_path, setup)
    assert run_job(setup.load(), "home").exit_code == 0
    lost = next(p for p in sorted((b / "data").rglob("*")) if p.is_file())
    os.unlink(lost)
    record = run_job(setup.load(), "home")
    assert (record.result, record.exit_code) == ("failed", 21), record
    assert record.error == f"check found 1 problem: {b}: 1 missing, 0 wrong size, 0 corrupt"
    assert record.steps["repair"].status == "done" and lost.is_file()


def test_damage_is_exit_21_even_with_another_target_away(tmp_path, setup):
    """Three targets: the third is away, a pack is damaged on the second. The damage fails the
    run; the target away is a note."""
    from conftest import FAST_KDF, PASSWORD

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    Repository.init([str(a), str(b), str(c)], PASSWORD, kdf=FAST_KDF, use_cache=False).close()
    setup.write('check = "always"\ncheck_read_data_subset = "1/1"\n', repo="min_targets = 1",
                targets='["a", "b", "c"]')
    assert run_job(setup.load(), "home").exit_code == 0
    damaged = next(p for p in sorted((b / "data").rglob("*")) if p.is_file())
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    c.rename(tmp_path / "c.away")

    record = run_job(setup.load(), "home")
    assert (record.result, record.exit_code) == ("failed", 21), record
    assert record.error == f"check found 1 problem: {b}: 0 missing, 0 wrong size, 1 corrupt"
    assert any(m.startswith(f"check: {c} not checked: no repository there")
               for m in record.messages), record.messages


@pytest.mark.parametrize("stop", ["before hook", "password", "no target"])
def test_a_run_that_stops_before_opening_keeps_the_targets_behind(tmp_path, setup, stop):
    """The run after the one that left a target behind fails before it opens the repository
    (a before hook, the password, no target reachable): it repaired nothing, so its record
    still names the target, and the run after it catches the target up. The target missed
    only a snapshot file, which no open can tell."""
    flag = tmp_path / "flag"
    a, b = _two_targets(tmp_path, setup, f'\n[jobs.home.hooks]\nbefore = "test ! -e {flag}"\n',
                        paths='["src/b.bin"]')
    assert run_job(setup.load(), "home").exit_code == 0
    b.rename(b.with_name("b.away"))
    away = run_job(setup.load(), "home")
    assert (away.exit_code, away.targets_behind) == (3, [str(b)]), away
    b.with_name("b.away").rename(b)
    _copy_missing(a, b, "data", "index")  # only the snapshot file is missing, as above
    assert _snapshot_names(b) != _snapshot_names(a)

    password = tmp_path / "password"
    if stop == "before hook":
        flag.touch()
    elif stop == "password":
        password.rename(tmp_path / "password.away")
    else:
        a.rename(a.with_name("a.away"))
        b.rename(b.with_name("b.away"))
    stopped = run_job(setup.load(), "home")
    expected = {"before hook": 20, "password": 2, "no target": 10}[stop]
    assert (stopped.result, stopped.exit_code) == ("failed", expected), stopped
    assert stopped.targets_behind == [str(b)], stopped
    flag.unlink(missing_ok=True)
    if (tmp_path / "password.away").exists():
        (tmp_path / "password.away").rename(password)
    for target in (a, b):
        if target.with_name(f"{target.name}.away").exists():
            target.with_name(f"{target.name}.away").rename(target)
    assert _snapshot_names(b) != _snapshot_names(a)

    back = run_job(setup.load(), "home")
    assert (back.exit_code, back.targets_behind) == (0, []), back
    assert back.steps["repair"].status == "done", back.steps["repair"]
    assert _snapshot_names(b) == _snapshot_names(a)


def test_packs_lost_on_a_target_known_to_be_behind_are_damage(tmp_path, setup):
    """The target missed a run while away, and has since lost packs of an earlier run, which
    an index file it holds lists: those are damage (exit 21), not what it missed while away."""
    a, b = _two_targets(tmp_path, setup)
    assert run_job(setup.load(), "home").exit_code == 0
    held = sorted(p for p in (b / "data").rglob("*") if p.is_file())
    b.rename(b.with_name("b.away"))
    (setup.src / "new.txt").write_text("written while b was away\n" * 100)
    assert run_job(setup.load(), "home").exit_code == 3
    b.with_name("b.away").rename(b)
    for pack in held:  # a failing disk
        pack.unlink()

    record = run_job(setup.load(), "home")
    assert (record.result, record.exit_code) == ("failed", 21), record
    assert record.error == (f"check found 1 problem: {b}: {len(held)} missing, 0 wrong size, "
                            "0 corrupt")
    missed = [m for m in record.messages if m.startswith(f"check: {b} is behind: ")]
    assert missed and "objects missing" in missed[0], record.messages  # snapshot, index, pack
    assert "no problems" not in record.steps["check"].detail
    assert record.steps["repair"].status == "done" and all(p.is_file() for p in held)
    assert _snapshot_names(b) == _snapshot_names(a)
