"""A run log that cannot be read: ``status`` says so in one line (exit 1); a run notes it and
goes on as if the job had never run (prune and check are due), as it does for a log it cannot
write."""

from __future__ import annotations

from conftest import AS_USER
from outputs import one_error_line

from fogvault.jobs.runner import run_job

HINT = "([monitoring] run_log in the config, or XDG_STATE_HOME, moves it)"


def test_status_with_a_state_folder_that_is_a_file(setup, jobs_cli):
    state = setup.root / "state-file"
    state.write_text("")
    done = jobs_cli("status", "--config", str(setup.config), env={"XDG_STATE_HOME": str(state)})
    assert done.returncode == 1
    assert one_error_line(done) == (f"error: cannot read the run log {state}/fogvault/runs.jsonl:"
                                    f" Not a directory {HINT}")


def test_status_with_a_run_log_under_a_file(setup, jobs_cli):
    (setup.root / "file").write_text("")
    log = setup.root / "file" / "runs.jsonl"
    setup.write(top=f'[monitoring]\nrun_log = "{log}"\n')
    done = jobs_cli("status", "--config", str(setup.config))
    assert done.returncode == 1
    assert one_error_line(done) == (f"error: cannot read the run log {log}: Not a directory "
                                    f"{HINT}")


def test_status_with_a_run_log_it_may_not_read(setup, jobs_cli):
    assert run_job(setup.load(), "home").exit_code == 0
    setup.run_log.chmod(0o200)
    done = jobs_cli("status", "--config", str(setup.config), wrap=AS_USER)
    assert done.returncode == 1
    assert one_error_line(done) == (f"error: cannot read the run log {setup.run_log}: "
                                    f"Permission denied {HINT}")


def test_status_with_a_state_folder_it_may_not_write_works(setup, jobs_cli):
    assert run_job(setup.load(), "home").exit_code == 0
    setup.run_log.parent.chmod(0o555)
    try:
        done = jobs_cli("status", "--config", str(setup.config), wrap=AS_USER)
    finally:
        setup.run_log.parent.chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert b"success (0)" in done.stdout


def test_a_run_whose_run_log_cannot_be_read_notes_it_and_runs_every_step(setup):
    (setup.root / "file").write_text("")
    log = setup.root / "file" / "runs.jsonl"
    metrics = setup.root / "metrics.prom"
    setup.write('prune = "weekly"\ncheck = "weekly"\n',
                top=f'[monitoring]\nrun_log = "{log}"\nmetrics_file = "{metrics}"\n')
    for _ in range(2):  # never 'not due': nothing tells when they last ran
        record = run_job(setup.load(), "home")
        assert (record.result, record.exit_code) == ("success", 0), record
        assert record.steps["prune"].status == "done" and record.steps["check"].status == "done"
    assert record.messages == [
        f"cannot read the run log {log}: Not a directory {HINT}; the run goes on as if the job "
        "had never run",
        f"cannot write the run log {log}: {log.parent} is not a folder"]
    assert 'fogvault_job_last_exit_code{job="home"} 0' in metrics.read_text()
