"""The CLI's contract for the core commands: outputs, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from outputs import one_error_line
from polling import blocked_reading_a_pipe, wait_until


def _init(fogvault, repo: str = "repo"):
    done = fogvault("init", "-r", repo, "--kdf", "interactive")
    assert done.returncode == 0, done.stderr
    return done


def test_version(fogvault):
    done = fogvault("--version")
    assert done.returncode == 0
    assert done.stdout.decode().startswith("fogvault ")


def test_init_then_refuse_second_init(fogvault, tmp_path):
    _init(fogvault)
    assert (tmp_path / "repo" / "config").is_file()
    assert len(list((tmp_path / "repo" / "keys").iterdir())) == 1
    again = fogvault("init", "-r", "repo", "--kdf", "interactive")
    assert again.returncode == 1
    assert "already exists" in one_error_line(again)


def test_init_refuses_a_folder_of_other_files_and_writes_nothing(fogvault, tmp_path):
    """As borg: a mistyped target (the folder to back up, a home folder) is not mixed into."""
    (tmp_path / "docs" / "2024").mkdir(parents=True)
    (tmp_path / "docs" / "2024" / "taxes.pdf").write_bytes(b"mine")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "docs").rglob("*"))
    done = fogvault("init", "-r", "elsewhere", "-r", "docs", "--kdf", "interactive")
    assert done.returncode == 2
    assert one_error_line(done) == (f"error: {tmp_path / 'docs'} is not empty (it holds "
                                    "'2024/taxes.pdf'): a repository needs an empty folder, "
                                    "or one that does not exist yet")
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "docs").rglob("*")) == before
    assert not any((tmp_path / "elsewhere").iterdir())  # the other target got no key file
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"")  # dot names are never objects
    _init(fogvault, "empty")


def test_wrong_password_exits_12(fogvault):
    _init(fogvault)
    done = fogvault("snapshots", "-r", "repo", env={"FOGVAULT_PASSWORD": "wrong"})
    assert done.returncode == 12
    assert "wrong password" in one_error_line(done)


def test_missing_repository_exits_10(fogvault):
    done = fogvault("snapshots", "-r", "nowhere")
    assert done.returncode == 10
    assert "no repository" in one_error_line(done)


def test_errors_say_what_is_wrong_and_give_no_wrong_advice(fogvault):
    """A rule of 0 is a rule the user gave (it is off); a pack size out of range names the
    range; a copy source that holds no repository is not to be created with 'init'."""
    _init(fogvault)
    forgot = fogvault("forget", "-r", "repo", "--keep-last", "0")
    assert forgot.returncode == 2
    assert one_error_line(forgot) == ("error: no snapshots named and no keep rule set (a rule "
                                      "of 0 is off): refusing to forget anything")
    packed = fogvault("init", "-r", "other", "--pack-size", "0")
    assert packed.returncode == 2
    assert one_error_line(packed) == "error: --pack-size must be 1 to 512 (MiB)"
    copied = fogvault("copy", "-r", "repo", "--from-repo", "nowhere",
                      env={"FOGVAULT_FROM_PASSWORD": "x"})
    assert copied.returncode == 10
    assert one_error_line(copied) == (
        "error: source repository nowhere: no repository there: check the --from-repo "
        "address (or FOGVAULT_FROM_REPO)")


def test_no_repository_with_a_target_unreachable_gives_no_advice_to_init(fogvault, tmp_path):
    """The unreachable target may hold the repository: 'init' is not the way on, neither for
    the repository nor for a copy's source (one target empty, one refusing connections)."""
    (tmp_path / "empty").mkdir()
    unreachable = "sftp://nobody@127.0.0.1:1/nowhere"  # nothing listens on port 1
    _init(fogvault)
    copied = fogvault("copy", "-r", "repo", "--from-repo", "empty", "--from-repo", unreachable,
                      env={"FOGVAULT_FROM_PASSWORD": "x"})
    listed = fogvault("snapshots", "-r", "empty", "-r", unreachable)
    for done in copied, listed:
        assert done.returncode == 10 and "Traceback" not in done.stderr.decode()
        error = done.stderr.decode().splitlines()[-1]  # after the unreachable one's warning
        assert "init" not in error
        assert f"{unreachable} could not be reached (it may hold it)" in error
    assert copied.stderr.decode().splitlines()[-1].startswith("error: source repository ")


def test_usage_errors_exit_2(fogvault):
    assert fogvault("no-such-command").returncode == 2
    assert fogvault("restore", "-r", "repo").returncode == 2  # --version is required


def test_no_password_source_without_tty(fogvault):
    _init(fogvault)
    done = fogvault("snapshots", "-r", "repo", env={"FOGVAULT_PASSWORD": ""}, input=b"")
    assert done.returncode in (1, 2)
    one_error_line(done)


@pytest.mark.parametrize("where", ["before", "after"])
def test_common_options_before_or_after_the_command(fogvault, where):
    _init(fogvault)
    args = ["snapshots", "--json"]
    args = ["-r", "repo", *args] if where == "before" else [*args, "-r", "repo"]
    done = fogvault(*args)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_repo_from_environment_and_password_file(fogvault, tmp_path):
    _init(fogvault)
    (tmp_path / "pw").write_text("correct horse battery staple\n")
    done = fogvault("snapshots", env={"FOGVAULT_REPO": "repo", "FOGVAULT_PASSWORD": "",
                                      "FOGVAULT_PASSWORD_FILE": str(tmp_path / "pw")})
    assert done.returncode == 0, done.stderr


def test_password_command(fogvault):
    _init(fogvault)
    ok = fogvault("snapshots", "-r", "repo", env={
        "FOGVAULT_PASSWORD": "", "FOGVAULT_PASSWORD_COMMAND": "echo correct horse battery staple"})
    assert ok.returncode == 0, ok.stderr
    failing = fogvault("snapshots", "-r", "repo", env={
        "FOGVAULT_PASSWORD": "", "FOGVAULT_PASSWORD_COMMAND": "false"})
    assert failing.returncode == 1
    assert "password command" in one_error_line(failing)


def test_a_password_that_is_not_utf8_is_its_bytes(fogvault, tmp_path):
    """The environment variable's bytes are the password, as a password file's are."""
    not_utf8 = {"FOGVAULT_PASSWORD": os.fsdecode(b"\xff\xfepass")}
    done = fogvault("init", "-r", "repo", "--kdf", "interactive", env=not_utf8)
    assert done.returncode == 0, done.stderr
    (tmp_path / "pw").write_bytes(b"\xff\xfepass\n")
    assert fogvault("snapshots", "-r", "repo", "--password-file", "pw").returncode == 0


@pytest.mark.parametrize("command", ["'unterminated", "  "])
def test_a_password_command_that_cannot_be_split_is_a_usage_error(fogvault, command):
    _init(fogvault)
    done = fogvault("snapshots", "-r", "repo", env={
        "FOGVAULT_PASSWORD": "", "FOGVAULT_PASSWORD_COMMAND": command})
    assert done.returncode == 2
    assert "FOGVAULT_PASSWORD_COMMAND" in one_error_line(done)
    flag = fogvault("snapshots", "-r", "repo", "--password-command", command)
    assert flag.returncode == 2
    assert "--password-command" in one_error_line(flag)


def test_password_command_option_beats_the_environment(fogvault, tmp_path):
    """As restic's --password-command: the option wins over every variable, and cannot be
    given with --password-file."""
    _init(fogvault)
    wrong = {"FOGVAULT_PASSWORD": "wrong", "FOGVAULT_PASSWORD_FILE": str(tmp_path / "none"),
             "FOGVAULT_PASSWORD_COMMAND": "echo wrong"}
    done = fogvault("snapshots", "--password-command", "echo 'correct horse battery staple'",
                    "-r", "repo", env=wrong)
    assert done.returncode == 0, done.stderr
    assert fogvault("snapshots", "-r", "repo", "--password-command", "echo wrong"
                    ).returncode == 12
    (tmp_path / "pw").write_text("correct horse battery staple\n")
    both = fogvault("snapshots", "-r", "repo", "--password-file", "pw",
                    "--password-command", "echo x")
    assert both.returncode == 2
    assert one_error_line(both) == (
        "error: --password-file and --password-command cannot be used together")


def test_key_commands(fogvault, tmp_path):
    _init(fogvault)
    (tmp_path / "new").write_text("second password")
    assert fogvault("key", "add", "-r", "repo", "--new-password-file", "new",
                    "--kdf", "interactive").returncode == 0
    keys = json.loads(fogvault("key", "list", "-r", "repo", "--json").stdout)
    assert len(keys) == 2
    assert sum(k["current"] for k in keys) == 1
    current = next(k["id"] for k in keys if k["current"])
    other = next(k["id"] for k in keys if not k["current"])
    refused = fogvault("key", "remove", current, "-r", "repo")
    assert refused.returncode == 2
    one_error_line(refused)
    # passwd with the second password, then the first no longer works
    env2 = {"FOGVAULT_PASSWORD": "second password"}
    (tmp_path / "third").write_text("third password")
    done = fogvault("key", "passwd", "-r", "repo", "--new-password-file", "third",
                    "--kdf", "interactive", env=env2)
    assert done.returncode == 0, done.stderr
    assert fogvault("snapshots", "-r", "repo", env=env2).returncode == 12
    env3 = {"FOGVAULT_PASSWORD": "third password"}
    removed = fogvault("key", "remove", current[:8], "-r", "repo", env=env3)  # a unique prefix
    assert (removed.returncode, removed.stdout.decode()) == (0, f"removed key {current}\n")
    keys = json.loads(fogvault("key", "list", "-r", "repo", "--json", env=env3).stdout)
    assert [k["id"] for k in keys] != [other]
    assert len(keys) == 1


def test_key_add_without_a_terminal_asks_for_the_new_password_option(fogvault):
    """The repository's password is given (FOGVAULT_PASSWORD): it is the new one that is
    missing, and the message names the option that gives it."""
    _init(fogvault)
    done = fogvault("key", "add", "-r", "repo", input=b"")
    assert done.returncode == 2
    assert one_error_line(done) == (
        "error: no new password given: use --new-password-file (or run on a terminal)")


def test_quiet_check_and_repair_still_say_what_failed(fogvault, tmp_path):
    """-q silences results, not errors: the damage check finds, and what repair cannot mend,
    go to stderr."""
    _init(fogvault)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(bytes(range(256)) * 64)
    assert fogvault("backup", "-r", "repo", "src").returncode == 0
    pack = next(p for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file())
    pack.unlink()
    name = f"data/{pack.parent.name}/{pack.name}"
    checked = fogvault("check", "-q", "-r", "repo")
    assert (checked.returncode, checked.stdout) == (1, b"")
    assert f"missing: {name}" in checked.stderr.decode()
    assert "errors were found" in checked.stderr.decode()
    # --no-cache: if it is the tree pack, repair would heal it from the local cache's copy
    repaired = fogvault("repair", "-q", "--no-cache", "-r", "repo")
    assert (repaired.returncode, repaired.stdout) == (1, b"")
    assert f"unrecoverable: {name}" in repaired.stderr.decode(), repaired.stderr


def test_quiet_listings_still_print_what_was_asked_for(fogvault, tmp_path):
    """-q drops progress, reports of what was done, counts and hints, as restic's does, not
    the result a listing command exists for."""
    _init(fogvault)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "old").write_text("x")
    backed_up = fogvault("-q", "backup", "-r", "repo", "src")
    assert (backed_up.returncode, backed_up.stdout) == (0, b""), backed_up.stderr
    (tmp_path / "src" / "new").write_text("y")
    assert fogvault("-q", "backup", "-r", "repo", "src").stdout == b""
    first, second = (s["uid"] for s in json.loads(fogvault("snapshots", "--json", "-r",
                                                            "repo").stdout))

    def quiet(*args: str) -> list[str]:
        done = fogvault("-q", *args, "-r", "repo")
        assert done.returncode == 0, done.stderr
        return done.stdout.decode().splitlines()

    listed = quiet("snapshots")
    assert [line.split()[0] for line in listed[2:]] == [first, second]  # no count below
    assert quiet("ls", "latest", str(tmp_path / "src")) == [
        str(tmp_path / "src" / name) for name in ("new", "old")]
    assert quiet("find", "new")[0].startswith(f"snapshot {second} of ")
    assert f"+    {tmp_path / 'src' / 'new'}" in quiet("diff", first, second)
    assert quiet("stats")[0].split() == ["Snapshots:", "2"]
    assert len(quiet("key", "list")) == 3


def test_help_shows_a_counter_as_a_flag_and_names_option_values(fogvault):
    """-v counts (-vv) and takes no number; option values read TEXT, INTEGER as in docs/cli.md,
    not typer 0.28's <str>, <int>."""
    lines = fogvault("--help", env={"COLUMNS": "200"}).stdout.decode().splitlines()
    option = {name: next(line for line in lines if name in line)
              for name in ("--verbose", "--repo", "--min-targets")}
    assert option["--verbose"].split("│")[1].split() == ["--verbose", "-v", "Repeatable:", "-v",
                                                         "adds", "the", "traceback", "to", "an",
                                                         "error,", "-vv", "also", "debug",
                                                         "messages."]
    assert "TEXT" in option["--repo"] and "INTEGER" in option["--min-targets"]
    forget = fogvault("forget", "--help", env={"COLUMNS": "200"}).stdout.decode()
    assert "<int>" not in forget and "--keep-last" in forget


def test_cat_config_and_snapshot(fogvault, tmp_path):
    _init(fogvault)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    assert fogvault("backup", "-r", "repo", "src").returncode == 0
    config = json.loads(fogvault("cat", "config", "-r", "repo").stdout)
    assert config["version"] == 1 and config["chunker"]["avg_size"] == 1024 * 1024
    snap = json.loads(fogvault("cat", "snapshot", "latest", "-r", "repo").stdout)
    assert snap["paths"] == [str(tmp_path / "src")]
    bad = fogvault("cat", "nonsense", "-r", "repo")
    assert bad.returncode == 2


def test_times_outside_years_1_to_9999_are_listed(fogvault, make_repo):
    """A snapshot may record any integer time: ls -l, ls --json and find show it without
    failing, text as @seconds, JSON exact in mtime_ns (mtime null where ISO 8601 cannot)."""
    from crafted import DATA, file_node, save_snapshot, store, store_tree

    repo = make_repo()
    data = store(repo, DATA, b"x")
    times = {"far": 253402300800 * 10**9 + 5, "near": 1_600_000_000_123_456_789}
    root = store_tree(repo, [file_node(name, [data], size=1, mtime_ns=ns)
                             for name, ns in times.items()])
    uid = save_snapshot(repo, root).uid
    url = repo.targets.urls[0]
    listed = fogvault("ls", "-r", url, uid, "-l")
    assert listed.returncode == 0, listed.stderr
    assert "@      253402300800 /far" in listed.stdout.decode()
    as_json = fogvault("ls", "-r", url, uid, "--json")
    assert as_json.returncode == 0, as_json.stderr
    entries = {e["name"]: e for e in json.loads(as_json.stdout)}
    assert {name: e["mtime_ns"] for name, e in entries.items()} == times
    assert entries["far"]["mtime"] is None
    assert entries["near"]["mtime"].startswith("2020-09-1")
    assert ".123456" in entries["near"]["mtime"]
    found = fogvault("find", "-r", url, "far")
    assert found.returncode == 0 and b"@      253402300800" in found.stdout, found.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["int", "term", "hup"])
def test_an_interrupted_command_says_so(fogvault, cli_env, tmp_path, signum):
    """Typer turns Ctrl-C into exit code 130 without a word; the CLI says what happened. SIGTERM
    and SIGHUP (a closed terminal) stop a command the same way. The command is caught reading
    its password from a fifo, signalled once it is blocked reading it. (Signalled as soon as it
    has opened the fifo, it could be between the open and the read: CPython would then run the
    handler only after the read, which never returns while the fifo is held open.)"""
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    fifo = tmp_path / "password"
    os.mkfifo(fifo)
    env = {k: v for k, v in cli_env.items() if k != "FOGVAULT_PASSWORD"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fogvault", "snapshots", "-r", "repo", "--password-file",
         str(fifo)], env=env, cwd=tmp_path, stderr=subprocess.PIPE,
    )
    with open(fifo, "wb"):
        wait_until(lambda: blocked_reading_a_pipe(proc.pid), "the password read")
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == b"interrupted"


def test_forget_names_the_snapshots_given_by_uid(fogvault, tmp_path):
    """A dry run (and a real one) names what it removes: a uid prefix given on the command
    line, which no retention group lists, as well as the policy's choices."""
    _init(fogvault)
    (tmp_path / "src").mkdir()
    for content in ("a", "b", "c"):
        (tmp_path / "src" / "f").write_text(content)
        assert fogvault("backup", "-q", "-r", "repo", "src").returncode == 0
    snapshots = json.loads(fogvault("snapshots", "--json", "-r", "repo").stdout)
    first, second, third = (s["uid"] for s in snapshots)
    first_time = snapshots[0]["time"][:19].replace("T", " ")  # as the tables show it
    for dry_run in (["--dry-run"], []):
        done = fogvault("forget", "-r", "repo", first[:6], "--keep-last", "1", *dry_run)
        assert done.returncode == 0, done.stderr
        out = done.stdout.decode()
        assert first in out and second in out and third in out, out
        assert out.rstrip().endswith("remove 2 snapshots" if dry_run else "removed 2 snapshots")
        assert f"{first}  {first_time}" in out, out  # the named table's row has its time


def test_forget_names_a_snapshot_given_by_uid_that_cannot_be_read(fogvault, tmp_path):
    """A damaged snapshot is forgotten by uid all the same (one way out of it); its row says it
    could not be read instead of a time."""
    _init(fogvault)
    (tmp_path / "src").mkdir()
    assert fogvault("backup", "-q", "-r", "repo", "src").returncode == 0
    (uid,) = (s["uid"] for s in json.loads(fogvault("snapshots", "--json", "-r", "repo").stdout))
    (tmp_path / "repo" / "snapshots" / uid).write_bytes(b"not a snapshot")
    done = fogvault("forget", "-r", "repo", uid)
    assert done.returncode == 0, done.stderr
    assert f"{uid}  (cannot be read)" in done.stdout.decode()
    assert json.loads(fogvault("snapshots", "--json", "-r", "repo").stdout) == []
