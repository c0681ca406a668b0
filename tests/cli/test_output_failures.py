"""A command whose output cannot be written (a pipe whose reader went away, a full disk) does
its work all the same: a lost report never cuts a backup, restore or prune short. A reader
that went away ends a listing quietly (exit 0); any other failure on stdout is one line on
stderr and exit 1; a failure on stderr leaves the exit code as it was (fogvault.cli.streams).

Real processes: stdout or stderr is a pipe whose read end is closed before the command starts
(every write fails with EPIPE at once) or /dev/full (ENOSPC). Each case runs with Python's
output buffered, as for users, and unbuffered (PYTHONUNBUFFERED, as in some CI shells): the
two failed at different moments before."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FILES = 3_000  # a listing of them overflows any buffer and pipe


@pytest.fixture(params=["buffered", "unbuffered"])
def env(cli_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
        ) -> dict[str, str]:
    env = {**cli_env, "FOGVAULT_REPO": str(tmp_path / "repo")}
    env.pop("PYTHONUNBUFFERED", None)
    if request.param == "unbuffered":
        env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def reader_gone() -> Iterator[int]:
    """The write end of a pipe whose read end is closed."""
    read, write = os.pipe()
    os.close(read)
    try:
        yield write
    finally:
        os.close(write)


def run(env: dict[str, str], *args: str, stdout: Any = subprocess.PIPE,
        stderr: Any = subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fogvault", *args], env=env, stdout=stdout,
                          stderr=stderr, timeout=300, check=False)


@pytest.fixture
def src(env: dict[str, str], tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for n in range(FILES):
        (src / f"f{n:04d}").write_text(f"file {n}\n")
    assert run(env, "init").returncode == 0
    assert run(env, "backup", str(src)).returncode == 0
    return src


def snapshot_count(env: dict[str, str]) -> int:
    return len(json.loads(run(env, "snapshots", "--json").stdout))


@pytest.mark.parametrize("args", [["ls", "latest"], ["ls", "--json", "latest"],
                                  ["find", "f*"], ["snapshots"], ["dump", "latest", "SRC"],
                                  ["dump", "latest", "SRC/f0001"]])
def test_a_listing_whose_reader_went_away_ends_quietly(
        env: dict[str, str], src: Path, args: list[str]) -> None:
    args = [arg.replace("SRC", str(src)) for arg in args]
    with reader_gone() as stdout:
        done = run(env, *args, stdout=stdout)
    assert (done.returncode, done.stderr) == (0, b"")


@pytest.mark.parametrize("args", [["ls", "latest"], ["snapshots"], ["snapshots", "--json"],
                                  ["dump", "latest", "SRC"], ["cat", "config"]])
def test_a_full_disk_on_stdout_is_one_line_and_exit_1(
        env: dict[str, str], src: Path, args: list[str]) -> None:
    args = [arg.replace("SRC", str(src)) for arg in args]
    with open("/dev/full", "wb") as full:
        done = run(env, *args, stdout=full)
    assert done.returncode == 1
    assert done.stderr == b"error: cannot write to standard output: No space left on device\n"


@pytest.mark.parametrize("output", ["reader gone", "full"])
def test_backup_restore_and_prune_do_their_work_when_their_json_is_lost(
        env: dict[str, str], src: Path, tmp_path: Path, output: str) -> None:
    """Before: a --json backup saved no snapshot, a restore stopped part-way, a prune deleted
    nothing (and each ended with exit 1, often without a word)."""
    code = 0 if output == "reader gone" else 1
    with contextlib.ExitStack() as stack:
        stdout = (stack.enter_context(reader_gone()) if output == "reader gone"
                  else stack.enter_context(open("/dev/full", "wb")))
        (src / "f0001").write_text("changed\n")
        assert run(env, "backup", "--json", str(src), stdout=stdout).returncode == code
        assert snapshot_count(env) == 2
        done = run(env, "restore", "--json", "latest", "-t", str(tmp_path / "out"),
                   stdout=stdout)
        assert done.returncode == code, done.stderr
        restored = tmp_path / "out" / str(src).lstrip("/")
        assert sorted(p.name for p in restored.iterdir()) == sorted(p.name for p in src.iterdir())
        assert (restored / "f0001").read_text() == "changed\n"
        done = run(env, "forget", "--json", "--keep-last", "1", "--prune", stdout=stdout)
        assert done.returncode == code, done.stderr
    assert snapshot_count(env) == 1
    pruned = json.loads(run(env, "prune", "--json", "--dry-run").stdout.splitlines()[-1])
    assert pruned["packs_deleted"] == pruned["packs_repacked"] == 0  # done already
    assert run(env, "check").returncode == 0


@pytest.mark.parametrize("stderr", ["reader gone", "full"])
def test_a_failure_on_stderr_changes_no_exit_code_and_stops_no_work(
        env: dict[str, str], src: Path, tmp_path: Path, stderr: str) -> None:
    """A backup's warning that cannot be written: it still saves its snapshot, exit 3 (it
    saved none, exit 120 or 1). An error keeps its own code."""
    with contextlib.ExitStack() as stack:
        err = (stack.enter_context(reader_gone()) if stderr == "reader gone"
               else stack.enter_context(open("/dev/full", "wb")))
        backup = run(env, "backup", str(src), str(tmp_path / "missing"), stderr=err)
        wrong_repo = run({**env, "FOGVAULT_REPO": str(tmp_path / "none")}, "snapshots",
                         stderr=err)
    assert backup.returncode == 3
    assert snapshot_count(env) == 2
    assert wrong_repo.returncode == 10


def test_a_warning_that_cannot_be_written_stops_no_restore(
        env: dict[str, str], src: Path, tmp_path: Path) -> None:
    """A folder in the way of a file is a warning (exit 3): all other files are restored
    (none were, exit 120 or 1)."""
    out = tmp_path / "out"
    restored = out / str(src).lstrip("/")
    (restored / "f0002").mkdir(parents=True)
    (restored / "f0002" / "x").write_text("in the way")
    with reader_gone() as stderr:
        done = run(env, "restore", "latest", "-t", str(out), stderr=stderr)
    assert done.returncode == 3, done.stdout
    assert (restored / "f0002" / "x").read_text() == "in the way"
    assert [p.read_text() for p in restored.iterdir() if p.name != "f0002"] == [
        (src / p.name).read_text() for p in restored.iterdir() if p.name != "f0002"]
    assert len(list(restored.iterdir())) == FILES


def test_a_library_caller_gets_its_streams_back_after_each_command(
        env: dict[str, str], src: Path) -> None:
    """main() left stdout replaced, with its first error kept: a second call printed nothing
    (and the caller's own prints were lost) after a first into a closed pipe (review)."""
    script = (
        "import os, sys\n"
        "from fogvault.cli.app import main\n"
        "def run(*args):\n"
        "    try:\n"
        "        main(list(args))\n"
        "    except SystemExit as exc:\n"
        "        return exc.code\n"
        "read, write = os.pipe()\n"
        "os.close(read)\n"
        "saved = os.dup(1)\n"
        "os.dup2(write, 1)\n"
        "first = run('ls', 'latest')\n"
        "os.dup2(saved, 1)\n"
        "second = run('snapshots', '--json')\n"
        "print('codes', first, second)\n")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    *listing, last = done.stdout.decode().splitlines()
    assert last == "codes 0 0" and len(json.loads("\n".join(listing))) == 1


def test_a_command_that_decides_its_exit_code_after_its_report_keeps_it(
        env: dict[str, str], tmp_path: Path) -> None:
    """status --check with a table too large for the pipe: a reader gone gave exit 0 and no
    'need a look' error, where the jobs need one (review)."""
    jobs = "".join(f'[jobs.job{n:03d}]\nrepository = "r"\npaths = ["/srv"]\nschedule = "daily"\n'
                   for n in range(150))
    config = tmp_path / "config.toml"
    config.write_text('[repositories.r]\ntargets = ["repo"]\npassword_file = "pw"\n' + jobs)
    with reader_gone() as stdout:
        done = run(env, "status", "--check", "--config", str(config), stdout=stdout)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines()[-1].startswith("error: 150 of 150 jobs need a look")


def test_unbuffered_streams_stay_unbuffered(env: dict[str, str]) -> None:
    """python -u / PYTHONUNBUFFERED: a warning reached a pipe only at the exit, after the
    lines printed after it (review)."""
    script = ("import io, sys\nfrom fogvault.cli import streams\nstreams.install()\n"
              "print(isinstance(sys.stdout.buffer, io.BufferedWriter), flush=True)\n")
    for flags, buffered in ((["-u"], "False"), ([], "True")):
        done = subprocess.run([sys.executable, *flags, "-c", script], capture_output=True,
                              env={k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"},
                              timeout=60, check=False)
        assert done.stdout.decode().strip() == buffered, done.stderr
