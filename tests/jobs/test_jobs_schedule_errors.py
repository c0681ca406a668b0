"""``schedule`` with a crontab that is not UTF-8, a crontab or unit folder that cannot be used,
and a ``FOGVAULT_SYSTEMCTL`` that cannot be split: other people's crontab lines are kept byte for
byte, and every failure is a one-line error with a documented exit code."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import AS_USER
from outputs import one_error_line

# Other people's lines: a Latin-1 comment, a byte that is no text at all, no final newline.
FOREIGN = b"# caf\xe9 au lait\nMAILTO=al\xffce\n5 * * * * echo \xe9t\xe9"


def test_a_crontab_that_is_not_utf8_is_listed_and_kept_byte_for_byte(setup, jobs_cli, tmp_path):
    crontab = tmp_path / "crontab"
    crontab.write_bytes(FOREIGN)
    setup.write('schedule = "30 2 * * *"\n')
    listed = jobs_cli("schedule", "list")
    assert (listed.returncode, listed.stdout) == (0, b"no scheduled jobs\n"), listed.stderr
    done = jobs_cli("schedule", "install", "home", "--backend", "cron",
                    "--config", str(setup.config))
    assert done.returncode == 0, done.stderr
    text = crontab.read_bytes()
    assert text.startswith(FOREIGN + b"\n# fogvault job: home (30 2 * * *)")
    listed = jobs_cli("schedule", "list", "--json")
    assert listed.returncode == 0 and b'"schedule": "30 2 * * *"' in listed.stdout, listed
    removed = jobs_cli("schedule", "remove", "home", "--backend", "cron")
    assert removed.returncode == 0, removed.stderr
    assert crontab.read_bytes() == FOREIGN + b"\n"


def test_the_crontab_command_gets_foreign_bytes_back_unchanged(setup, jobs_cli, tmp_path):
    """Without FOGVAULT_CRONTAB_FILE, through a real ``crontab`` program on PATH (a script
    keeping the table in a file, as cron's does in its spool)."""
    spool = tmp_path / "spool"
    spool.write_bytes(FOREIGN)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "crontab"
    program.write_text(f'#!/bin/sh\ncase "$1" in\n  -l) exec cat "{spool}" ;;\n'
                       f'  -) exec cat > "{spool}" ;;\nesac\nexit 1\n')
    program.chmod(0o755)
    setup.write('schedule = "daily"\n')
    env = {"FOGVAULT_CRONTAB_FILE": "", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = jobs_cli("schedule", "install", "home", "--backend", "cron",
                    "--config", str(setup.config), env=env)
    assert done.returncode == 0, done.stderr
    assert b"installed the crontab entry of job home (crontab)" in done.stdout
    assert spool.read_bytes().startswith(FOREIGN + b"\n# fogvault job: home (daily)")
    removed = jobs_cli("schedule", "remove", "home", "--backend", "cron", env=env)
    assert removed.returncode == 0, removed.stderr
    assert spool.read_bytes() == FOREIGN + b"\n"


def test_a_crontab_file_that_is_a_folder_is_a_one_line_error(setup, jobs_cli, tmp_path):
    folder = tmp_path / "cron.d"
    folder.mkdir()
    setup.write('schedule = "daily"\n')
    env = {"FOGVAULT_CRONTAB_FILE": str(folder)}
    for args in (["install", "home", "--backend", "cron", "--config", str(setup.config)],
                 ["list"], ["remove", "home", "--backend", "cron"]):
        done = jobs_cli("schedule", *args, env=env)
        assert done.returncode == 1, (args, done.stderr)
        assert one_error_line(done) == (f"error: cannot read the crontab file {folder} "
                                        "(FOGVAULT_CRONTAB_FILE): Is a directory")
    assert not list(folder.iterdir())


def test_a_crontab_file_that_cannot_be_written_is_a_one_line_error(setup, jobs_cli, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    crontab = folder / "crontab"
    setup.write('schedule = "daily"\n')
    done = jobs_cli("schedule", "install", "home", "--backend", "cron",
                    "--config", str(setup.config), env={"FOGVAULT_CRONTAB_FILE": str(crontab)},
                    wrap=AS_USER)
    assert done.returncode == 1
    assert one_error_line(done) == (f"error: cannot write the crontab file {crontab} "
                                    "(FOGVAULT_CRONTAB_FILE): Permission denied")
    assert not list(folder.iterdir())


def test_a_systemctl_command_that_cannot_be_split_is_a_usage_error_before_any_write(
        setup, jobs_cli, tmp_path):
    setup.write('schedule = "daily"\n')
    unit_dir = tmp_path / "xdg-config" / "systemd" / "user"
    env = {"FOGVAULT_SYSTEMCTL": '"unterminated'}
    done = jobs_cli("schedule", "install", "home", "--backend", "systemd",
                    "--config", str(setup.config), env=env)
    assert done.returncode == 2
    assert one_error_line(done) == ("error: FOGVAULT_SYSTEMCTL cannot be split into words: "
                                    "No closing quotation")
    assert not unit_dir.exists()  # nothing written
    installed = jobs_cli("schedule", "install", "home", "--backend", "systemd",
                         "--config", str(setup.config))
    assert installed.returncode == 0, installed.stderr
    removed = jobs_cli("schedule", "remove", "home", "--backend", "systemd", env=env)
    assert removed.returncode == 2 and "FOGVAULT_SYSTEMCTL" in one_error_line(removed)
    assert (unit_dir / "fogvault-home.timer").is_file()  # still there: nothing was disabled


def test_a_unit_folder_that_cannot_be_made_is_a_one_line_error(setup, jobs_cli, tmp_path):
    config_home = tmp_path / "not-a-folder"
    config_home.write_text("")
    setup.write('schedule = "daily"\n')
    done = jobs_cli("schedule", "install", "home", "--backend", "systemd",
                    "--config", str(setup.config), env={"XDG_CONFIG_HOME": str(config_home)})
    assert done.returncode == 1
    assert one_error_line(done) == (f"error: cannot write the units of job home in "
                                    f"{Path(config_home, 'systemd', 'user')}: Not a directory")
