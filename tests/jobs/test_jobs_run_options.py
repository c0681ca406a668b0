"""Common options that a job command cannot honour are usage errors (exit 2), before anything
runs. ``run`` and ``daemon``: the job's repository, password and min_targets come from the config
file, and a job writes, so it always locks the repository. ``schedule``, ``status`` and
``config`` open no repository, so every repository option is refused; -q, -v and --json apply."""

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


# ``schedule``, ``status`` and ``config`` open no repository: every repository option is refused.
NO_REPOSITORY = "it opens no repository"
WHERE = "[repositories.NAME] of the config file"
REFUSED_WITHOUT_REPOSITORY = [
    (["-r", "elsewhere"], f"-r/--repo: {NO_REPOSITORY}; a job's targets are the targets of "
                          f"{WHERE}"),
    (["--password-command", "echo x"], f"--password-file/--password-command: {NO_REPOSITORY}; "
                                       "a job's password comes from password_file, "
                                       f"password_command or password_env of {WHERE}"),
    (["--min-targets", "1"], f"--min-targets: {NO_REPOSITORY}; set min_targets in {WHERE}"),
    (["--no-lock"], f"--no-lock: {NO_REPOSITORY}, so it takes no lock"),
    (["--retry-lock", "0"], f"--retry-lock: {NO_REPOSITORY}, so it takes no lock"),
    (["--cache-dir", "cache"], f"--cache-dir: {NO_REPOSITORY}, so it uses no cache"),
    (["--no-cache"], f"--no-cache: {NO_REPOSITORY}, so it uses no cache"),
]
# Each command, and the arguments with which it would succeed (install writes the crontab).
NO_REPOSITORY_COMMANDS = {
    "schedule install": ["home", "--backend", "cron", "--config", "{config}"],
    "schedule list": [],
    "schedule remove": ["home"],
    "status": ["--config", "{config}"],
    "config check": ["--config", "{config}"],
    "config show": ["--config", "{config}"],
}
# every option once, on the commands in turn (so every command at least once), before the
# command or after it
REFUSED_CASES = [
    (options, message, list(NO_REPOSITORY_COMMANDS)[n % len(NO_REPOSITORY_COMMANDS)], n % 2 == 0)
    for n, (options, message) in enumerate(REFUSED_WITHOUT_REPOSITORY)
]


def _command(name: str, setup) -> list[str]:
    return [*name.split(), *(w.format(config=setup.config) for w in NO_REPOSITORY_COMMANDS[name])]


@pytest.mark.parametrize(("options", "message", "command", "before"), REFUSED_CASES,
                         ids=[f"{c} {o[0]}" for o, _m, c, _b in REFUSED_CASES])
def test_commands_without_a_repository_refuse_its_options(setup, jobs_cli, tmp_path, options,
                                                          message, command, before):
    setup.write('schedule = "30 2 * * *"\n')
    args = _command(command, setup)
    done = jobs_cli(*(options + args if before else args + options))
    option, why = message.split(": ", 1)
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode().splitlines() == [
        f"error: {option} cannot be used with 'fogvault {command}': {why}"]
    assert done.stdout == b""
    assert not (tmp_path / "crontab").exists()  # schedule install wrote nothing


@pytest.mark.parametrize("command", NO_REPOSITORY_COMMANDS)
def test_commands_without_a_repository_take_the_options_that_apply(setup, jobs_cli, command):
    setup.write('schedule = "30 2 * * *"\n')
    if command == "schedule remove":  # something to remove
        assert jobs_cli(*_command("schedule install", setup)).returncode == 0
    done = jobs_cli("-v", *_command(command, setup), "--json", "-q")
    assert done.returncode == 0, done.stderr
    assert b"cannot be used" not in done.stderr
