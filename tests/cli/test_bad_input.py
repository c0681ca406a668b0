"""Bad input found by a sweep of every command: each is a one-line error with exit code 2, and
none of them stores a snapshot that looks successful but holds less than asked."""

from __future__ import annotations

import json
import os

import pytest
from outputs import one_error_line


@pytest.fixture
def repo(fogvault, tmp_path):
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("data")
    return "repo"


def _usage_error(done) -> str:
    err = done.stderr.decode()
    assert "Traceback" not in err and "unexpected error" not in err, err
    assert done.returncode == 2, err
    return err.strip().splitlines()[-1]


def _snapshot_count(fogvault) -> int:
    return len(json.loads(fogvault("snapshots", "-r", "repo", "--json").stdout))


@pytest.mark.parametrize(("args", "says"), [
    (["src", "--exclude-if-present", ""], "--exclude-if-present takes a file name, not ''"),
    (["src", "--exclude-if-present", "a/b"], "--exclude-if-present takes a file name, not 'a/b'"),
    ([""], "an empty path was given: name a file or folder ('.' for this one)"),
    (["src", "--host", ""], "--host is empty"),
    (["src", "--parent", ""], "--parent is empty"),
    (["src", "--tag", "ok", "--tag", ""], "--tag is empty"),
    # restic reads two tags; one tag 'a,b' looked like them and no filter found 'a'
    (["src", "--tag", "a,b"], "tag 'a,b' holds a comma: give --tag once for each tag (restic "
                              "splits 'a,b' into two tags; FogVault keeps a tag as written)"),
    (["src", "--exclude-file", "/dev/zero"],
     "exclude file /dev/zero holds more than 16.00 MiB: is it the right file?"),
])
def test_backup_input_that_would_store_less_than_asked_is_refused(fogvault, repo, args, says):
    """An empty marker name made every folder 'marked', so the snapshot held no file; an empty
    path (an unset variable) backed up the current folder; an empty tag was stored, though
    tags cannot be empty (user guide, section 10)."""
    assert _usage_error(fogvault("backup", "-r", "repo", *args)) == f"error: {says}"
    assert _snapshot_count(fogvault) == 0


def test_a_password_file_that_is_not_one_is_refused_without_reading_it_all(fogvault, repo):
    done = fogvault("snapshots", "-r", "repo", "--password-file", "/dev/zero")
    assert _usage_error(done) == ("error: password file /dev/zero holds more than 64.00 KiB: is it "
                                  "the right file?")
    assert _usage_error(fogvault("snapshots", "-r", "repo", "--password-file", "")) == (
        "error: the password file's name is empty")


def test_an_exclude_file_may_name_files_whose_names_are_not_utf8(fogvault, repo, tmp_path):
    (tmp_path / "src" / os.fsdecode(b"caf\xe9.tmp")).write_text("skip me")
    (tmp_path / "excludes").write_bytes(b"# latin-1\ncaf\xe9.tmp\n")
    done = fogvault("backup", "-r", "repo", "src", "--exclude-file", "excludes", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.decode().splitlines()[-1])
    assert summary["files_new"] == 1  # only f


def test_a_password_command_that_does_not_exist_is_named(fogvault, repo):
    done = fogvault("snapshots", "-r", "repo", env={
        "FOGVAULT_PASSWORD": "", "FOGVAULT_PASSWORD_COMMAND": "/no/such/pass show x"})
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        "error: password command /no/such/pass failed to run: No such file or directory"]


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_retry_lock_takes_a_sensible_number_of_seconds(fogvault, repo, value):
    done = fogvault("--retry-lock", value, "snapshots", "-r", "repo")
    assert done.returncode == 2
    assert "--retry-lock" in done.stderr.decode()


def test_cat_config_takes_no_id_and_cache_dir_is_not_empty(fogvault, repo):
    assert _usage_error(fogvault("cat", "-r", "repo", "config", "extra")) == (
        "error: cat config takes no id")
    done = fogvault("--cache-dir", "", "snapshots", "-r", "repo")
    assert done.returncode == 2 and "'--cache-dir': is empty" in done.stderr.decode()


def test_control_characters_in_a_tag_are_shown_escaped_in_the_table(fogvault, repo):
    assert fogvault("backup", "-r", "repo", "src", "--tag", "a\nb\x1b[31m").returncode == 0
    done = fogvault("snapshots", "-r", "repo")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 4  # header, rule, one row, the count: the newline did not split it
    assert "a\\nb\\x1b[31m" in lines[2] and "\x1b" not in done.stdout.decode()


@pytest.mark.parametrize("target", ["a-file", "a-file/below"])
def test_a_file_where_a_target_folder_belongs_is_said_so(fogvault, tmp_path, target):
    (tmp_path / "a-file").write_text("mine")
    done = fogvault("init", "-r", target, "--kdf", "interactive")
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        f"error: {tmp_path / target}: a file is in the way: a target must be a folder"]
    assert (tmp_path / "a-file").read_text() == "mine"


@pytest.mark.parametrize("target", ["", "file://"])
def test_an_empty_target_is_refused_not_taken_for_the_current_folder(fogvault, tmp_path, target):
    """-r "$UNSET" made a repository in the current folder (or read the one there)."""
    here = tmp_path / "here"
    here.mkdir()
    done = fogvault("init", "-r", target, "--kdf", "interactive", cwd=here)
    assert _usage_error(done) == (f"error: the target {target!r} names no folder: give a path "
                                  "or URL ('.' for the current folder)")
    assert list(here.iterdir()) == []


@pytest.mark.parametrize("target", ["file://backup/repo", "file://nas.lan/srv/repo"])
def test_a_file_url_naming_a_host_is_refused_not_taken_for_a_relative_path(fogvault, tmp_path,
                                                                           target):
    """'file://backup/repo' (two slashes where three were meant) made a repository in
    ./backup/repo; a host in a file:// URL is another machine's, which FogVault cannot reach
    this way."""
    here = tmp_path / "here"
    here.mkdir()
    done = fogvault("init", "-r", target, "--kdf", "interactive", cwd=here)
    host = target.split("/")[2]
    assert _usage_error(done) == (f"error: the target {target!r} names the host {host!r}: a "
                                  "file:// URL names a folder on this machine, as file:///path "
                                  "(three slashes); use sftp:// for another host")
    assert list(here.iterdir()) == []


def test_a_file_url_naming_localhost_is_a_local_folder(fogvault, tmp_path):
    """RFC 8089: file://localhost/path is file:///path."""
    here = tmp_path / "here"
    here.mkdir()
    done = fogvault("init", "-r", f"file://localhost{tmp_path}/repo", "--kdf", "interactive",
                    cwd=here)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "repo" / "config").is_file() and list(here.iterdir()) == []


@pytest.mark.parametrize(("target", "message"), [
    ("bogus://x", "error: unsupported target 'bogus://x': use a path or file://, memory://, "
                  "s3://, sftp://"),
    ("s3://", "error: no bucket in 's3://'; use s3://bucket/prefix"),
    ("sftp:///x", "error: no host in 'sftp:///x'; use sftp://user@host:port/path"),
])
def test_a_target_url_that_names_nothing_usable_is_a_usage_error(fogvault, tmp_path, target,
                                                                 message):
    """A mistyped URL is bad command-line input (exit 2), as a bad SFTP port already was; it
    exited 1, as a target's failure does."""
    assert _usage_error(fogvault("snapshots", "-r", target)) == message


@pytest.mark.parametrize("count", ["0", "-1"])
def test_snapshots_latest_takes_at_least_one(fogvault, repo, count):
    done = fogvault("snapshots", "-r", "repo", "--latest", count)
    assert done.returncode == 2 and "--latest" in done.stderr.decode()


def test_a_snapshot_left_on_a_target_that_missed_its_deletion_is_marked_so_beside_an_unknown(
        fogvault, tmp_path):
    """The '-' mark (repair deletes it there) holds whether or not another target could be
    listed; it was '?' (unknown) as soon as one could not."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    assert fogvault("init", "-r", "A", "-r", "B", "--kdf", "interactive").returncode == 0
    for _ in range(2):
        assert fogvault("backup", "-r", "A", "-r", "B", "src").returncode == 0
    first = json.loads(fogvault("snapshots", "-r", "A", "--json").stdout)[0]["uid"]
    (tmp_path / "B").rename(tmp_path / "B.away")
    (tmp_path / "B").mkdir()  # not mounted
    done = fogvault("forget", "-r", "A", "-r", "B", "--min-targets", "1", first)
    assert done.returncode == 3, done.stderr
    (tmp_path / "B").rmdir()
    (tmp_path / "B.away").rename(tmp_path / "B")
    for targets in (["-r", "A", "-r", "B"],  # B alone holds it, A could be listed
                    ["-r", "B", "-r", "sftp://nobody@127.0.0.1:1/x", "--min-targets", "1"]):
        done = fogvault("snapshots", *targets)
        [row] = [ln for ln in done.stdout.decode().splitlines() if ln.startswith(first)]
        assert row.startswith(f"{first}- "), row


def test_an_s3_url_that_botocore_refuses_says_why_on_its_one_line(fogvault):
    """botocore says what is wrong on the second line of its message: the error's one line
    was 'ParamValidationError: Parameter validation failed:' and no more."""
    done = fogvault("snapshots", "-r", "s3://a bucket/x", env={
        "FOGVAULT_S3_ENDPOINT": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y", "FOGVAULT_RETRY_ATTEMPTS": "1"})
    assert done.returncode == 1
    assert "failed: Invalid bucket name \"a bucket\"" in one_error_line(done)


@pytest.mark.parametrize("variable", ["FOGVAULT_RETRY_ATTEMPTS", "FOGVAULT_TARGET_CONCURRENCY"])
def test_a_count_variable_below_one_is_named(fogvault, repo, variable):
    """The message was 'retry attempts, concurrency and read failures must be at least 1',
    naming neither the variable nor its value."""
    done = fogvault("snapshots", "-r", "repo", env={variable: "0"})
    assert _usage_error(done) == f"error: {variable}='0': use a whole number of at least 1"


def test_an_error_naming_a_path_with_a_newline_keeps_its_reason(fogvault, repo, tmp_path):
    """The error is one line with the newline escaped; it was cut at the newline, which
    dropped the path's end and the reason."""
    done = fogvault("backup", "-r", "repo", str(tmp_path / "a\nb"))
    assert _usage_error(done) == (f"error: cannot back up {tmp_path}/a\\nb: No such file or "
                                  "directory")


def test_a_state_folder_that_cannot_be_written_does_not_fail_a_backup(fogvault, repo, tmp_path):
    """The targets' ledger is written best effort: with the state folder not a folder, the
    backup failed after saving its snapshot ('unexpected error', exit 1), as the clean-up of
    the temporary file that could not be made raised."""
    (tmp_path / "not-a-folder").write_text("")
    (tmp_path / "files").mkdir()
    done = fogvault("backup", "-q", "-r", "repo", "files",
                    env={"XDG_STATE_HOME": str(tmp_path / "not-a-folder")})
    assert done.returncode == 0, done.stderr
    assert _snapshot_count(fogvault) == 1


def test_a_warning_naming_a_path_with_a_newline_is_one_line(fogvault, repo, tmp_path):
    missing = tmp_path / "a\nb"
    done = fogvault("backup", "-q", "-r", "repo", "src", str(missing))
    assert done.returncode == 3, done.stderr
    assert done.stderr.decode().splitlines() == [
        f"warning: {tmp_path}/a\\nb: cannot back up: No such file or directory; skipped"]


@pytest.mark.parametrize(("how", "source"), [
    ("file", "password file {tmp}/empty"),
    ("command", "the output of --password-command"),
    ("variable", "FOGVAULT_PASSWORD"),
])
def test_an_empty_password_names_its_source(fogvault, tmp_path, how, source):
    """It said "empty password" whatever the source, which left the user to guess."""
    (tmp_path / "empty").write_text("\n")
    args = {"file": ["--password-file", str(tmp_path / "empty")],
            "command": ["--password-command", "true"], "variable": []}[how]
    done = fogvault("snapshots", "-r", "repo", *args, env={"FOGVAULT_PASSWORD": ""})
    assert _usage_error(done) == f"error: empty password from {source.format(tmp=tmp_path)}"


def test_a_command_started_with_a_standard_stream_closed_still_runs(fogvault, tmp_path):
    """``>&-``, ``2>&-``, ``<&-``: Python left the stream None, so every command failed
    before it ran (a traceback, or with stderr closed silently, exit 1, no snapshot)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"x")
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    for closing in (">&-", "2>&-", "<&-"):
        wrap = ["sh", "-c", f'exec "$@" {closing}', "sh"]
        done = fogvault("backup", "-r", "repo", "src", wrap=wrap)
        assert done.returncode == 0, (closing, done.stderr)
    listed = fogvault("snapshots", "-r", "repo", "--json")
    assert len(json.loads(listed.stdout)) == 3


@pytest.mark.parametrize("args", [["snapshots", "--host", "a", "--host", "b"],
                                  ["forget", "--host=a", "--host", "b", "--keep-last", "1"],
                                  ["backup", "src", "--host", "a", "--host", "b"],
                                  ["snapshots", "-H", "a", "--host=b"]])
def test_a_second_host_is_refused(fogvault, repo, args):
    """The parser kept the last: 'forget --host a --host b' chose b's snapshots alone, where
    restic takes both."""
    assert fogvault("backup", "-r", repo, "src", "--host", "b").returncode == 0
    done = fogvault(*args, "-r", repo)
    assert _usage_error(done) == (
        "error: --host can be given once: FogVault selects the snapshots of one host (restic "
        "takes several, as any of them); run the command per host")
    assert _snapshot_count(fogvault) == 1


def test_another_option_s_value_that_starts_with_dash_h_is_no_host(fogvault, repo):
    """'-e -Hx -e -Hy' (two exclude patterns) was refused as a second --host."""
    done = fogvault("backup", "-r", repo, "--dry-run", "-e", "-Hx", "-e", "-Hy", "src")
    assert done.returncode == 0, done.stderr
