"""The jobs config file: TOML with ``[repositories.NAME]``, ``[jobs.NAME]`` and ``[monitoring]``.

Where it is read from (first that is set): ``--config FILE``, ``FOGVAULT_CONFIG``, then
``config.toml`` in the platformdirs user config folder (``~/.config/fogvault/config.toml``).

Guarantees:

* :func:`load_config` returns a fully validated :class:`Config` or raises :class:`ConfigError`
  listing *every* problem found, each as ``FILE:LINE: KEY: message (hint: ...)``. Unknown keys
  get a "did you mean" hint (difflib); wrong types, missing required keys, bad schedules and
  retention values are all reported this way.
* Secrets are never read from the file: credentials are given by reference (``*_env`` names an
  environment variable, ``*_file`` a file); a plaintext ``password``/``secret``/``key``... is
  refused. References are resolved only when a job runs (:meth:`RepositoryConfig.storage_options`,
  :meth:`RepositoryConfig.password_source`).
* Relative paths (targets that are plain paths, ``paths``, ``exclude_file``, ``password_file``,
  ``*_file``, ``run_log``, ``metrics_file``) are relative to the config file's folder; ``~`` is
  expanded.

Problems carry the file's line numbers (fogvault/jobs/toml_reader.py: how they are found);
``config show`` prints the effective config (fogvault/jobs/config_show.py).
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from fogvault.errors import UsageError
from fogvault.jobs.schedule import Schedule, ScheduleError, parse_schedule, parse_when
from fogvault.jobs.toml_reader import (
    MISSING,
    NUL,
    NUL_PROBLEM,
    ConfigError,
    KeyLines,
    ReadContext,
    TableReader,
    describe,
    syntax_problem,
)
from fogvault.maintenance.retention import RetentionPolicy
from fogvault.maintenance.subset import HINT as SUBSET_HINT
from fogvault.maintenance.subset import chooser
from fogvault.password import PasswordSource
from fogvault.sizes import parse_size
from fogvault.storage.identity import repeated_target
from fogvault.storage.s3_multipart import MIN_PART_SIZE
from fogvault.storage.urls import check_url, hide_password, is_http_url
from fogvault.targets.policy import MAX_LIMIT_KIB

ENV_CONFIG = "FOGVAULT_CONFIG"
#: A job's name is part of file names (its lock, its systemd units: fogvault-NAME.service),
#: which may be 255 bytes long: a longer name passed config check and failed every run.
MAX_NAME = 100
NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME - 1}}}")
DEFAULT_HOOK_TIMEOUT = 3600.0
MAX_HOOK_TIMEOUT = 7 * 86400.0
DEFAULT_PING_TIMEOUT = 10.0
MAX_PING_TIMEOUT = 600.0
DEFAULT_COMPRESSION = 3

# target_options: a key that names a secret by reference -> the storage option it fills
SECRET_REFS = {
    "key": "key", "secret": "secret", "token": "token",  # s3://
    "password": "password", "passphrase": "passphrase",  # sftp://
}
PLAIN_TARGET_OPTIONS = {"endpoint_url": "http_url", "profile": str, "username": str,
                        "multipart_threshold": "size", "part_size": "size",
                        "stall_timeout": "seconds",
                        "known_hosts": "path", "client_keys": "paths"}
MAX_STALL_TIMEOUT = 3600.0
PLAINTEXT_SECRETS = {"key", "secret", "token", "password", "passphrase", "access_key",
                     "secret_key", "access_key_id", "secret_access_key", "aws_access_key_id",
                     "aws_secret_access_key", "session_token"}
Command = str | list[str]


# ---- the model -------------------------------------------------------------------------------


@dataclass(slots=True)
class RepositoryConfig:
    name: str
    targets: list[str]
    target_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    password_file: str | None = None
    password_command: str | None = None
    password_env: str | None = None
    min_targets: int | None = None  # None: every target must hold a snapshot's data
    compression: int = DEFAULT_COMPRESSION  # zstd level, used when the repository is created
    #: KiB/s for the whole run (None: FOGVAULT_LIMIT_* or none; 0: none), as --limit-upload
    limit_upload: int | None = None
    limit_download: int | None = None

    def password_source(self) -> PasswordSource:
        """The configured source, else the usual ``FOGVAULT_PASSWORD*`` environment."""
        if self.password_file or self.password_command:
            return PasswordSource(file=self.password_file, command=self.password_command)
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise UsageError(f"repository {self.name}: environment variable "
                                 f"{self.password_env} (password_env) is not set")
            return PasswordSource(value=value)
        return PasswordSource.from_env()

    def storage_options(self) -> dict[str, dict[str, Any]]:
        """Per-target settings for :func:`fogvault.storage.open_storage`, secrets resolved."""
        return {url: _resolve_options(self.name, url, opts)
                for url, opts in self.target_options.items()}

    def effective_min_targets(self) -> int:
        return self.min_targets if self.min_targets is not None else len(self.targets)


@dataclass(slots=True)
class HooksConfig:
    before: list[Command] = field(default_factory=list)
    after: list[Command] = field(default_factory=list)
    on_failure: list[Command] = field(default_factory=list)
    timeout: float = DEFAULT_HOOK_TIMEOUT
    ping_url: str | None = None
    ping_start: str | None = None
    ping_success: str | None = None
    ping_failure: str | None = None
    ping_timeout: float = DEFAULT_PING_TIMEOUT


@dataclass(slots=True)
class JobConfig:
    name: str
    repository: str
    paths: list[str]
    exclude: list[str] = field(default_factory=list)
    exclude_files: list[str] = field(default_factory=list)
    exclude_caches: bool = False
    exclude_if_present: list[str] = field(default_factory=list)
    iexclude: list[str] = field(default_factory=list)
    exclude_larger_than: int | None = None
    one_file_system: bool = False
    skip_if_unchanged: bool = False  # no snapshot when nothing changed since the last one
    no_flags: bool = False  # store no inode flags (backup --no-flags)
    ignore_ctime: bool = False  # backup --ignore-ctime
    ignore_inode: bool = False  # backup --ignore-inode
    tags: list[str] = field(default_factory=list)
    host: str | None = None  # None: this machine's host name
    schedule: Schedule | None = None  # None: run by hand only
    retention: RetentionPolicy | None = None  # None: no forget
    prune: Schedule | None = None
    check: Schedule | None = None
    check_read_data_subset: str | None = None
    hooks: HooksConfig = field(default_factory=HooksConfig)


@dataclass(slots=True)
class MonitoringConfig:
    run_log: Path | None = None  # None: runs.jsonl in the user state folder
    metrics_file: Path | None = None  # None: no Prometheus textfile


@dataclass(slots=True)
class Config:
    path: Path
    repositories: dict[str, RepositoryConfig] = field(default_factory=dict)
    jobs: dict[str, JobConfig] = field(default_factory=dict)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)

    def job(self, name: str) -> JobConfig:
        if name in self.jobs:
            return self.jobs[name]
        close = difflib.get_close_matches(name, list(self.jobs), n=1)
        hint = f"did you mean {close[0]!r}?" if close else (
            f"jobs in {self.path}: {', '.join(self.jobs) or 'none'}")
        raise UsageError(f"no job {name!r} in {self.path} ({hint})")

    def repository_of(self, job: JobConfig) -> RepositoryConfig:
        return self.repositories[job.repository]


# ---- finding and reading the file ------------------------------------------------------------


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir("fogvault")) / "config.toml"


def config_path(option: str | None = None) -> Path:
    """``--config FILE``, else ``FOGVAULT_CONFIG``, else the default path; made absolute."""
    chosen = option or os.environ.get(ENV_CONFIG) or str(default_config_path())
    return Path(chosen).expanduser().absolute()


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no config file at {path} (create it, see docs/scheduling.md; or use "
                         f"--config FILE or {ENV_CONFIG})") from None
    except OSError as exc:  # strerror: the exception's text names the path again
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from exc
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([syntax_problem(path, exc)]) from None
    ctx = ReadContext(path, KeyLines(text))
    config = _read_config(TableReader(ctx, (), data), path)
    if ctx.problems:
        raise ConfigError(ctx.problems)
    return config


# ---- the sections ----------------------------------------------------------------------------


def _read_config(root: TableReader, path: Path) -> Config:
    base = path.parent
    config = Config(path)
    repos = root.table("repositories")
    jobs = root.table("jobs")
    monitoring = root.table("monitoring")
    if repos is not None:
        for name, table in repos.tables():
            if _valid_name(repos, name, "repository"):
                config.repositories[name] = _read_repository(table, name, base)
    if jobs is not None:
        folded: dict[str, str] = {}
        for name, table in jobs.tables():
            if not _valid_name(jobs, name, "job"):
                continue
            if (first := folded.setdefault(name.casefold(), name)) != name:
                # its lock and status files would be one on a case-insensitive file system
                jobs.problem(name, f"differs from job {first!r} only in case",
                             "give jobs names that differ in more than case")
                continue
            config.jobs[name] = _read_job(table, name, base, config.repositories)
    if monitoring is not None:
        config.monitoring = _read_monitoring(monitoring, base)
    if not config.jobs and jobs is None:
        root.problem("", "no [jobs.NAME] table", "see docs/scheduling.md for an example")
    root.finish()
    return config


def _valid_name(parent: TableReader, name: str, what: str) -> bool:
    if NAME_PATTERN.fullmatch(name):
        return True
    parent.problem(name, f"invalid {what} name",
                   f"use at most {MAX_NAME} letters, digits, '.', '_' and '-' (it becomes "
                   "part of file names)")
    return False


def _read_repository(r: TableReader, name: str, base: Path) -> RepositoryConfig:
    if r.raw("password") is not MISSING:
        r.problem("password", "a plaintext password is not accepted in the config file",
                  "use password_file, password_command or password_env")
    targets = _read_targets(r, base)
    repo = RepositoryConfig(name, targets)
    repo.password_file = _path_or_none(r.string("password_file"), base)
    repo.password_command = r.string("password_command")
    repo.password_env = r.string("password_env")
    given = [k for k in ("password_file", "password_command", "password_env") if r.has(k)]
    if len(given) > 1:
        r.problem(given[1], f"{' and '.join(given)} are both set", "keep only one of them")
    if r.has("min_targets"):
        repo.min_targets = r.integer("min_targets", len(targets) or 1, 1, max(len(targets), 1))
    repo.compression = r.integer("compression", DEFAULT_COMPRESSION, 0, 22)
    repo.limit_upload, repo.limit_download = (
        r.integer(key, 0, 0, MAX_LIMIT_KIB, hint="KiB/s; 0 for no limit") if r.has(key)
        else None
        for key in ("limit_upload", "limit_download"))
    repo.target_options = _read_target_options(r, targets, base)
    twice = repeated_target(targets, repo.target_options)  # an endpoint may tell two apart
    if twice:
        first, second = map(hide_password, twice)
        r.problem("targets", f"the same target is listed twice: {first!r} and {second!r}")
    r.finish()
    return repo


def _read_targets(r: TableReader, base: Path) -> list[str]:
    if not r.required("targets", '["/mnt/usb/fogvault"]'):
        return []
    given = r.strings("targets")
    for url in given:  # as given: an empty path would expand to the config file's folder
        try:
            check_url(url)
        except UsageError as exc:
            r.problem("targets", str(exc))
    targets = [_expand_target(t, base) for t in given]
    if r.data["targets"] == []:
        r.problem("targets", "no targets given", "add at least one path or URL")
    for url in targets:
        if urlsplit(url).password:
            r.problem("targets", f"{hide_password(url)} holds a password",
                      "remove it from the URL; use target_options password_env or _file")
    return targets


def _read_target_options(r: TableReader, targets: list[str], base: Path
                         ) -> dict[str, dict[str, Any]]:
    table = r.table("target_options")
    if table is None:
        return {}
    result: dict[str, dict[str, Any]] = {}
    for url, sub in table.tables():
        key = _expand_target(url, base)
        if key not in targets:
            close = difflib.get_close_matches(key, targets, n=1)
            table.problem(url, "these options name no target of this repository",
                          f"did you mean {close[0]!r}?" if close else "use a URL from targets")
            continue
        result[key] = _read_one_target(sub, base)
    table.finish()
    return result


def _check_size(r: TableReader, key: str, value: str) -> None:
    """A multipart threshold or part size: S3's smallest part at least, as the run requires."""
    try:
        size = parse_size(value)
    except UsageError as exc:
        r.problem(key, str(exc))
        return
    if size < MIN_PART_SIZE:
        r.problem(key, f"{value!r} is less than 5M, S3's smallest part", "e.g. \"16M\"")


def _read_one_target(r: TableReader, base: Path) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key in list(r.data):
        if key in PLAINTEXT_SECRETS:
            r.raw(key)
            ref = key if key in SECRET_REFS else "secret"
            r.problem(key, "plaintext credentials are not accepted in the config file",
                      f"use {ref}_env = \"VARIABLE\" or {ref}_file = \"/path/to/file\"")
    for name in SECRET_REFS:
        if (env := r.string(f"{name}_env")) is not None:
            options[f"{name}_env"] = env
        if (file := r.string(f"{name}_file")) is not None:
            options[f"{name}_file"] = _path_or_none(file, base)
    for name, kind in PLAIN_TARGET_OPTIONS.items():
        if kind == "paths":
            if values := r.strings(name):
                options[name] = [_expand_path(v, base) for v in values]
        elif kind == "seconds":
            if (seconds := r.seconds(name, 0.0, MAX_STALL_TIMEOUT)) > 0:
                options[name] = seconds
        elif (value := r.string(name)) is not None:
            options[name] = _expand_path(value, base) if kind == "path" else value
            if kind == "size":
                _check_size(r, name, value)
            elif kind == "http_url" and not is_http_url(value):  # as the run would refuse it
                r.problem(name, f"{value!r} is not an http:// or https:// URL")
    r.finish()
    return options


def _read_job(r: TableReader, name: str, base: Path, repos: dict[str, RepositoryConfig]
              ) -> JobConfig:
    job = JobConfig(name, _read_job_repository(r, repos), _read_paths(r, base))
    job.exclude = r.strings("exclude")
    job.exclude_files = [_expand_path(p, base)
                         for p in r.strings("exclude_file") + r.strings("exclude_files")]
    job.exclude_caches = r.boolean("exclude_caches")
    job.exclude_if_present = _read_markers(r)
    job.iexclude = r.strings("iexclude")
    if (size := r.string("exclude_larger_than")) is not None:
        try:
            job.exclude_larger_than = parse_size(size)
        except UsageError as exc:
            r.problem("exclude_larger_than", str(exc))
    job.one_file_system = r.boolean("one_file_system")
    job.skip_if_unchanged = r.boolean("skip_if_unchanged")
    job.no_flags = r.boolean("no_flags")
    job.ignore_ctime = r.boolean("ignore_ctime")
    job.ignore_inode = r.boolean("ignore_inode")
    job.tags = r.strings("tags")
    if any("," in tag for tag in job.tags):
        r.problem("tags", "a tag holds a comma", "write each tag as its own string: "
                  "tags = [\"a\", \"b\"]")
    job.host = r.string("host")
    job.schedule = _read_schedule(r, "schedule", parse_schedule)
    job.retention = _read_retention(r)
    job.prune = _read_schedule(r, "prune", parse_when)
    job.check = _read_schedule(r, "check", parse_when)
    job.check_read_data_subset = _read_subset(r, job.check is not None)
    hooks = r.table("hooks")
    if hooks is not None:
        job.hooks = _read_hooks(hooks)
    r.finish()
    return job


def _read_markers(r: TableReader) -> list[str]:
    """``exclude_if_present``: file names (a path or '.' would not name a file in the folder;
    an empty name, which would mark every folder, is refused as an empty string)."""
    markers = r.strings("exclude_if_present")
    for marker in markers:
        if "/" in marker or marker in (".", ".."):
            r.problem("exclude_if_present", f"{marker!r} is not a file name",
                      "give the name of a file in the folder, such as '.nobackup'")
            return []
    return markers


def _read_job_repository(r: TableReader, repos: dict[str, RepositoryConfig]) -> str:
    if not r.required("repository", '"NAME" (a [repositories.NAME] table)'):
        return ""
    name = r.string("repository") or ""
    if name and name not in repos:
        close = difflib.get_close_matches(name, list(repos), n=1)
        r.problem("repository", f"no repository {name!r} is defined",
                  f"did you mean {close[0]!r}?" if close else
                  f"add a [repositories.{name}] table")
    return name


def _read_paths(r: TableReader, base: Path) -> list[str]:
    if not r.required("paths", '["~/data"]'):
        return []
    paths = r.strings("paths")
    if r.data["paths"] == []:
        r.problem("paths", "no paths given", "list at least one file or folder to back up")
    return [_expand_path(p, base) for p in paths]


def _read_schedule(r: TableReader, key: str, parse: Callable[[Any], Schedule | None]
                   ) -> Schedule | None:
    value = r.raw(key)
    if value is MISSING:
        return None
    if not isinstance(value, str | bool) or (isinstance(value, bool) and key == "schedule"):
        r.problem(key, f"expected a schedule string, got {describe(value)}",
                  "e.g. \"daily\", \"30 2 * * *\" or \"every 10m\"")
        return None
    try:
        result: Schedule | None = parse(value)
    except ScheduleError as exc:
        r.problem(key, str(exc))
        return None
    return result


RETENTION_COUNT_KEYS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly",
                        "keep_monthly", "keep_yearly")
RETENTION_WITHIN_KEYS = ("keep_within", "keep_within_hourly", "keep_within_daily",
                         "keep_within_weekly", "keep_within_monthly", "keep_within_yearly")


def _read_retention(job: TableReader) -> RetentionPolicy | None:
    r = job.table("retention")
    if r is None:
        return None
    before = len(r.ctx.problems)
    values: dict[str, Any] = {k: r.integer(k, 0, -1, hint="use -1 for unlimited")
                              for k in RETENTION_COUNT_KEYS if r.has(k)}
    values |= {k: v for k in RETENTION_WITHIN_KEYS if (v := r.string(k)) is not None}
    if r.has("keep_tags"):
        values["keep_tags"] = tuple(r.strings("keep_tags"))
    r.finish()
    try:
        policy = RetentionPolicy(**values)
    except (UsageError, TypeError) as exc:
        job.problem("retention", str(exc), "durations look like '1y6m7d2h'")
        return None
    if policy.is_empty() and len(r.ctx.problems) == before:
        job.problem("retention", "the retention table sets no keep_* rule",
                    "add e.g. keep_daily = 7, or remove the table to skip forget")
        return None
    return policy




def _read_subset(r: TableReader, has_check: bool) -> str | None:
    value = r.string("check_read_data_subset")
    if value is None:
        return None
    try:
        chooser(value)
    except UsageError:
        r.problem("check_read_data_subset", f"{value!r} is not a subset", SUBSET_HINT)
        return None
    if not has_check:
        r.problem("check_read_data_subset", "has no effect without check",
                  "add check = \"monthly\" (or another schedule)")
    return value.strip()


def _read_hooks(r: TableReader) -> HooksConfig:
    hooks = HooksConfig(before=_commands(r, "before"), after=_commands(r, "after"),
                        on_failure=_commands(r, "on_failure"))
    hooks.timeout = r.seconds("timeout", DEFAULT_HOOK_TIMEOUT, MAX_HOOK_TIMEOUT)
    for key in ("ping_url", "ping_start", "ping_success", "ping_failure"):
        url = r.string(key)
        if url is not None and (wrong := _ping_url_problem(url)):
            r.problem(key, f"{url!r} {wrong}", "e.g. https://hc-ping.com/your-uuid")
            url = None
        setattr(hooks, key, url)
    hooks.ping_timeout = r.seconds("ping_timeout", DEFAULT_PING_TIMEOUT, MAX_PING_TIMEOUT)
    r.finish()
    return hooks


def _ping_url_problem(url: str) -> str | None:
    """What makes ``url`` no URL to ping, or None. A bad port is caught here: at run time it
    raised ValueError where only network errors are caught, and ended the job unexpectedly."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "is not an http(s) URL"
    if not parts.hostname:
        return "names no host"
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    if port == 0:
        return "has a bad port: use a number from 1 to 65535"
    return None


def _commands(r: TableReader, key: str) -> list[Command]:
    """A string (one shell command), or a list of shell-command strings and argv lists."""
    value = r.raw(key)
    if value is MISSING:
        return []
    items = [value] if isinstance(value, str) else value
    ok = isinstance(items, list) and all(_is_command(item) for item in items)
    if not ok:
        r.problem(key, f"expected a command string or a list of commands, got "
                  f"{describe(value)}", 'e.g. "mount /mnt/usb" or [["mount", "/mnt/usb"]]')
        return []
    if any(NUL in arg for item in items for arg in ([item] if isinstance(item, str) else item)):
        r.problem(key, NUL_PROBLEM)
        return []
    return list(items)


def _is_command(item: Any) -> bool:
    if isinstance(item, str):
        return bool(item.strip())
    return isinstance(item, list) and bool(item) and all(isinstance(a, str) for a in item)


def _read_monitoring(r: TableReader, base: Path) -> MonitoringConfig:
    run_log = r.string("run_log")
    metrics = r.string("metrics_file")
    r.finish()
    return MonitoringConfig(
        Path(_expand_path(run_log, base)) if run_log else None,
        Path(_expand_path(metrics, base)) if metrics else None,
    )


# ---- paths and secrets -----------------------------------------------------------------------


def _expand_path(path: str, base: Path) -> str:
    """``path`` absolute (relative to ``base``, the config file's folder) and without ``.`` or
    ``..``, as backup records its paths. ``base`` is taken with its symlinks resolved, as the
    file system does: ``../repo`` beside a config reached through a symlinked folder (a
    dotfile manager's link) names the folder beside the real one, as it did when it was given
    to the file system unnormalised."""
    return os.path.normpath(os.path.join(os.path.realpath(base), os.path.expanduser(path)))


def _path_or_none(path: str | None, base: Path) -> str | None:
    return _expand_path(path, base) if path else None


def _expand_target(target: str, base: Path) -> str:
    return target if "://" in target else _expand_path(target, base)


def _resolve_options(repo: str, url: str, options: dict[str, Any]) -> dict[str, Any]:
    resolved = {k: v for k, v in options.items() if k in PLAIN_TARGET_OPTIONS}
    for name, option in SECRET_REFS.items():
        if (var := options.get(f"{name}_env")) is not None:
            if var not in os.environ:
                raise UsageError(f"repository {repo}, target {url}: environment variable "
                                 f"{var} ({name}_env) is not set")
            resolved[option] = os.environ[var]
        if (file := options.get(f"{name}_file")) is not None:
            resolved[option] = _read_secret_file(repo, url, name, file)
    return resolved


def _read_secret_file(repo: str, url: str, name: str, path: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise UsageError(f"repository {repo}, target {url}: cannot read {name}_file "
                         f"{path}: {reason}") from exc
    if not value:
        raise UsageError(f"repository {repo}, target {url}: {name}_file {path} is empty")
    return value
