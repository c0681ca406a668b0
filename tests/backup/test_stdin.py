"""Backups of a stream (restic's --stdin and --stdin-from-command) through the real CLI."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture
def repo(fogvault):
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    return "repo"


def _snapshots(fogvault) -> list[dict]:
    return json.loads(fogvault("snapshots", "-r", "repo", "--json").stdout)


def _error(done) -> str:
    err = done.stderr.decode()
    assert "Traceback" not in err
    [line] = err.splitlines()
    return line


def test_stdin_is_stored_as_one_file_and_restored_byte_for_byte(fogvault, repo, tmp_path):
    data = os.urandom(3 * 1024 * 1024) + b"\0" * 2_000_000  # several chunks, several reads
    done = fogvault("backup", "-r", "repo", "--stdin", "--stdin-filename", "db.sql",
                    "--json", input=data)
    assert done.returncode == 0, done.stderr
    summary = [json.loads(ln) for ln in done.stdout.decode().splitlines()][-1]
    assert (summary["files_new"], summary["bytes_read"]) == (1, len(data))
    [snap] = _snapshots(fogvault)
    assert snap["paths"] == ["/db.sql"]
    restored = fogvault("restore", "-r", "repo", "latest", "-t", "out")
    assert restored.returncode == 0, restored.stderr
    out = tmp_path / "out" / "db.sql"
    assert out.read_bytes() == data
    assert out.stat().st_mode & 0o777 == 0o600
    again = fogvault("backup", "-r", "repo", "--stdin", "--stdin-filename", "db.sql", "--json",
                     input=data)
    summary = [json.loads(ln) for ln in again.stdout.decode().splitlines()][-1]
    assert summary["data_blobs_added"] == 0  # deduplicated against the first run
    assert _snapshots(fogvault)[-1]["parent"] == snap["uid"]


def test_an_empty_stream_is_an_empty_file(fogvault, repo, tmp_path):
    assert fogvault("backup", "-r", "repo", "--stdin", input=b"").returncode == 0
    assert fogvault("restore", "-r", "repo", "latest", "-t", "out").returncode == 0
    assert (tmp_path / "out" / "stdin").read_bytes() == b""


def test_a_commands_output_is_backed_up(fogvault, repo, tmp_path):
    (tmp_path / "dump").write_bytes(os.urandom(100_000))
    done = fogvault("backup", "-r", "repo", "--stdin-filename", "dump.bin",
                    "--stdin-from-command", "--", "cat", "dump")
    assert done.returncode == 0, done.stderr
    assert fogvault("restore", "-r", "repo", "latest", "-t", "out").returncode == 0
    assert (tmp_path / "out" / "dump.bin").read_bytes() == (tmp_path / "dump").read_bytes()


@pytest.mark.parametrize(("script", "says"), [
    ("head -c 300000 /dev/urandom; exit 4", "error: sh exited with status 4: no snapshot saved"),
    ("head -c 1000 /dev/zero; kill -9 $$", "error: sh was killed by signal 9: no snapshot saved"),
])
def test_a_failing_command_leaves_no_snapshot(fogvault, repo, script, says):
    """A dump cut short must not look like a backup."""
    done = fogvault("backup", "-r", "repo", "--stdin-from-command", "--", "sh", "-c", script)
    assert done.returncode == 1
    assert _error(done) == says
    assert _snapshots(fogvault) == []
    assert fogvault("check", "-r", "repo").returncode == 0


def test_a_command_that_cannot_run_is_one_line(fogvault, repo):
    done = fogvault("backup", "-r", "repo", "--stdin-from-command", "--", "no-such-command-x")
    assert done.returncode == 1
    assert _error(done) == "error: cannot run no-such-command-x: No such file or directory"


@pytest.mark.parametrize(("args", "says"), [
    (["--stdin", "src"], "--stdin backs up standard input only: give no paths"),
    (["--stdin", "--stdin-from-command", "--", "true"],
     "--stdin and --stdin-from-command cannot be used together"),
    (["--stdin-from-command"], "--stdin-from-command runs the arguments as a command: give "
                               "them (after '--') and no path list"),
    (["--stdin", "--stdin-filename", "a/b"], "'a/b' is not a file name (no '/'; not '.' or "
                                             "'..')"),
    (["--stdin", "--stdin-filename", ".."], "'..' is not a file name (no '/'; not '.' or '..')"),
])
def test_stream_options_that_do_not_fit_are_usage_errors(fogvault, repo, args, says):
    done = fogvault("backup", "-r", "repo", *args, input=b"x")
    assert done.returncode == 2
    assert _error(done) == f"error: {says}"
    assert _snapshots(fogvault) == []


def test_a_password_command_cannot_take_the_stream(fogvault, repo, tmp_path):
    """The password command gets /dev/null as its input: 'ssh vault cat pw' would otherwise
    forward part of the stream, and a truncated backup would succeed."""
    script = tmp_path / "pw.sh"
    script.write_text("#!/bin/sh\nhead -c 4096 >/dev/null\necho 'correct horse battery staple'\n")
    script.chmod(0o755)
    data = b"".join(b"%d\n" % n for n in range(100_000))
    done = fogvault("backup", "-r", "repo", "--stdin", "--password-command", str(script),
                    input=data, env={"FOGVAULT_PASSWORD": ""})
    assert done.returncode == 0, done.stderr
    assert fogvault("dump", "-r", "repo", "latest", "/stdin").stdout == data


def test_the_command_starts_only_once_the_repository_is_locked_for_the_backup(
        fogvault, repo, tmp_path):
    """A locked repository must not start (and then kill) a database dump."""
    from conftest import PASSWORD

    from fogvault.repo.repository import Repository

    started = tmp_path / "started"
    with (Repository.open([str(tmp_path / "repo")], PASSWORD, use_cache=False) as other,
          other.lock(exclusive=True)):
        done = fogvault("backup", "-r", "repo", "--stdin-from-command", "--", "sh", "-c",
                        f"touch {started}; echo data")
    assert done.returncode == 11, done.stderr
    assert not started.exists()


def test_a_stream_takes_no_path_list_and_none_is_read(fogvault, repo):
    done = fogvault("backup", "-r", "repo", "--stdin", "--files-from", "-", input=b"#x\n")
    assert done.returncode == 2
    assert _error(done) == "error: --stdin and --stdin-from-command take no --files-from list"
    assert _snapshots(fogvault) == []
