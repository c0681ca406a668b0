"""Ctrl-C stops a command soon even while an S3 target hangs, whatever the command.

The repository is on a local folder and on the test S3 server (Ceph RGW). The interrupted
command reaches S3 through a :class:`Link` that goes silent at the first read of a pack, with
that read in flight; once it has, the command gets SIGINT. Before every command interrupted its
targets (only the backup did), the thread pools that the interrupt unwinds waited out the
stall limit of the hanging request on every retry (here 60 s each: minutes); now the command
exits 130 within seconds.

Below, :func:`fogvault.interrupts.notify`, which the signal handler calls, on its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fogvault.interrupts import notify, register, unregister
from tests.storage.s3_link import Link

MiB = 1 << 20

STALL_LIMIT = "60"  # seconds without data before an S3 request is given up (uninterrupted)
EXIT_WITHIN = 20.0  # seconds from SIGINT to exit: well within one stall limit
# A GET of an object in data/ (a pack), path-style or not; not a listing of data/, whose
# prefix is in the query.
PACK_READ = rb"GET /[^ ?]*/data/"
INDEX_LISTING = rb"GET /[^ ]*[?&]prefix=[^ &]*index"  # the prefix's slashes are %2F


@pytest.fixture
def repository(s3_url: str, s3_env: dict[str, str], cli_env: dict[str, str],
               tmp_path: Path) -> list[str]:
    """The command line to a repository on a local folder and on S3 that holds a snapshot of
    ``src`` (a 2 MiB file: one data pack), made straight through the server."""
    command = [sys.executable, "-m", "fogvault", "-r", str(tmp_path / "local"), "-r", s3_url]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "file").write_bytes(os.urandom(2 * MiB))
    env = {**cli_env, "FOGVAULT_S3_ENDPOINT": s3_env["FOGVAULT_S3_ENDPOINT"]}
    for args in (["init", "--kdf", "interactive"], ["backup", "src"]):
        done = subprocess.run([*command, *args], env=env, capture_output=True,
                              cwd=tmp_path, timeout=120)
        assert done.returncode == 0, done.stderr
    return command


def assert_interrupted_soon(command: list[str], cli_env: dict[str, str],
                            s3_env: dict[str, str], cwd: Path, silent_on: bytes = PACK_READ
                            ) -> None:
    """Run ``command`` with S3 through a Link that goes silent at its first request that
    matches ``silent_on`` (a pack read); send SIGINT once it has: the command must say it was
    interrupted and exit 130 within :data:`EXIT_WITHIN` seconds."""
    endpoint = urlsplit(s3_env["FOGVAULT_S3_ENDPOINT"])
    proxy = Link((endpoint.hostname, endpoint.port), silent_on=silent_on)
    env = {**cli_env, "FOGVAULT_S3_ENDPOINT": proxy.url, "FOGVAULT_S3_STALL_TIMEOUT": STALL_LIMIT,
           "PYTHONFAULTHANDLER": "1"}  # SIGABRT dumps every thread's stack: see below
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        if not proxy.silent.wait(timeout=60):  # a bound for a failing test
            process.kill()
            pytest.fail(f"no such request reached S3: {process.communicate()[1]!r}")
        assert process.poll() is None, "the command ended without waiting for S3"
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)  # where it waits, for the failure's message
            stacks = process.communicate(timeout=60)[1].decode(errors="replace")
            pytest.fail(f"still running {EXIT_WITHIN:g} s after SIGINT (stall limit "
                        f"{STALL_LIMIT} s); its threads:\n{stacks[-12000:]}")
    finally:
        process.kill()
        process.wait()
        proxy.close()
    assert process.returncode == 130, stderr
    assert b"interrupted" in stderr


def test_ctrl_c_stops_a_restore_reading_from_a_silent_target_soon(
        repository: list[str], cli_env: dict[str, str], s3_env: dict[str, str],
        tmp_path: Path) -> None:
    """The local copy lost its data pack, so the restore's fetch threads read it from S3."""
    data_packs = [p for p in (tmp_path / "local" / "data").rglob("*")
                  if p.is_file() and p.stat().st_size > MiB]  # not the small pack of trees
    assert len(data_packs) == 1
    data_packs[0].unlink()
    assert_interrupted_soon([*repository, "restore", "-V", "latest", "-t", "out"],
                            cli_env, s3_env, tmp_path)


def test_ctrl_c_stops_check_read_data_on_a_silent_target_soon(
        repository: list[str], cli_env: dict[str, str], s3_env: dict[str, str],
        tmp_path: Path) -> None:
    """check --read-data reads every pack from every target, S3's too."""
    assert_interrupted_soon([*repository, "check", "--read-data"], cli_env, s3_env, tmp_path)


def test_ctrl_c_stops_the_opening_of_a_repository_on_a_silent_target_soon(
        repository: list[str], cli_env: dict[str, str], s3_env: dict[str, str],
        tmp_path: Path) -> None:
    """``ls`` loads the index while it opens the repository: S3 goes silent at the listing of
    index/, before any command code runs (the targets register themselves when they are made)."""
    assert_interrupted_soon([*repository, "ls", "latest"], cli_env, s3_env, tmp_path,
                            silent_on=INDEX_LISTING)


def test_ctrl_c_stops_a_job_run_opening_a_silent_target_soon(
        repository: list[str], cli_env: dict[str, str], s3_env: dict[str, str],
        tmp_path: Path) -> None:
    """``fogvault run`` opens its repository through the job runner, not the CLI's helper: its
    targets are told too."""
    local, s3_url = repository[repository.index("-r") + 1], repository[-1]
    (tmp_path / "password").write_text(cli_env["FOGVAULT_PASSWORD"])
    (tmp_path / "jobs.toml").write_text(
        f'[repositories.both]\ntargets = ["{local}", "{s3_url}"]\npassword_file = "password"\n'
        '[jobs.home]\nrepository = "both"\npaths = ["src"]\n')
    command = [sys.executable, "-m", "fogvault", "run", "home", "--config", "jobs.toml"]
    assert_interrupted_soon(command, cli_env, s3_env, tmp_path, silent_on=INDEX_LISTING)


# ----------------------------------------------------------------------------- notify


@contextlib.contextmanager
def on_interrupt(callback: Callable[[], object]) -> Iterator[None]:
    register(callback)
    try:
        yield
    finally:
        unregister(callback)


def test_notify_calls_the_callbacks_registered_while_their_block_runs() -> None:
    calls: list[str] = []

    def failing() -> None:
        calls.append("failing")
        raise RuntimeError("a bug")

    with on_interrupt(failing), on_interrupt(lambda: calls.append("next")):
        notify()  # returns once they have run
        assert calls == ["failing", "next"]  # one failing does not keep the next from running
    notify()
    assert calls == ["failing", "next"]


def test_notify_does_not_deadlock_on_a_lock_the_interrupted_thread_holds() -> None:
    """A signal handler runs between two bytecodes of the main thread, perhaps while it holds a
    lock a callback needs: the callbacks run on a thread of their own, which notify stops
    waiting for, and they run once the lock is free."""
    lock = threading.Lock()
    ran, returned = threading.Event(), threading.Event()
    ran_before_return: list[bool] = []

    def needs_the_lock() -> None:
        with lock:
            ran.set()

    def interrupted() -> None:  # on a daemon thread: a deadlock fails the test, not the run
        with lock:
            notify(wait=0.2)
            ran_before_return.append(ran.is_set())
            returned.set()

    with on_interrupt(needs_the_lock):
        threading.Thread(target=interrupted, daemon=True).start()
        assert returned.wait(timeout=10), "notify did not return while its caller held the lock"
        assert ran_before_return == [False]
        assert ran.wait(timeout=10)  # once the lock was free
