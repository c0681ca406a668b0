"""An SFTP server that dies while a backup uploads to it, on a real OpenSSH of this test's own
(the session's server stays up for the other tests): the backup goes on with the local target
and reports in one-line warnings and errors, with the documented exit code. Before, asyncssh's
write tasks that nobody awaited printed "Task exception was never retrieved" tracebacks at
exit, and asyncio's logger tens of "socket.send() raised exception." lines."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from polling import wait_until
from servers import SCRIPTS, Server

from tests.storage.test_sftp import _alive, _descendants

MiB = 1 << 20


@pytest.fixture
def own_sftp_server(sftp_server: Server, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A second sshd (the session's one, ``sftp_server``, has installed the packages), which
    the test may kill; stopped at the end if it is still running."""
    env = {**os.environ, "FOGVAULT_SFTP_DIR": str(tmp_path / "sshd"), "FOGVAULT_SFTP_PORT": "auto"}
    script = str(SCRIPTS / "sftp-server.sh")
    done = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    try:
        yield dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True, timeout=60)


def _kill_server(listener: int) -> None:
    """SIGTERM to the sshd listener and every connection process under it (by pid, as the
    drill did), then wait until they are gone."""
    pids = [listener, *_descendants(listener)]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not any(_alive(pid) for pid in pids), "the sshd processes ending")


def _receiving(folder: Path) -> bool:
    """Whether a pack is being written into ``folder``: a temporary with some data in it."""
    for tmp in folder.glob("data/*/.tmp-*"):
        try:
            if tmp.stat().st_size >= MiB:
                return True
        except FileNotFoundError:  # renamed into place meanwhile
            continue
    return False


def test_an_sftp_server_killed_during_a_backup_gives_one_line_messages(
        fogvault, cli_env, own_sftp_server, tmp_path) -> None:
    server = own_sftp_server
    sftp_repo = Path(server["SFTP_ROOT"]) / "repo"
    env = {**cli_env, "FOGVAULT_SFTP_KEY": server["FOGVAULT_SFTP_KEY"],
           "FOGVAULT_SFTP_KNOWN_HOSTS": server["FOGVAULT_SFTP_KNOWN_HOSTS"]}
    targets = ["-r", str(tmp_path / "local"), "-r", f"{server['SFTP_URL']}{sftp_repo}"]
    init = fogvault(*targets, "init", "--kdf", "interactive", env=env)
    assert init.returncode == 0, init.stderr
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(1)
    for i in range(12):  # incompressible: 12 packs of 16 MiB to send, most after the kill
        (src / f"f{i}").write_bytes(rng.randbytes(16 * MiB))

    backup = subprocess.Popen(
        [sys.executable, "-m", "fogvault", *targets, "--min-targets", "1", "backup", str(src)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not _receiving(sftp_repo):  # watch the server's folder: no guessed delay
            assert backup.poll() is None, backup.communicate()
            assert time.monotonic() < deadline, "the SFTP target received no pack"
            time.sleep(0.005)
        _kill_server(int(server["SFTP_PID"]))
        _, err = backup.communicate(timeout=300)
    finally:
        if backup.poll() is None:
            backup.kill()
            backup.wait()

    stderr = err.decode()
    assert backup.returncode == 3, stderr  # partial: the snapshot is on the local target only
    for noise in ("Traceback", "never retrieved", "socket.send()", "Task exception"):
        assert noise not in stderr, stderr
    lines = stderr.splitlines()
    assert lines and all(line.startswith(("warning: ", "error: ")) for line in lines), stderr
    assert any("not using this target for the rest of the run" in line for line in lines), stderr
    assert fogvault("-r", str(tmp_path / "local"), "check", env=env).returncode == 0
