"""Interrupted backups: kill -9 and Ctrl-C mid-run, then a rerun that resumes.

Synchronisation is on the repository itself (the first index file appearing means packs
were committed), never on a timer.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FILES = 160
FILE_SIZE = 1024 * 1024


@pytest.fixture
def big_source(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(7)
    for i in range(FILES):
        (src / f"f{i:03}").write_bytes(rng.randbytes(FILE_SIZE))
    return src


def _start_backup(cli_env, tmp_path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fogvault", "backup", "-r", "repo", "src", "--json"],
        cwd=tmp_path, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    """A test run started in the background by a non-interactive shell (``cmd &``) inherits
    SIGINT ignored, and Python then leaves it ignored, as a background job should: Ctrl-C is
    meant for the foreground. The backup under test is the foreground here."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _freeze_after_first_index(proc: subprocess.Popen, repo: Path) -> None:
    """Return with the backup stopped (SIGSTOP) and its first index file written, so the
    interruption that follows lands mid-run however fast the rest of the backup would be.
    The backup only runs between checks; it cannot finish in one 5 ms slice."""
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, "backup ended before it could be interrupted"
        proc.send_signal(signal.SIGSTOP)
        if [p for p in (repo / "index").glob("*") if not p.name.startswith(".")]:
            return
        proc.send_signal(signal.SIGCONT)
        assert time.monotonic() < deadline, "no index file was written"
        time.sleep(0.005)  # polling a condition, not waiting for one to happen


def _summary(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def _restore_and_compare(fogvault, tmp_path: Path, src: Path) -> None:
    done = fogvault("restore", "-r", "repo", "--version", "latest", "--target", "out")
    assert done.returncode == 0, done.stderr
    restored = tmp_path / "out" / str(src).lstrip("/")
    assert sorted(os.listdir(restored)) == sorted(os.listdir(src))
    for name in os.listdir(src):
        assert (restored / name).read_bytes() == (src / name).read_bytes(), name


@pytest.mark.slow
def test_kill_9_then_rerun_uploads_less_and_restores(fogvault, cli_env, tmp_path, big_source):
    init = fogvault("init", "-r", "repo", "--kdf", "interactive", "--pack-size", "1")
    assert init.returncode == 0
    proc = _start_backup(cli_env, tmp_path)
    _freeze_after_first_index(proc, tmp_path / "repo")
    proc.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not list((tmp_path / "repo" / "snapshots").glob("*"))
    summary = _summary(fogvault("backup", "-r", "repo", "src", "--json"))
    total = FILES * FILE_SIZE
    assert summary["bytes_read"] == total
    # Random data does not compress and sealing adds overhead: uploading everything again
    # would add more than the data's size.
    assert summary["bytes_added"] < total, "the rerun uploaded everything again"
    _restore_and_compare(fogvault, tmp_path, big_source)
    check = fogvault("cat", "snapshot", "latest", "-r", "repo")
    assert check.returncode == 0


@pytest.mark.slow
def test_ctrl_c_exits_130_and_indexes_what_was_uploaded(fogvault, cli_env, tmp_path, big_source):
    init = fogvault("init", "-r", "repo", "--kdf", "interactive", "--pack-size", "1")
    assert init.returncode == 0
    proc = _start_backup(cli_env, tmp_path)
    _freeze_after_first_index(proc, tmp_path / "repo")
    proc.send_signal(signal.SIGINT)  # delivered when the backup continues
    proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert b"Traceback" not in stderr
    assert not list((tmp_path / "repo" / "snapshots").glob("*"))
    # Every pack on disk is indexed: nothing uploaded was lost to the interruption.
    packs = {p.name for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()}
    indexed = set()
    for index in (tmp_path / "repo" / "index").iterdir():
        doc = json.loads(fogvault("cat", "index", index.name, "-r", "repo").stdout)
        indexed |= {p["id"] for p in doc["packs"]}
    assert packs and packs == indexed
    summary = _summary(fogvault("backup", "-r", "repo", "src", "--json"))
    stored = sum(p.stat().st_size for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file())
    assert summary["bytes_added"] < stored
    _restore_and_compare(fogvault, tmp_path, big_source)
