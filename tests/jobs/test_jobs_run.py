"""``run JOB`` on a real local repository: steps, run log, metrics, hooks, pings, exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import AS_USER
from polling import wait_until

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import LockError
from fogvault.jobs.joblock import JobLock, JobRunning
from fogvault.jobs.runner import RunOptions, run_job, summary_lines
from fogvault.jobs.status import RunLog, RunRecord, StepResult, lock_dir, metrics_text
from fogvault.repo.repository import Repository
from fogvault.repo.tree import FILE
from fogvault.treewalk import walk


def _snapshots(setup, password: str) -> list:
    with Repository.open([str(setup.root / "repo")], password.encode(), use_cache=False) as repo:
        return repo.snapshots()


def _log(setup) -> list[dict]:
    return [json.loads(line) for line in setup.run_log.read_text().splitlines()]


def test_run_backs_up_forgets_prunes_checks_and_logs(setup, cli_env):
    setup.write('prune = "always"\ncheck = "always"\ncheck_read_data_subset = "1/1"\n'
                "[jobs.home.retention]\nkeep_last = 1\n",
                top=f'[monitoring]\nmetrics_file = "{setup.root}/metrics/fogvault.prom"\n')
    config = setup.load()
    first = run_job(config, "home")
    assert (first.result, first.exit_code) == ("success", 0), first.error
    (setup.src / "b.bin").write_bytes(os.urandom(200_000))  # the old data is now unused
    second = run_job(config, "home")
    assert (second.result, second.exit_code) == ("success", 0), second.error

    steps = {name: step.status for name, step in second.steps.items()}
    assert steps == {"backup": "done", "forget": "done", "prune": "done", "check": "done",
                     "repair": "skipped"}
    assert "removed 1 of 2 snapshots" in second.steps["forget"].detail
    assert not second.steps["prune"].detail.startswith("deleted 0 and repacked 0")
    assert [s.uid for s in _snapshots(setup, cli_env["FOGVAULT_PASSWORD"])] == [second.snapshot]

    log = _log(setup)
    assert [r["snapshot"] for r in log] == [first.snapshot, second.snapshot]
    assert log[1]["result"] == "success" and log[1]["bytes_added"] > 100_000
    assert log[1]["steps"]["prune"]["at"] and log[1]["duration_s"] > 0
    metrics = (setup.root / "metrics" / "fogvault.prom").read_text()
    assert 'fogvault_job_last_success{job="home"} 1' in metrics
    assert 'fogvault_job_last_exit_code{job="home"} 0' in metrics
    assert "# TYPE fogvault_job_last_success_timestamp_seconds gauge" in metrics


def test_prune_and_check_run_only_when_due(setup):
    setup.write('prune = "weekly"\ncheck = "monthly"\n')
    config = setup.load()
    first = run_job(config, "home")
    assert first.steps["prune"].status == "done" and first.steps["check"].status == "done"
    second = run_job(config, "home")
    assert second.steps["prune"].status == "not due"
    assert second.steps["check"].status == "not due"
    assert "(weekly)" in second.steps["prune"].detail
    assert second.steps["forget"].status == "skipped"  # no retention


def test_a_step_logged_in_the_future_runs_once_then_keeps_its_schedule(setup):
    """The clock was set back after a prune and a check: the records from "the future" cannot
    be trusted, so both run now (before, "weekly" waited until the clock passed the logged
    time, a year); the next run's true record then puts the weekly check back on schedule."""
    future = datetime.now().astimezone() + timedelta(days=365)
    RunLog(setup.run_log).append(RunRecord("home", future, future, "success", steps={
        "prune": StepResult("done", at=future.isoformat()),
        "check": StepResult("done", at=future.isoformat())}))
    setup.write('prune = "always"\ncheck = "weekly"\n')
    record = run_job(setup.load(), "home")
    assert record.steps["prune"].status == "done"
    assert record.steps["check"].status == "done"
    again = run_job(setup.load(), "home")
    assert again.steps["check"].status == "not due"


def test_cli_run_json_and_status(setup, jobs_cli):
    setup.write('schedule = "daily"\n[jobs.home.retention]\nkeep_daily = 7\n')
    done = jobs_cli("run", "home", "--config", str(setup.config), "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["result"] == "success" and len(record["snapshot"]) == 16
    status = jobs_cli("status", "--json", "--config", str(setup.config))
    assert status.returncode == 0, status.stderr
    (row,) = json.loads(status.stdout)
    assert row["last_run"]["snapshot"] == record["snapshot"]
    assert row["last_run"]["result"] == "success" and row["schedule"] == "daily"
    assert row["next_run"] and row["targets_behind"] == []
    table = jobs_cli("status", "--config", str(setup.config))
    assert b"success (0)" in table.stdout and record["snapshot"].encode() in table.stdout


def test_failing_before_hook_aborts_with_exit_20(setup, jobs_cli, cli_env):
    marks = setup.root / "marks"
    setup.write(f'[jobs.home.hooks]\nbefore = ["echo before >> {marks}", "exit 7"]\n'
                f'after = "echo after >> {marks}"\n'
                f'on_failure = "echo $FOGVAULT_EXIT_CODE $FOGVAULT_ERROR >> {marks}"\n')
    done = jobs_cli("run", "home", "--config", str(setup.config))
    assert done.returncode == 20
    assert "before hook 'exit 7' exited with status 7" in done.stderr.decode()
    assert marks.read_text().splitlines() == [
        "before", "20 before hook 'exit 7' exited with status 7"]
    assert _snapshots(setup, cli_env["FOGVAULT_PASSWORD"]) == []
    (record,) = _log(setup)
    assert (record["result"], record["exit_code"]) == ("failed", 20)
    assert record["steps"]["before"]["status"] == "failed" and "backup" not in record["steps"]


def test_hooks_run_in_the_config_folder_and_are_told_how_the_run_went(setup, jobs_cli, tmp_path):
    """A partial run (a missing path): the after hook got FOGVAULT_EXIT_CODE=0 beside
    FOGVAULT_RESULT=partial, and the before hook a result before anything had happened; hooks
    ran in whatever folder the run was started from (cron: home), not where ./script is."""
    show = ('echo "$(pwd) [$FOGVAULT_JOB] [${FOGVAULT_RESULT-unset}] '
            '[${FOGVAULT_EXIT_CODE-unset}]" >> marks')
    setup.write(f"[jobs.home.hooks]\nbefore = '{show}'\nafter = '{show}'\n",
                paths='["src", "missing"]')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = jobs_cli("run", "home", "--config", str(setup.config), cwd=elsewhere)
    assert done.returncode == 3, done.stderr
    assert (setup.root / "marks").read_text().splitlines() == [
        f"{setup.root} [home] [unset] [unset]", f"{setup.root} [home] [partial] [3]"]


def test_a_job_renamed_in_the_config_leaves_the_metrics(setup):
    """Its last success kept growing older, and the documented alert fired for a job that no
    longer exists."""
    metrics = setup.root / "metrics.prom"
    top = f'[monitoring]\nmetrics_file = "{metrics}"\n'
    setup.write(top=top)
    assert run_job(setup.load(), "home").exit_code == 0
    setup.write(top=top)
    setup.config.write_text(setup.config.read_text().replace("[jobs.home]", "[jobs.house]"))
    assert run_job(setup.load(), "house").exit_code == 0
    text = metrics.read_text()
    assert 'job="house"' in text and 'job="home"' not in text


def test_a_run_that_saved_a_snapshot_is_a_success_in_the_metrics_even_if_it_failed(setup):
    """An after hook fails: the run fails (exit 20), but the metrics say a snapshot was saved."""
    metrics = setup.root / "metrics.prom"
    setup.write('[jobs.home.hooks]\nafter = "false"\n',
                top=f'[monitoring]\nmetrics_file = "{metrics}"\n')
    record = run_job(setup.load(), "home")
    assert (record.result, record.exit_code) == ("failed", 20) and record.snapshot
    text = metrics.read_text()
    assert 'fogvault_job_last_success{job="home"} 1' in text
    assert 'fogvault_job_last_exit_code{job="home"} 20' in text
    started = round(record.started.timestamp(), 3)
    assert f'fogvault_job_last_success_timestamp_seconds{{job="home"}} {started}' in text


def test_pings_reach_a_real_http_server(setup, ping_server):
    setup.write(f'[jobs.home.hooks]\nping_url = "{ping_server.url()}"\n')
    ok = run_job(setup.load(), "home")
    assert ok.exit_code == 0
    assert ping_server.paths() == ["/ping/abc/start", "/ping/abc"]
    assert all(method == "POST" for method, _path, _body in ping_server.requests)
    assert "job home: success" in ping_server.requests[1][2]

    ping_server.requests.clear()
    setup.write(f'[jobs.home.hooks]\nping_url = "{ping_server.url()}"\nbefore = "false"\n')
    failed = run_job(setup.load(), "home")
    assert failed.exit_code == 20
    assert ping_server.paths() == ["/ping/abc/start", "/ping/abc/fail"]
    assert "before hook 'false' exited with status 1" in ping_server.requests[1][2]


def test_explicit_ping_urls_and_a_failing_ping_does_not_fail_the_job(setup, ping_server):
    ping_server.status = 500
    setup.write(f'[jobs.home.hooks]\nping_start = "{ping_server.url("/s")}"\n'
                f'ping_success = "{ping_server.url("/ok")}"\n'
                f'ping_failure = "{ping_server.url("/bad")}"\n')
    record = run_job(setup.load(), "home")
    assert (record.result, record.exit_code) == ("success", 0)
    assert ping_server.paths() == ["/s", "/ok"]  # an HTTP error is not retried
    assert record.messages == [f"start ping to http://127.0.0.1:{ping_server.port} failed: "
                               "HTTP 500",
                               f"success ping to http://127.0.0.1:{ping_server.port} failed: "
                               "HTTP 500"]


def test_unreachable_ping_is_a_note(setup):
    setup.write('[jobs.home.hooks]\nping_url = "http://127.0.0.1:9/x"\nping_timeout = 2\n')
    record = run_job(setup.load(), "home")
    assert record.exit_code == 0
    assert record.messages[0].startswith("start ping to http://127.0.0.1:9 failed")


@pytest.fixture
def not_http_server() -> Iterator[str]:
    """A real TCP server on 127.0.0.1 that answers every connection with a line that is not
    HTTP (as an SSH or SMTP server would); yields its URL."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):  # closed at the end of the test
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/ping"
    server.close()


def test_a_server_answering_not_in_http_is_a_failed_ping_not_a_failed_job(setup, not_http_server):
    setup.write(f'[jobs.home.hooks]\nping_url = "{not_http_server}"\n')
    record = run_job(setup.load(), "home")
    assert (record.result, record.exit_code) == ("success", 0), record.error
    server = not_http_server.removesuffix("/ping")
    assert record.messages == [f"{event} ping to {server} failed: not an HTTP answer "
                               "(BadStatusLine)" for event in ("start", "success")]


def test_no_repository_exits_10_and_init_creates_it(setup, jobs_cli):
    setup.write(targets='["new-repo"]')
    done = jobs_cli("run", "home", "--config", str(setup.config))
    assert done.returncode == 10
    assert "fogvault run home --init" in done.stderr.decode()
    assert not (setup.root / "new-repo" / "config").exists()
    created = jobs_cli("run", "home", "--init", "--config", str(setup.config))
    assert created.returncode == 0, created.stderr
    assert b"note: created repository" in created.stdout
    assert (setup.root / "new-repo" / "config").is_file()


def test_a_dry_run_with_init_says_it_creates_nothing(setup, jobs_cli):
    """'--init --dry-run' creates no repository: the error must not tell the user to add the
    '--init' they gave, but to run it without --dry-run."""
    setup.write(targets='["new-repo"]')
    done = jobs_cli("run", "home", "--init", "--dry-run", "--config", str(setup.config))
    assert done.returncode == 10
    error = done.stderr.decode()
    assert "a dry run creates none" in error and "without --dry-run" in error, error
    assert not (setup.root / "new-repo").exists()


def test_a_target_missing_its_copy_is_named_and_init_is_not_suggested(tmp_path, setup, jobs_cli):
    """Of two targets, the second (a USB disk not mounted) holds nothing: the error is the
    core's, naming it; '--init' would be wrong, the first target holds the repository."""
    from conftest import FAST_KDF, PASSWORD

    Repository.init([str(tmp_path / "a")], PASSWORD, kdf=FAST_KDF, use_cache=False).close()
    setup.write(targets='["a", "usb/fogvault"]')
    for init in ([], ["--init"]):
        done = jobs_cli("run", "home", "--config", str(setup.config), *init)
        assert done.returncode == 10
        error = done.stderr.decode()
        assert f"{tmp_path}/usb/fogvault: no repository there" in error and "--init" not in error
    assert not (tmp_path / "usb").exists()


def test_two_runs_of_one_job_never_overlap(setup, jobs_cli):
    with JobLock(lock_dir(), "home"):
        busy = jobs_cli("run", "home", "--config", str(setup.config))
        assert busy.returncode == 11
        assert "job home is already running (pid" in busy.stderr.decode()
        with pytest.raises(JobRunning):
            run_job(setup.load(), "home")
    assert not setup.run_log.exists()  # a skipped run is not a run
    assert run_job(setup.load(), "home").exit_code == 0


def test_a_scheduled_run_that_finds_its_job_running_is_skipped_silently(setup, jobs_cli):
    """Scheduled runs pass --skip-if-running: cron mailed each such skip (exit 11 on stderr),
    and a systemd unit would be marked failed, where nothing went wrong."""
    with JobLock(lock_dir(), "home"):
        quiet = jobs_cli("run", "home", "--skip-if-running", "--config", str(setup.config), "-q")
        assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, b"", b"")
        said = jobs_cli("run", "home", "--skip-if-running", "--config", str(setup.config))
        assert said.returncode == 0 and said.stderr == b""
        assert said.stdout.decode().startswith("job home is already running (pid ")
        as_json = jobs_cli("run", "home", "--skip-if-running", "--config", str(setup.config),
                           "--json")
        assert as_json.returncode == 0
        assert json.loads(as_json.stdout)["skipped"].startswith("job home is already running")
    assert not setup.run_log.exists()
    done = jobs_cli("run", "home", "--skip-if-running", "--config", str(setup.config), "-q")
    assert done.returncode == 0 and setup.run_log.exists()  # not running: a real run


def test_lock_of_a_killed_run_is_not_stale(setup, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from fogvault.jobs.joblock import JobLock\n"
         f"with JobLock(Path({str(lock_dir())!r}), 'home'):\n"
         "    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(JobRunning):
            run_job(setup.load(), "home")
    finally:
        holder.kill()
        holder.wait()
    assert run_job(setup.load(), "home").exit_code == 0


def test_dry_run_changes_nothing(setup, cli_env, jobs_cli):
    marks = setup.root / "marks"
    run_job(setup.load(), "home", RunOptions())
    run_job(setup.load(), "home", RunOptions())
    setup.write(f'prune = "always"\n[jobs.home.retention]\nkeep_last = 1\n'
                f'[jobs.home.hooks]\nbefore = "echo ran >> {marks}"\n')
    before = [s.uid for s in _snapshots(setup, cli_env["FOGVAULT_PASSWORD"])]
    done = jobs_cli("run", "home", "--dry-run", "--config", str(setup.config))
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "(dry run)" in out and "would remove 1 of 2 snapshots" in out
    assert "prune:      would run" in out
    assert [s.uid for s in _snapshots(setup, cli_env["FOGVAULT_PASSWORD"])] == before
    assert not marks.exists() and len(_log(setup)) == 2


def test_unreadable_file_makes_a_partial_run(setup, jobs_cli):
    """Through the CLI, as a user that file modes apply to."""
    secret = setup.src / "secret.txt"
    secret.write_text("x")
    secret.chmod(0)
    try:
        done = jobs_cli("run", "home", "--config", str(setup.config), wrap=AS_USER)
    finally:
        secret.chmod(0o600)
    assert done.returncode == 3, done.stderr
    [record] = RunLog(setup.run_log).records("home")
    assert (record.result, record.exit_code, record.errors) == ("partial", 3, 1)


def test_a_run_with_a_missing_path_never_costs_the_snapshots_that_hold_it(setup, cli_env):
    """A disk that is sometimes absent: the run backs up the rest (partial, exit 3), and its
    snapshot lists only the paths it holds, so the job's retention (over the job's snapshots
    of all its paths) cannot forget the last snapshot that holds the disk."""
    setup.write('prune = "always"\n[jobs.home.retention]\nkeep_last = 1\n',
                paths='["src", "usb"]')
    (setup.root / "usb").mkdir()
    (setup.root / "usb" / "photo").write_bytes(b"only here" * 1000)
    config = setup.load()
    full = run_job(config, "home")
    assert (full.result, full.exit_code) == ("success", 0), full.error
    (setup.root / "usb").rename(setup.root / "usb.away")
    partial = run_job(config, "home")
    assert (partial.result, partial.exit_code, partial.errors) == ("partial", 3, 1)
    assert any("usb: cannot back up: No such file" in m for m in partial.messages)
    assert "removed 0 of 1 snapshot" in partial.steps["forget"].detail
    kept = {s.uid: s for s in _snapshots(setup, cli_env["FOGVAULT_PASSWORD"])}
    assert set(kept) == {full.snapshot, partial.snapshot}
    assert kept[partial.snapshot].paths == [str(setup.root / "src")]
    (setup.root / "usb.away").rename(setup.root / "usb")
    again = run_job(config, "home")
    assert (again.result, again.exit_code) == ("success", 0), again.error
    assert "removed 1 of 2 snapshots" in again.steps["forget"].detail
    kept = {s.uid: s for s in _snapshots(setup, cli_env["FOGVAULT_PASSWORD"])}
    assert set(kept) == {partial.snapshot, again.snapshot}
    assert kept[again.snapshot].parent == full.snapshot


def test_a_pattern_in_borgs_syntax_is_noted_and_the_run_succeeds(setup):
    setup.write('exclude = ["re:\\\\.bin$"]\n')
    record = run_job(setup.load(), "home")
    assert (record.result, record.exit_code) == ("success", 0), record.error
    assert any(m.startswith("pattern 're:\\.bin$' is matched literally: FogVault has no "
                            "regular expressions") for m in record.messages)


def test_iexclude_and_exclude_larger_than_apply_to_the_jobs_backup(setup, cli_env):
    (setup.src / "docs" / "B.TMP").write_text("scratch")
    setup.write('iexclude = ["*.tmp"]\nexclude_larger_than = "100K"\n')
    record = run_job(setup.load(), "home")
    assert (record.result, record.exit_code) == ("success", 0), record.error
    with Repository.open([str(setup.root / "repo")], cli_env["FOGVAULT_PASSWORD"].encode(),
                         use_cache=False) as repo:
        [snap] = repo.snapshots()
        files = {path.rpartition(b"/")[2] for path, node in walk(repo, snap.tree)
                 if node.type == FILE}
    assert files == {b"a.txt"}  # b.bin (200 kB) and B.TMP are left out


def test_unknown_job_exits_2_with_a_hint(setup, jobs_cli):
    done = jobs_cli("run", "hom", "--config", str(setup.config))
    assert done.returncode == 2
    assert "did you mean 'home'?" in done.stderr.decode()


def test_run_log_survives_garbage_lines(setup):
    run_job(setup.load(), "home")
    with setup.run_log.open("a") as f:
        f.write("not json\n{\"job\": 1}\n")
    run_job(setup.load(), "home")
    records = RunLog(setup.run_log).records("home")
    assert len(records) == 2 and all(r.result == "success" for r in records)
    assert time.time() - records[-1].started.timestamp() < 120


def test_run_log_records_with_times_that_cannot_be_compared_are_skipped(setup, jobs_cli):
    """Valid JSON, bad times: a step's "at" of 'yesterday' failed every later run at its prune
    step; a start without a UTC offset failed status, and the daemon's start."""
    setup.write('prune = "daily"\nschedule = "daily"\n')
    assert run_job(setup.load(), "home").exit_code == 0
    good = json.loads(setup.run_log.read_text())
    bad_step = {**good, "steps": {**good["steps"], "prune": {"status": "done", "at": "yesterday"}}}
    naive = {**good, "started": good["started"][:19], "finished": None}
    with setup.run_log.open("a") as f:
        f.write(json.dumps(bad_step) + "\n" + json.dumps(naive) + "\n")
    assert [r.started for r in RunLog(setup.run_log).records()] == [
        datetime.fromisoformat(good["started"])]
    again = run_job(setup.load(), "home")
    assert again.exit_code == 0 and again.steps["prune"].status == "not due", again
    status = jobs_cli("status", "--config", str(setup.config))
    assert status.returncode == 0, status.stderr


def test_a_short_write_leaves_a_torn_line_that_later_records_do_not_join(setup):
    """A process whose file size limit stops its append half way (as a full disk does) is told
    so; the next run's record starts a line of its own, and both whole records are read."""
    first = run_job(setup.load(), "home")
    limit = setup.run_log.stat().st_size + 100
    torn = subprocess.run([sys.executable, "-c", (
        "import resource, signal\n"
        "from datetime import datetime\n"
        "from pathlib import Path\n"
        "from fogvault.jobs.status import RunLog, RunRecord\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit: a short write\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        "record = RunRecord('home', datetime.now().astimezone(), messages=['x' * 1000])\n"
        f"RunLog(Path({str(setup.run_log)!r})).append(record)\n")],
        capture_output=True, text=True, check=False)
    assert torn.returncode == 1
    assert torn.stderr.rstrip().endswith("were written (is the file system full?)")
    assert setup.run_log.stat().st_size == limit
    last = run_job(setup.load(), "home")
    assert [r.started for r in RunLog(setup.run_log).records("home")] == [first.started,
                                                                          last.started]


@pytest.mark.parametrize(("min_targets", "exit_code"), [(1, 3), (2, 1)])
def test_min_targets_from_the_config_decides_the_commit(tmp_path, setup, min_targets, exit_code):
    """Two targets, one of which refuses every pack (its data/ is a file): with min_targets 1
    the run commits to the healthy one and exits 3; with 2 it writes no snapshot, exit 1."""
    from conftest import FAST_KDF, PASSWORD

    Repository.init([str(tmp_path / "a"), str(tmp_path / "b")], PASSWORD, kdf=FAST_KDF,
                    use_cache=False).close()
    (tmp_path / "b" / "data").write_text("not a folder")
    setup.write(repo=f"min_targets = {min_targets}", targets='["a", "b"]')
    record = run_job(setup.load(), "home")
    assert record.exit_code == exit_code, record
    opened = Repository.open([str(tmp_path / "a")], PASSWORD, use_cache=False)
    assert len(opened.snapshots()) == (1 if min_targets == 1 else 0)
    if min_targets == 2:  # the error's hint names --min-targets: the note names the key
        assert "in a job, min_targets of [repositories.local] sets how many targets a backup " \
               "must reach" in record.messages


def test_a_new_empty_target_is_explained_in_the_job_s_terms(tmp_path, setup):
    """Exit 10 names the command-line option to go on without the target, which run refuses:
    the note names the config key."""
    (tmp_path / "new").mkdir()
    setup.write(targets='["repo", "new"]')
    record = run_job(setup.load(), "home")
    assert record.exit_code == 10 and "give --min-targets 1" in record.error, record
    assert "in a job, min_targets of [repositories.local] sets how many targets a backup " \
           "must reach" in record.messages


def test_repair_step_brings_a_behind_target_up_to_date(tmp_path, setup):
    """The second target is missing for the backup (k = 1 commits without it); once it is back,
    the next run's repair step copies everything it missed."""
    from conftest import FAST_KDF, PASSWORD

    Repository.init([str(tmp_path / "a"), str(tmp_path / "b")], PASSWORD, kdf=FAST_KDF,
                    use_cache=False).close()
    (tmp_path / "b" / "data").write_text("not a folder")
    metrics = tmp_path / "metrics.prom"
    setup.write(repo="min_targets = 1", targets='["a", "b"]',
                top=f'[monitoring]\nmetrics_file = "{metrics}"\n')
    first = run_job(setup.load(), "home")
    assert first.exit_code == 3 and first.targets_behind == [str(tmp_path / "b")]
    assert first.errors == 0  # a target behind is not an unreadable file
    assert first.steps["backup"].detail.endswith("; 1 target behind")
    assert "unreadable" not in first.steps["backup"].detail
    assert 'fogvault_job_last_errors{job="home"} 0' in metrics.read_text()
    assert 'fogvault_job_last_targets_behind{job="home"} 1' in metrics.read_text()
    (tmp_path / "b" / "data").unlink()  # the target is healthy again
    second = run_job(setup.load(), "home")
    assert second.exit_code == 0, second
    assert second.steps["repair"].status == "done"
    assert 'fogvault_job_last_targets_behind{job="home"} 0' in metrics.read_text()
    both = Repository.open([str(tmp_path / "b")], PASSWORD, use_cache=False)
    assert len(both.snapshots()) == 2


def test_retention_finds_the_snapshots_of_a_path_with_a_symlinked_parent(setup, cli_env):
    """The backup records ``link/src`` as ``src`` (parent symlinks resolved) and a path listed
    twice once: forget must match the paths as recorded, or it never removes anything."""
    (setup.root / "link").symlink_to(setup.root)
    setup.write("[jobs.home.retention]\nkeep_last = 1\n", paths='["link/src", "src", "link/src/"]')
    config = setup.load()
    run_job(config, "home")
    second = run_job(config, "home")
    assert second.exit_code == 0, second.error
    assert second.steps["forget"].detail.startswith("removed 1 of 2 snapshots")
    assert [s.uid for s in _snapshots(setup, cli_env["FOGVAULT_PASSWORD"])] == [second.snapshot]


def test_retention_never_removes_the_snapshot_the_run_saved(setup, cli_env):
    """Snapshots dated ahead (a clock that was a day ahead when they were taken): keep_last = 2
    kept those two and removed the snapshot each run had just saved, reporting success."""
    setup.write("[jobs.home.retention]\nkeep_last = 2\n")
    tomorrow = datetime.now().astimezone() + timedelta(days=1)
    with Repository.open([str(setup.root / "repo")], cli_env["FOGVAULT_PASSWORD"].encode(),
                         use_cache=False) as repo:
        ahead = [Archiver(repo, BackupOptions(time=tomorrow + timedelta(minutes=n))).run(
            [str(setup.src)]).snapshot.uid for n in range(2)]
    record = run_job(setup.load(), "home")
    assert record.exit_code == 0, record.error
    assert record.steps["forget"].detail.startswith("removed 0 of 3 snapshots")
    assert record.messages == [
        f"the retention policy would remove snapshot {record.snapshot}, which this run saved: "
        "snapshots of this job are dated after it (a clock that was ahead?); it is kept"]
    assert sorted(s.uid for s in _snapshots(setup, cli_env["FOGVAULT_PASSWORD"])) == sorted(
        [*ahead, record.snapshot])


def test_a_run_log_that_cannot_be_written_is_a_note_not_a_failure(setup, jobs_cli):
    metrics = setup.root / "metrics.prom"
    setup.write(top=f'[monitoring]\nmetrics_file = "{metrics}"\n')
    assert jobs_cli("run", "home", "--config", str(setup.config)).returncode == 0
    with _unwritable_run_log(setup):
        done = jobs_cli("run", "home", "--config", str(setup.config), "--json", wrap=AS_USER)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["result"] == "success" and record["snapshot"]
    assert record["messages"] == [f"cannot write the run log {setup.run_log}: Permission denied"]
    assert len(RunLog(setup.run_log).records()) == 1
    started = datetime.fromisoformat(record["started"]).timestamp()
    assert f'fogvault_job_last_run_timestamp_seconds{{job="home"}} {round(started, 3)}' in (
        metrics.read_text())


def test_the_summary_has_a_space_between_each_step_and_its_status():
    """'on_failure', the longest step name, ran into its status ('on_failure:skipped')."""
    record = RunRecord(job="home", started=datetime.now().astimezone(),
                       steps={"backup": StepResult("done"),
                              "on_failure": StepResult("skipped", "dry run")})
    assert summary_lines(record)[1:] == ["  backup:     done", "  on_failure: skipped: dry run"]


def test_quiet_runs_say_nothing_but_their_notes(setup, jobs_cli):
    """``-q`` (cron) silences a successful run's summary, not a note about what failed."""
    quiet = jobs_cli("-q", "run", "home", "--config", str(setup.config))
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, b"", b"")
    with _unwritable_run_log(setup):
        noted = jobs_cli("-q", "run", "home", "--config", str(setup.config), wrap=AS_USER)
    assert (noted.returncode, noted.stdout) == (0, b""), noted.stderr
    assert noted.stderr.decode().splitlines() == [
        f"note: cannot write the run log {setup.run_log}: Permission denied"]


@contextlib.contextmanager
def _unwritable_run_log(setup) -> Iterator[None]:
    setup.run_log.chmod(0o444)
    setup.run_log.parent.chmod(0o555)
    try:
        yield
    finally:
        setup.run_log.parent.chmod(0o755)
        setup.run_log.chmod(0o600)


def test_a_state_folder_that_cannot_be_written_is_a_one_line_error(setup, jobs_cli):
    state = setup.root / "read-only-state"
    state.mkdir(mode=0o555)
    done = jobs_cli("run", "home", "--config", str(setup.config),
                    env={"XDG_STATE_HOME": str(state)}, wrap=AS_USER)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        f"error: cannot lock job home at {state}/fogvault/locks/home.lock: Permission denied "
        "(the run did not start; the user state folder must be writable and local; "
        "XDG_STATE_HOME moves it)"]


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_a_hook_that_times_out_is_stopped_with_what_it_started(setup):
    pid_file = setup.root / "pid"
    setup.write(f'[jobs.home.hooks]\ntimeout = 1\n'
                f'before = "sleep 300 & echo $! > {pid_file}; wait"\n')
    record = run_job(setup.load(), "home")
    assert record.exit_code == 20 and "timed out after 1 s" in (record.error or "")
    assert not _running(int(pid_file.read_text()))


@pytest.mark.parametrize("hooks", [
    'before = "sleep 300 & echo child $!; wait"',
    # the record of a run interrupted in on_failure said failed (20), without the hook's time
    'before = "exit 7"\non_failure = "sleep 300 & echo child $!; wait"'])
def test_sigterm_during_a_hook_stops_the_hook_and_what_it_started(setup, cli_env, hooks):
    setup.write(f"[jobs.home.hooks]\n{hooks}\n")
    run = subprocess.Popen([sys.executable, "-m", "fogvault", "run", "home", "--config",
                            str(setup.config)], env=cli_env, cwd=setup.root,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert run.stderr is not None
    line = run.stderr.readline()  # the hook's output goes to our stderr
    run.send_signal(signal.SIGTERM)
    _out, err = run.communicate(timeout=60)
    assert line.startswith("child "), line + err
    assert run.returncode == 130, err
    assert not _running(int(line.split()[1]))
    (record,) = RunLog(setup.run_log).records("home")
    assert (record.result, record.exit_code) == ("interrupted", 130)


def test_a_second_sigterm_while_a_hook_is_being_stopped_still_stops_it(setup, cli_env):
    """The hook ignores SIGTERM, so fogvault waits out the grace period before SIGKILL; a
    second SIGTERM during that wait used to end fogvault there, leaving the hook running."""
    marker = setup.root / "got-term"
    setup.write('[jobs.home.hooks]\nbefore = "trap \'echo term > ' + str(marker)
                + '\' TERM; echo pid $$; while :; do sleep 0.1; done"\n')
    run = subprocess.Popen([sys.executable, "-m", "fogvault", "run", "home", "--config",
                            str(setup.config)], env=cli_env, cwd=setup.root,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert run.stderr is not None
    line = run.stderr.readline()  # the hook is running
    run.send_signal(signal.SIGTERM)
    wait_until(marker.exists, "fogvault stopping the hook", 30)
    run.send_signal(signal.SIGTERM)
    _out, err = run.communicate(timeout=60)
    assert line.startswith("pid "), line + err
    assert marker.exists() and run.returncode == 130, err
    assert not _running(int(line.split()[1]))


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_check_that_finds_damage_lets_the_repair_step_heal_it_then_fails_the_run(
        tmp_path, setup):
    """A pack damaged on one of two targets: the check finds it (exit 21, reported), and the
    repair step still runs and replaces the copy from the healthy target, so the next run's
    check passes."""
    from conftest import FAST_KDF, PASSWORD

    Repository.init([str(tmp_path / "a"), str(tmp_path / "b")], PASSWORD, kdf=FAST_KDF,
                    use_cache=False).close()
    setup.write('check = "always"\ncheck_read_data_subset = "1/1"\n', targets='["a", "b"]')
    assert run_job(setup.load(), "home").exit_code == 0
    damaged = next(p for p in sorted((tmp_path / "b" / "data").rglob("*")) if p.is_file())
    _flip_a_byte(damaged)

    record = run_job(setup.load(), "home")
    assert (record.result, record.exit_code) == ("failed", 21), record
    assert record.steps["check"].status == "failed"
    assert record.error.startswith("check found 1 problem: ")
    assert "0 missing, 0 wrong size, 1 corrupt" in record.error
    assert record.steps["repair"].status == "done", record.steps["repair"]
    assert damaged.read_bytes() == (tmp_path / "a" / damaged.relative_to(tmp_path / "b")
                                    ).read_bytes()
    again = run_job(setup.load(), "home")
    assert (again.exit_code, again.steps["check"].status) == (0, "done"), again


@pytest.mark.parametrize("error", [LockError("another process holds the exclusive lock"),
                                   OSError(28, "No space left on device")])
def test_a_repair_that_fails_after_a_failed_check_is_a_note(tmp_path, setup, monkeypatch,
                                                             error):
    """The check's failure stays the run's headline (exit 21), whatever the repair raised."""
    from conftest import FAST_KDF, PASSWORD

    Repository.init([str(tmp_path / "a"), str(tmp_path / "b")], PASSWORD, kdf=FAST_KDF,
                    use_cache=False).close()
    setup.write('check = "always"\ncheck_read_data_subset = "1/1"\n', targets='["a", "b"]')
    assert run_job(setup.load(), "home").exit_code == 0
    _flip_a_byte(next(p for p in sorted((tmp_path / "b" / "data").rglob("*")) if p.is_file()))

    def failing_repair(*args: object, **kwargs: object) -> None:  # the fault injected
        raise error

    monkeypatch.setattr("fogvault.jobs.runner.repair", failing_repair)
    record = run_job(setup.load(), "home")
    assert (record.exit_code, record.steps["repair"].status) == (21, "failed"), record
    assert record.error.startswith("check found 1 problem: ")
    assert any(m.startswith("repair failed: ") and str(error.args[-1]) in m
               for m in record.messages), record.messages


def test_a_check_that_finds_damage_on_the_only_target_fails_the_run(setup):
    setup.write('check = "always"\ncheck_read_data_subset = "1/1"\n')
    assert run_job(setup.load(), "home").exit_code == 0
    _flip_a_byte(next(p for p in sorted((setup.root / "repo" / "data").rglob("*"))
                      if p.is_file()))
    record = run_job(setup.load(), "home")
    assert (record.result, record.exit_code) == ("failed", 21), record
    assert record.steps["repair"].status == "skipped"


def test_skip_if_unchanged_saves_no_snapshot_until_something_changes(setup, cli_env,
                                                                     trust_recent_entries):
    setup.write('skip_if_unchanged = true\nretention = { keep_last = 5 }\n')
    first = run_job(setup.load(), "home")
    assert (first.result, first.exit_code) == ("success", 0), first.error
    second = run_job(setup.load(), "home")
    assert (second.result, second.exit_code, second.snapshot) == ("success", 0, None)
    assert second.steps["backup"].detail.startswith(
        f"unchanged since snapshot {first.snapshot}, none saved: 0 new, 0 changed")
    assert second.steps["forget"].status == "done"  # retention still applies
    assert second.unchanged_since == first.snapshot
    metrics = metrics_text([first, second])  # a healthy job whose data did not change
    assert 'fogvault_job_last_success{job="home"} 1' in metrics
    assert (f'fogvault_job_last_success_timestamp_seconds{{job="home"}} '
            f'{round(second.started.timestamp(), 3)}') in metrics
    (setup.src / "docs" / "a.txt").write_text("changed\n")
    third = run_job(setup.load(), "home")
    assert third.snapshot not in (None, first.snapshot)
    with Repository.open([str(setup.root / "repo")], cli_env["FOGVAULT_PASSWORD"].encode(),
                         use_cache=False) as repo:
        assert sorted(s.uid for s in repo.snapshots()) == sorted([first.snapshot, third.snapshot])
