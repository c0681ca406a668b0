"""The jobs config file: every key loads; every kind of mistake is reported as documented."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from fogvault.errors import UsageError
from fogvault.jobs.config import ConfigError, config_path, load_config, parse_config
from fogvault.jobs.schedule import ALWAYS, CronSchedule, IntervalSchedule
from fogvault.maintenance.retention import Duration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scheduling.md"

EVERY_KEY = """\
[repositories.usb_s3]
targets = ["/mnt/usb/fogvault", "s3://bucket/fogvault", "sftp://me@nas:2222/backup"]
password_file = "~/.config/fogvault/password"
min_targets = 1
compression = 6

[repositories.usb_s3.target_options."s3://bucket/fogvault"]
endpoint_url = "https://s3.example.net"
profile = "backup"
multipart_threshold = "128M"
part_size = "32M"
stall_timeout = 30
key_env = "S3_KEY"
secret_env = "S3_SECRET"
token_file = "s3-token"

[repositories.usb_s3.target_options."sftp://me@nas:2222/backup"]
username = "me"
client_keys = ["~/.ssh/id_backup"]
known_hosts = "known_hosts"
password_file = "/etc/fogvault/sftp-password"
passphrase_env = "KEY_PASSPHRASE"
key_file = "/unused/but/valid"
secret_file = "relative-secret"

[repositories.by_env]
targets = ["/srv/b"]
password_env = "B_PASSWORD"

[repositories.by_command]
targets = ["/srv/c"]
password_command = "pass show fogvault"

[jobs.home]
repository = "usb_s3"
paths = ["~/data", "/etc"]
exclude = ["*.tmp", "~/data/cache"]
exclude_file = "excludes.txt"
exclude_files = ["more-excludes.txt"]
exclude_caches = true
exclude_if_present = ".nobackup"
iexclude = ["*.ISO"]
exclude_larger_than = "1.5G"
one_file_system = true
tags = ["nightly", "home"]
host = "laptop"
schedule = "30 2 * * *"
prune = "weekly"
check = "monthly"
check_read_data_subset = "5%"

[jobs.home.retention]
keep_last = 7
keep_hourly = 24
keep_daily = 14
keep_weekly = 8
keep_monthly = 12
keep_yearly = -1
keep_within = "2d"
keep_within_hourly = "1d"
keep_within_daily = "7d"
keep_within_weekly = "1m"
keep_within_monthly = "1y"
keep_within_yearly = "10y"
keep_tags = ["keep", "a,b"]

[jobs.home.hooks]
before = "mountpoint -q /mnt/usb || mount /mnt/usb"
after = ["sync", ["umount", "/mnt/usb"]]
on_failure = [["logger", "-t", "fogvault", "backup failed"]]
timeout = 600
ping_url = "https://hc-ping.com/uuid"
ping_start = "https://example.net/start"
ping_success = "https://example.net/ok"
ping_failure = "https://example.net/fail"
ping_timeout = 5.5

[jobs.quick]
repository = "by_env"
paths = ["/srv/data"]
schedule = "every 10s"
prune = true
check = false

[monitoring]
run_log = "/var/log/fogvault/runs.jsonl"
metrics_file = "metrics/fogvault.prom"
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path)


def test_every_key_loads(tmp_path):
    cfg = _load(tmp_path, EVERY_KEY)
    home = Path.home()
    repo = cfg.repositories["usb_s3"]
    assert repo.targets[0] == "/mnt/usb/fogvault" and repo.targets[1] == "s3://bucket/fogvault"
    assert repo.password_file == str(home / ".config/fogvault/password")
    assert (repo.min_targets, repo.compression) == (1, 6)
    s3 = repo.target_options["s3://bucket/fogvault"]
    assert s3 == {"endpoint_url": "https://s3.example.net", "profile": "backup",
                  "multipart_threshold": "128M", "part_size": "32M", "stall_timeout": 30.0,
                  "key_env": "S3_KEY", "secret_env": "S3_SECRET",
                  "token_file": str(tmp_path / "s3-token")}
    sftp = repo.target_options["sftp://me@nas:2222/backup"]
    assert sftp["client_keys"] == [str(home / ".ssh/id_backup")]
    assert sftp["known_hosts"] == str(tmp_path / "known_hosts")
    assert sftp["secret_file"] == str(tmp_path / "relative-secret")
    assert cfg.repositories["by_env"].password_env == "B_PASSWORD"
    assert cfg.repositories["by_env"].effective_min_targets() == 1
    assert cfg.repositories["by_command"].password_command == "pass show fogvault"

    job = cfg.jobs["home"]
    assert job.paths == [str(home / "data"), "/etc"]
    assert job.exclude == ["*.tmp", "~/data/cache"]
    assert job.exclude_files == [str(tmp_path / "excludes.txt"),
                                 str(tmp_path / "more-excludes.txt")]
    assert job.exclude_caches and job.one_file_system
    assert job.exclude_if_present == [".nobackup"]
    assert (job.iexclude, job.exclude_larger_than) == (["*.ISO"], 1536 * 1024**3 // 1024)
    assert (job.tags, job.host) == (["nightly", "home"], "laptop")
    assert isinstance(job.schedule, CronSchedule) and job.schedule.cron() == "30 2 * * *"
    assert job.prune is not None and job.prune.text == "weekly"
    assert job.check is not None and job.check.text == "monthly"
    assert job.check_read_data_subset == "5%"
    policy = job.retention
    assert policy is not None
    assert (policy.keep_last, policy.keep_yearly) == (7, -1)
    assert policy.keep_within == Duration(days=2)
    assert policy.keep_within_yearly == Duration(years=10)
    assert policy.keep_tags == ("keep", "a,b")
    hooks = job.hooks
    assert hooks.before == ["mountpoint -q /mnt/usb || mount /mnt/usb"]
    assert hooks.after == ["sync", ["umount", "/mnt/usb"]]
    assert hooks.on_failure == [["logger", "-t", "fogvault", "backup failed"]]
    assert (hooks.timeout, hooks.ping_timeout) == (600.0, 5.5)
    assert hooks.ping_url == "https://hc-ping.com/uuid"
    assert (hooks.ping_start, hooks.ping_success, hooks.ping_failure) == (
        "https://example.net/start", "https://example.net/ok", "https://example.net/fail")

    quick = cfg.jobs["quick"]
    assert isinstance(quick.schedule, IntervalSchedule) and quick.schedule.seconds == 10
    assert quick.prune is ALWAYS and quick.check is None and quick.retention is None
    assert cfg.monitoring.run_log == Path("/var/log/fogvault/runs.jsonl")
    assert cfg.monitoring.metrics_file == tmp_path / "metrics" / "fogvault.prom"


def test_every_key_is_documented():
    documented = DOCS.read_text()
    keys = set(re.findall(r"^([a-z_]+) =", EVERY_KEY, re.MULTILINE))
    missing = sorted(k for k in keys if f"`{k}`" not in documented)
    assert not missing, f"keys missing from docs/scheduling.md: {missing}"


def test_secrets_are_resolved_only_when_asked(tmp_path, monkeypatch):
    cfg = _load(tmp_path, EVERY_KEY)
    repo = cfg.repositories["usb_s3"]
    with pytest.raises(UsageError, match=r"environment variable S3_KEY \(key_env\) is not set"):
        repo.storage_options()
    monkeypatch.setenv("S3_KEY", "AKIA123")
    monkeypatch.setenv("S3_SECRET", "s3cr3t")
    (tmp_path / "s3-token").write_text("tok\n")
    sftp_url = "sftp://me@nas:2222/backup"
    repo.target_options[sftp_url] = {"passphrase_env": "KEY_PASSPHRASE"}
    monkeypatch.setenv("KEY_PASSPHRASE", "pp")
    options = repo.storage_options()
    assert options["s3://bucket/fogvault"] == {
        "endpoint_url": "https://s3.example.net", "profile": "backup", "key": "AKIA123",
        "secret": "s3cr3t", "token": "tok", "multipart_threshold": "128M", "part_size": "32M",
        "stall_timeout": 30.0}
    assert options[sftp_url] == {"passphrase": "pp"}


def test_password_sources(tmp_path, monkeypatch):
    cfg = _load(tmp_path, EVERY_KEY)
    with pytest.raises(UsageError, match="B_PASSWORD"):
        cfg.repositories["by_env"].password_source()
    monkeypatch.setenv("B_PASSWORD", "pw")
    assert cfg.repositories["by_env"].password_source().read() == b"pw"
    assert cfg.repositories["by_command"].password_source().command == "pass show fogvault"


def test_config_path_order(tmp_path, monkeypatch):
    assert config_path() == tmp_path / "xdg-config" / "fogvault" / "config.toml"
    monkeypatch.setenv("FOGVAULT_CONFIG", str(tmp_path / "env.toml"))
    assert config_path() == tmp_path / "env.toml"
    assert config_path(str(tmp_path / "opt.toml")) == tmp_path / "opt.toml"


def test_missing_file_says_where_to_put_it(tmp_path):
    with pytest.raises(UsageError, match=r"no config file at .*nope.toml.*--config"):
        load_config(tmp_path / "nope.toml")


def test_a_config_file_that_is_a_folder_is_named_once(tmp_path):
    with pytest.raises(UsageError) as refused:
        load_config(tmp_path)
    assert str(refused.value) == f"cannot read config file {tmp_path}: Is a directory"


BASE = """\
[repositories.local]
targets = ["/srv/repo"]
password_file = "/etc/pw"

[jobs.home]
repository = "local"
paths = ["~/data"]
"""

# (what to change, expected line, key, message, hint); the lines are those of the final text
MISTAKES = [
    pytest.param(BASE + "[jobs.home.retention]\nkeep_dayly = 7\n", 9,
                 "jobs.home.retention.keep_dayly", "unknown key", "did you mean 'keep_daily'?",
                 id="typo"),
    pytest.param(BASE + "exclude_caches = \"yes\"\n", 8, "jobs.home.exclude_caches",
                 "expected true or false, got string 'yes'", "", id="wrong-type"),
    pytest.param(BASE + "exclude_larger_than = \"big\"\n", 8, "jobs.home.exclude_larger_than",
                 "not a size: 'big' (use e.g. 512K, 16M, 2G)", "", id="bad-size"),
    pytest.param(BASE.replace('repository = "local"\n', ""), 5, "jobs.home",
                 "missing required key 'repository'", "add repository =", id="missing-key"),
    pytest.param(BASE.replace('"local"\npaths', '"locl"\npaths'), 6, "jobs.home.repository",
                 "no repository 'locl' is defined", "did you mean 'local'?",
                 id="unknown-repository"),
    pytest.param(BASE + 'schedule = "30 25 * * *"\n', 8, "jobs.home.schedule",
                 "hour 25 is out of range 0-23", "", id="bad-cron"),
    pytest.param(BASE + 'schedule = "fortnightly"\n', 8, "jobs.home.schedule",
                 "a cron expression has 5 fields", "", id="bad-schedule-word"),
    pytest.param(BASE.replace('password_file = "/etc/pw"', 'password = "hunter2"'), 3,
                 "repositories.local.password", "a plaintext password is not accepted",
                 "use password_file, password_command or password_env", id="plain-password"),
    pytest.param(BASE.replace('"/srv/repo"]', '"s3://b/p"]') +
                 '[repositories.local.target_options."s3://b/p"]\nsecret = "abc"\n', 9,
                 'repositories.local.target_options."s3://b/p".secret',
                 "plaintext credentials are not accepted",
                 'use secret_env = "VARIABLE" or secret_file', id="plain-secret"),
    pytest.param(BASE + '[repositories.local.target_options."/srv/rep"]\nprofile = "x"\n', 8,
                 'repositories.local.target_options."/srv/rep"',
                 "these options name no target of this repository",
                 "did you mean '/srv/repo'?", id="options-for-unknown-target"),
    pytest.param(BASE.replace('password_file = "/etc/pw"',
                              'password_file = "/etc/pw"\npassword_env = "PW"'), 4,
                 "repositories.local.password_env", "password_file and password_env are both set",
                 "keep only one", id="two-password-sources"),
    pytest.param(BASE.replace('password_file = "/etc/pw"',
                              'password_file = "/etc/pw"\nmin_targets = 2'), 4,
                 "repositories.local.min_targets", "expected a whole number 1-1, got number 2",
                 "", id="min-targets"),
    pytest.param(BASE + "[jobs.home.retention]\nkeep_within = \"1w\"\n", 8,
                 "jobs.home.retention", "invalid duration '1w'", "durations look like",
                 id="bad-duration"),
    pytest.param(BASE + "[jobs.home.retention]\nkeep_last = -2\n", 9,
                 "jobs.home.retention.keep_last", "expected a whole number >= -1",
                 "use -1 for unlimited", id="negative-count"),
    pytest.param(BASE + "[jobs.home.retention]\nkeep_last = 0\n", 8, "jobs.home.retention",
                 "the retention table sets no keep_* rule", "remove the table",
                 id="empty-retention"),
    pytest.param(BASE + 'tags = ["daily,home"]\n', 8, "jobs.home.tags", "a tag holds a comma",
                 'tags = ["a", "b"]', id="comma-in-tag"),
    pytest.param(BASE + 'check_read_data_subset = "5%"\n', 8,
                 "jobs.home.check_read_data_subset", "has no effect without check",
                 'add check = "monthly"', id="subset-without-check"),
    pytest.param(BASE + 'check = "monthly"\ncheck_read_data_subset = "150%"\n', 9,
                 "jobs.home.check_read_data_subset", "'150%' is not a subset",
                 'a percentage such as 5%', id="bad-subset"),
    pytest.param(BASE + '[jobs.home.hooks]\nping_url = "hc-ping.com/x"\n', 9,
                 "jobs.home.hooks.ping_url", "is not an http(s) URL", "https://", id="ping-url"),
    # a bad port raised ValueError in the run's first ping: the job ended as an unexpected error
    pytest.param(BASE + '[jobs.home.hooks]\nping_url = "https://hc-ping.com:abc/x"\n', 9,
                 "jobs.home.hooks.ping_url", "has a bad port: use a number from 1 to 65535",
                 "https://", id="ping-url-port"),
    pytest.param(BASE + '[jobs.home.hooks]\nping_start = "http://h:99999/x"\n', 9,
                 "jobs.home.hooks.ping_start", "has a bad port", "https://", id="ping-url-range"),
    pytest.param(BASE + '[jobs.home.hooks]\nping_url = "https://"\n', 9,
                 "jobs.home.hooks.ping_url", "'https://' names no host", "https://",
                 id="ping-url-host"),
    pytest.param(BASE + "[jobs.home.hooks]\nping_timeout = inf\n", 9,
                 "jobs.home.hooks.ping_timeout", "expected a number of seconds > 0 and at most "
                 "600, got number inf", "", id="ping-timeout"),
    pytest.param(BASE + "[jobs.home.hooks]\ntimeout = nan\n", 9, "jobs.home.hooks.timeout",
                 "expected a number of seconds > 0 and at most 604800", "", id="hook-timeout"),
    # no file name or command holds a NUL: the run failed with "unexpected error (ValueError)"
    pytest.param(BASE.replace('"~/data"]', '"~/da\\u0000ta"]'), 7, "jobs.home.paths",
                 "holds a NUL character", "", id="nul-in-path"),
    pytest.param(BASE.replace('"/etc/pw"', '"/etc/\\u0000pw"'), 3,
                 "repositories.local.password_file", "holds a NUL character", "",
                 id="nul-in-string"),
    pytest.param(BASE + '[jobs.home.hooks]\nbefore = ["ok", ["echo", "a\\u0000"]]\n', 9,
                 "jobs.home.hooks.before", "holds a NUL character", "", id="nul-in-hook"),
    pytest.param(BASE + "[jobs.home.hooks]\nbefore = 5\n", 9, "jobs.home.hooks.before",
                 "expected a command string or a list of commands, got number 5", "",
                 id="hook-type"),
    pytest.param(BASE + "[job.other]\npaths = []\n", 8, "job", "unknown key",
                 "did you mean 'jobs'?", id="unknown-section"),
    pytest.param(BASE.replace('paths = ["~/data"]', "paths = []"), 7, "jobs.home.paths",
                 "no paths given", "", id="no-paths"),
    pytest.param(BASE.replace("[jobs.home]", "[jobs.\"my job\"]"), 5, 'jobs."my job"',
                 "invalid job name", "use at most 100 letters, digits", id="bad-name"),
    pytest.param(BASE + '[jobs.Home]\npaths = ["~/data"]\nrepository = "local"\n', 8,
                 "jobs.Home", "differs from job 'home' only in case",
                 "give jobs names that differ in more than case", id="case-twin"),
    # the run failed: "cannot lock job ...: File name too long"
    pytest.param(BASE.replace("[jobs.home]", f"[jobs.{'a' * 101}]"), 5, f"jobs.{'a' * 101}",
                 "invalid job name", "use at most 100 letters", id="long-name"),
    pytest.param(BASE.replace('targets = ["/srv/repo"]', 'targets = ["s3://b/p"]')
                 + '[repositories.local.target_options."s3://b/p"]\npart_size = "16 pages"\n',
                 9, "repositories.local.target_options.\"s3://b/p\".part_size",
                 "not a size: '16 pages'", "", id="bad-part-size"),
    # passed config check; every run then failed
    pytest.param(BASE.replace('targets = ["/srv/repo"]', 'targets = ["s3://b/p"]')
                 + '[repositories.local.target_options."s3://b/p"]\nmultipart_threshold = "1M"\n',
                 9, "repositories.local.target_options.\"s3://b/p\".multipart_threshold",
                 "'1M' is less than 5M, S3's smallest part", "16M", id="small-part-size"),
    pytest.param(BASE.replace('targets = ["/srv/repo"]', 'targets = ["s3://b/p"]')
                 + '[repositories.local.target_options."s3://b/p"]\nstall_timeout = 0\n',
                 9, "repositories.local.target_options.\"s3://b/p\".stall_timeout",
                 "expected a number of seconds > 0 and at most 3600, got number 0", "",
                 id="bad-stall-timeout"),
    # passed config check; every run then failed
    pytest.param(BASE.replace('targets = ["/srv/repo"]', 'targets = ["s3://b/p"]')
                 + '[repositories.local.target_options."s3://b/p"]\n'
                 + 'endpoint_url = "localhost:7480"\n',
                 9, "repositories.local.target_options.\"s3://b/p\".endpoint_url",
                 "'localhost:7480' is not an http:// or https:// URL", "", id="bad-endpoint"),
    # passed config check; every run then failed
    *(pytest.param(BASE.replace('"/srv/repo"]', f'"/srv/repo", "{url}"]'), 2,
                   "repositories.local.targets", message, "", id=f"bad-target-{url}")
      for url, message in [
          ("file://", "the target 'file://' names no folder"),
          ("file://nas/srv", "the target 'file://nas/srv' names the host 'nas'"),
          ("bogus://x", "unsupported target 'bogus://x': use a path or file://"),
          ("s3://", "no bucket in 's3://'"),
          ("sftp:///x", "no host in 'sftp:///x'"),
          ("sftp://h:99999/x", "bad port in 'sftp://h:99999/x'"),
      ]),
    pytest.param(BASE.replace('"/srv/repo"]', '"/srv/repo", "file:///srv//repo/"]'), 2,
                 "repositories.local.targets",
                 "the same target is listed twice: '/srv/repo' and 'file:///srv//repo/'", "",
                 id="one-target-two-spellings"),
    pytest.param(BASE + "schedule = daily\n", 8, "", "TOML syntax error: Invalid value",
                 "strings need quotes", id="toml-syntax"),
]


@pytest.mark.parametrize(("text", "line", "key", "message", "hint"), MISTAKES)
def test_mistake_is_reported_with_file_line_and_key(tmp_path, text, line, key, message, hint):
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError) as err:
        parse_config(text, path)
    problems = err.value.problems
    assert len(problems) == 1, [str(p) for p in problems]
    problem = problems[0]
    assert (problem.line, problem.key) == (line, key), str(problem)
    assert message in problem.message
    assert hint in problem.hint
    where = f"{path}:{line}:" + (f" {key}:" if key else "")
    assert str(problem).startswith(f"{where} {problem.message}")
    if hint:
        assert str(problem).endswith(f"(hint: {problem.hint})")


def test_every_problem_is_reported_at_once(tmp_path):
    text = BASE + 'schedule = "nope"\nexclude_caches = 1\n[jobs.home.retention]\nkeep_dayly = 1\n'
    with pytest.raises(ConfigError) as err:
        parse_config(text, tmp_path / "c.toml")
    keys = [p.key for p in err.value.problems]
    assert keys == ["jobs.home.schedule", "jobs.home.exclude_caches",
                    "jobs.home.retention.keep_dayly"]
    assert "(and 2 more; see 'fogvault config check')" in str(err.value)


def test_unknown_job_has_a_hint(tmp_path):
    cfg = parse_config(BASE, tmp_path / "c.toml")
    with pytest.raises(UsageError, match="did you mean 'home'"):
        cfg.job("hom")


def test_effective_config_round_trips_as_toml(setup, jobs_cli):
    """Paths come out absolute and normalised, and the host is this machine's name."""
    setup.write('schedule = "daily"\nexclude_larger_than = "2M"\n'
                '[jobs.home.retention]\nkeep_last = 3\n',
                paths='["sub/../src"]')
    shown = jobs_cli("config", "show", "--config", str(setup.config))
    assert shown.returncode == 0, shown.stderr
    doc = tomllib.loads(shown.stdout.decode())
    assert doc["jobs"]["home"]["paths"] == [str(setup.src)]
    assert doc["jobs"]["home"]["host"] == os.uname().nodename
    assert doc["jobs"]["home"]["retention"]["keep_last"] == 3
    assert doc["jobs"]["home"]["exclude_larger_than"] == str(2 * 1024**2)
    assert doc["repositories"]["local"]["min_targets"] == 1
    checked = jobs_cli("config", "check", "--config", str(setup.config))
    assert checked.returncode == 0 and b"OK (1 repository, 1 job)" in checked.stdout


def test_a_config_reached_through_a_symlinked_folder_names_what_the_file_system_does(
        setup, jobs_cli):
    """'../repo' beside a config in a symlinked folder (a dotfile manager's link) is the folder
    beside the link's target, as the file system resolves it, not beside the link."""
    real = setup.root / "etc" / "fv"
    real.mkdir(parents=True)
    (setup.root / "home" / "u").mkdir(parents=True)  # deeper than the real folder
    (setup.root / "home" / "u" / "cfg").symlink_to(real)
    (real / "config.toml").write_text(
        '[repositories.local]\ntargets = ["../../repo"]\npassword_file = "../../password"\n'
        '[jobs.home]\nrepository = "local"\npaths = ["../../src"]\n')
    shown = jobs_cli("config", "show", "--config",
                     str(setup.root / "home" / "u" / "cfg" / "config.toml"))
    assert shown.returncode == 0, shown.stderr
    doc = tomllib.loads(shown.stdout.decode())
    assert doc["repositories"]["local"]["targets"] == [str(setup.root / "repo")]
    assert doc["jobs"]["home"]["paths"] == [str(setup.src)]


def test_config_check_lists_every_problem_and_exits_2(setup, jobs_cli):
    setup.write('schedule = "daily"\nexclude_cache = true\n[jobs.home.retention]\nkeep_lst = 3\n')
    done = jobs_cli("config", "check", "--config", str(setup.config))
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert lines == [
        f"error: {setup.config}:10: jobs.home.exclude_cache: unknown key "
        "(hint: did you mean 'exclude_caches'?)",
        f"error: {setup.config}:12: jobs.home.retention.keep_lst: unknown key "
        "(hint: did you mean 'keep_last'?)",
    ]


def test_worked_example_in_the_docs_loads(tmp_path):
    text = DOCS.read_text().split("<!-- example-config -->\n```toml\n", 1)[1].split("```", 1)[0]
    cfg = parse_config(text, tmp_path / "config.toml")
    job = cfg.jobs["home"]
    assert job.schedule is not None and job.schedule.oncalendar() == ["*-*-* 02:30:00"]
    assert cfg.repositories["offsite"].target_options["s3://alice-backups/laptop"][
        "endpoint_url"].startswith("https://")
