"""--limit-upload and --limit-download (and FOGVAULT_LIMIT_*) through the real CLI: a run
cannot be faster than its limit allows, and a bad limit is a usage error of one line.

Only lower bounds are asserted: a limited run may be slower for any reason, never faster. The
bucket starts full (at most 256 KiB, or a second's worth), which the bounds allow for."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

KIB = 1024


def random_files(folder: Path, size: int) -> Path:
    folder.mkdir()
    (folder / "random.bin").write_bytes(os.urandom(size))  # incompressible
    return folder


def timed(fogvault, *args: str, env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    done = fogvault(*args, env=env)
    assert done.returncode == 0, done.stderr.decode()
    return time.monotonic() - started


def test_a_restore_by_worker_processes_keeps_to_the_limit(fogvault, tmp_path: Path):
    """A restore of 1,000 files or more from folders here writes them by two worker processes,
    each with its own bucket: they share the limit (each had all of it: twice as fast)."""
    repo = str(tmp_path / "repo")
    assert fogvault("-r", repo, "init").returncode == 0
    src = tmp_path / "src"
    src.mkdir()
    for i in range(1_100):
        (src / f"f{i}").write_bytes(os.urandom(4 * KIB))
    assert fogvault("-r", repo, "backup", str(src), "-q").returncode == 0
    # 4.4 MB at 1 MiB/s, less the buckets' 256 KiB each at the start: >= 3.5 s (it was ~2 s)
    took = timed(fogvault, "-r", repo, "--limit-download", "1024", "--no-cache", "restore",
                 "latest", "--target", str(tmp_path / "out"), "-q")
    assert took >= 3.5


def test_backup_and_restore_keep_to_the_limits(fogvault, tmp_path: Path):
    repo = str(tmp_path / "repo")
    assert fogvault("-r", repo, "init").returncode == 0
    src = random_files(tmp_path / "src", 1536 * KIB)
    # 1.5 MiB at 512 KiB/s, less the 256 KiB the bucket holds at the start: >= 2.5 s
    took = timed(fogvault, "-r", repo, "backup", str(src), "--limit-upload", "512", "-q")
    assert took >= 2.4
    took = timed(fogvault, "-r", repo, "--limit-download", "512", "--no-cache", "restore",
                 "latest", "--target", str(tmp_path / "out"), "-q")
    assert took >= 2.4
    restored = tmp_path / "out" / src.relative_to("/") / "random.bin"
    assert restored.read_bytes() == (src / "random.bin").read_bytes()


def test_the_environment_sets_the_limit(fogvault, tmp_path: Path):
    repo = str(tmp_path / "repo")
    assert fogvault("-r", repo, "init").returncode == 0
    src = random_files(tmp_path / "src", 192 * KIB)
    # 192 KiB at 64 KiB/s, less 64 KiB saved up: >= 2 s
    took = timed(fogvault, "-r", repo, "backup", str(src), "-q",
                 env={"FOGVAULT_LIMIT_UPLOAD": "64"})
    assert took >= 1.9


def test_the_option_wins_over_the_environment(fogvault, tmp_path: Path):
    repo = str(tmp_path / "repo")
    assert fogvault("-r", repo, "init").returncode == 0
    src = random_files(tmp_path / "src", 192 * KIB)
    # at FOGVAULT_LIMIT_UPLOAD's 1 KiB/s this would take three minutes (the test's timeout)
    took = timed(fogvault, "-r", repo, "--limit-upload", "0", "backup", str(src), "-q",
                 env={"FOGVAULT_LIMIT_UPLOAD": "1"})
    assert took < 60


@pytest.mark.parametrize("value", ["-1", "1.5", "10k", "x", "", "+5", "1_000", "\u00b2",
                                   "\u0661\u0660", "9" * 400, str(2**30 + 1)])
@pytest.mark.parametrize("option", ["--limit-upload", "--limit-download"])
def test_a_bad_limit_is_a_usage_error(fogvault, tmp_path: Path, option: str, value: str):
    done = fogvault("-r", str(tmp_path / "repo"), "snapshots", f"{option}={value}")
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"error: {option} takes a whole number of KiB/s from 0 (no limit) to 1073741824, "
        f"not {value!r}"]


@pytest.mark.parametrize("value", ["-1", "fast", "+5", "1_000", "-0", "\u0661\u0660", "9" * 400])
def test_a_bad_limit_in_the_environment_is_a_usage_error(fogvault, tmp_path: Path, value: str):
    repo = str(tmp_path / "repo")
    assert fogvault("-r", repo, "init").returncode == 0
    done = fogvault("-r", repo, "snapshots", env={"FOGVAULT_LIMIT_DOWNLOAD": value})
    assert done.returncode == 2
    [line] = done.stderr.decode().splitlines()
    assert line == ("error: FOGVAULT_LIMIT_DOWNLOAD takes a whole number of KiB/s from 0 "
                    f"(no limit) to 1073741824, not {value!r}")
