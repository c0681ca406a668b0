"""limit_upload and limit_download of [repositories.NAME]: validated with the other keys, and
they reach the run's limiter (a run cannot be faster than they allow); --limit-upload on the
command line wins over them, and commands that move no data refuse the options."""

from __future__ import annotations

import json
import time

import pytest


def timed_run(jobs_cli, setup, *options: str) -> float:
    started = time.monotonic()
    done = jobs_cli(*options, "run", "home", "--config", str(setup.config), "-q")
    assert done.returncode == 0, done.stderr.decode()
    return time.monotonic() - started


def test_the_repository_limit_paces_the_run(setup, jobs_cli):
    setup.write(repo="limit_upload = 64")
    # the job's files are over 200 KB of random bytes: at 64 KiB/s, less the 64 KiB the bucket
    # holds at the start, more than 2 s
    assert timed_run(jobs_cli, setup) >= 1.9


def test_the_command_line_wins_over_the_repository_limit(setup, jobs_cli):
    setup.write(repo="limit_upload = 1")  # 1 KiB/s: minutes
    assert timed_run(jobs_cli, setup, "--limit-upload", "0") < 60


@pytest.mark.parametrize("value", ["-1", '"64"', "1.5", "true", "9" * 400, str(2**30 + 1)])
@pytest.mark.parametrize("key", ["limit_upload", "limit_download"])
def test_a_bad_limit_is_a_config_error(setup, jobs_cli, key, value):
    config = setup.write(repo=f"{key} = {value}")
    done = jobs_cli("config", "check", "--config", str(config))
    assert done.returncode == 2
    [line] = done.stderr.decode().splitlines()
    assert f"{key}: expected a whole number 0-1073741824" in line
    assert "KiB/s; 0 for no limit" in line


def test_config_show_tells_the_limits(setup, jobs_cli):
    config = setup.write(repo="limit_upload = 512\nlimit_download = 0")
    done = jobs_cli("--json", "config", "show", "--config", str(config))
    assert done.returncode == 0, done.stderr.decode()
    repo = json.loads(done.stdout)["repositories"]["local"]
    assert (repo["limit_upload"], repo["limit_download"]) == (512, 0)


def test_commands_that_move_no_data_refuse_the_limits(setup, jobs_cli):
    done = jobs_cli("--limit-download", "5", "status", "--config", str(setup.config))
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "error: --limit-upload/--limit-download cannot be used with 'fogvault status': it "
        "opens no repository, so it moves no data"]
