"""Common options that ``run`` and ``daemon`` cannot honour are usage errors (exit 2), before
anything runs: the job's repository, password and min_targets come from the config file, and a
job writes, so it always locks the repository."""

from __future__ import annotations

import pytest

REFUSED = [
    (["-r", "elsewhere"], "-r/--repo cannot be used with 'fogvault {cmd}': a job's targets are "
                          "the targets of [repositories.NAME] of the config file"),
    (["--no-lock"], "--no-lock cannot be used with 'fogvault {cmd}': a job writes to the "
                    "repository (backup, forget, prune), so it always locks it"),
    (["--min-targets", "1"], "--min-targets cannot be used with 'fogvault {cmd}': set "
                             "min_targets in [repositories.NAME] of the config file"),
    (["--password-file", "password"], "--password-file/--password-command cannot be used with "
                                      "'fogvault {cmd}': a job's password comes from "
                                      "password_file, password_command or password_env of "
                                      "[repositories.NAME] of the config file"),
]


@pytest.mark.parametrize(("options", "message"), REFUSED)
@pytest.mark.parametrize("before", [True, False])
def test_run_refuses_options_it_cannot_honour(setup, jobs_cli, options, message, before):
    args = ["run", "home", "--config", str(setup.config)]
    done = jobs_cli(*(options + args if before else args + options))
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode().splitlines() == ["error: " + message.format(cmd="run")]
    assert not setup.run_log.exists()  # nothing ran
    assert not (setup.root / "elsewhere").exists()


@pytest.mark.parametrize(("options", "message"), REFUSED[:2])
def test_daemon_refuses_them_too(setup, jobs_cli, options, message):
    # no job has a schedule (the daemon would refuse to start for that, after the options)
    done = jobs_cli(*options, "daemon", "--config", str(setup.config))
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode().splitlines() == ["error: " + message.format(cmd="daemon")]
    assert not setup.run_log.exists()


def test_run_takes_the_options_it_honours(setup, jobs_cli):
    done = jobs_cli("--no-cache", "--retry-lock", "1", "-q", "run", "home",
                    "--config", str(setup.config))
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (b"", b"")
    assert setup.run_log.exists()
