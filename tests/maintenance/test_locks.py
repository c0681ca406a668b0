"""Repository locks: exclusion, stale locks of dead processes, unlock, exit code 11."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from fogvault.errors import LockError
from fogvault.host import hostname
from fogvault.repo.lock import LockInfo, remove_locks


def _plant_lock(repo, *, exclusive: bool, pid: int, host: str | None = None,
                age: timedelta = timedelta(0)) -> LockInfo:
    when = datetime.now(UTC) - age
    info = LockInfo("0123456789abcdef", exclusive, host or hostname(), pid, "someone",
                    when, when)
    repo.lock_store().write(info, overwrite=False)
    return info


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_exclusive_excludes_shared_and_shared_coexist(make_repo):
    repo = make_repo()
    with repo.lock(), repo.lock(), pytest.raises(LockError, match="shared lock"):
        repo.lock(exclusive=True).acquire()
    with repo.lock(exclusive=True), pytest.raises(LockError, match="exclusive lock"):
        repo.lock().acquire()
    assert repo.lock_store().all() == []  # every lock was released and removed


def test_a_live_foreign_lock_blocks_until_it_goes_stale(make_repo):
    repo = make_repo()
    _plant_lock(repo, exclusive=True, pid=1, host="another-host")
    with pytest.raises(LockError, match=r"'fogvault unlock --remove-all' removes its lock"):
        repo.lock().acquire()
    assert remove_locks(repo.lock_store()).removed == []  # live: unlock leaves it alone


def test_a_live_local_lock_is_a_running_process(make_repo):
    """Of this host, a live lock's process runs (a dead one's lock is stale): no unlock."""
    repo = make_repo()
    _plant_lock(repo, exclusive=True, pid=os.getpid())
    with pytest.raises(LockError, match="that process is running") as error:
        repo.lock().acquire()
    assert "unlock" not in str(error.value)


def test_stale_locks_never_block(make_repo):
    repo = make_repo()
    dead = _plant_lock(repo, exclusive=True, pid=_dead_pid())
    with repo.lock(exclusive=True):  # a lock of a dead local process is ignored
        pass
    repo.lock_store().delete(dead.lock_id)
    _plant_lock(repo, exclusive=True, pid=1, host="another-host", age=timedelta(hours=1))
    with repo.lock(exclusive=True):  # not refreshed for an hour: stale
        pass
    assert [lock.host for lock in remove_locks(repo.lock_store()).removed] == ["another-host"]
    assert repo.lock_store().all() == []


def test_cli_locked_repository_exits_11_and_unlock(fogvault, make_repo, tmp_path):
    repo = make_repo()
    _plant_lock(repo, exclusive=True, pid=1, host="another-host")
    (tmp_path / "src").mkdir()
    done = fogvault("backup", "-r", repo.targets.urls[0], "src")
    assert done.returncode == 11
    assert b"locked" in done.stderr and b"Traceback" not in done.stderr
    kept = json.loads(fogvault("unlock", "-r", repo.targets.urls[0], "--json").stdout)
    assert kept == {"removed": [], "unreadable": [], "unreadable_removed": False}
    removed = fogvault("unlock", "--remove-all", "-r", repo.targets.urls[0])
    assert removed.returncode == 0 and b"1 lock removed" in removed.stdout
    assert fogvault("backup", "-r", repo.targets.urls[0], "src").returncode == 0


def test_the_host_name_is_the_one_socket_reports() -> None:
    import socket  # fogvault.host avoids importing it; the name must be the same

    assert hostname() == socket.gethostname()


def test_a_lock_file_that_cannot_be_read_is_removed_by_remove_all_only(make_repo, tmp_path):
    """It blocks nobody (nothing can be read from it), but would stay for ever."""
    repo = make_repo()
    (tmp_path / "repo" / "locks").mkdir(exist_ok=True)
    (tmp_path / "repo" / "locks" / "0123456789abcdef").write_bytes(b"junk")
    kept = remove_locks(repo.lock_store())
    assert (kept.removed, kept.unreadable) == ([], ["0123456789abcdef"])
    assert (tmp_path / "repo" / "locks" / "0123456789abcdef").exists()
    gone = remove_locks(repo.lock_store(), all_locks=True)
    assert gone.unreadable == ["0123456789abcdef"]
    assert not (tmp_path / "repo" / "locks" / "0123456789abcdef").exists()


def test_unlock_json_names_unreadable_lock_files(make_repo, fogvault, tmp_path):
    repo = make_repo()
    (tmp_path / "repo" / "locks").mkdir(exist_ok=True)
    (tmp_path / "repo" / "locks" / "0123456789abcdef").write_bytes(b"junk")
    for flags, removed in (([], False), (["--remove-all"], True)):
        done = json.loads(fogvault("unlock", "-r", repo.targets.urls[0], "--json", *flags).stdout)
        assert done == {"removed": [], "unreadable": ["0123456789abcdef"],
                        "unreadable_removed": removed}
    assert not (tmp_path / "repo" / "locks" / "0123456789abcdef").exists()
