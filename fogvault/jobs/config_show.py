"""The effective jobs config as a document and as TOML, for ``fogvault config show``."""

from __future__ import annotations

import json
from typing import Any

from fogvault.host import hostname
from fogvault.jobs.config import (
    RETENTION_COUNT_KEYS,
    RETENTION_WITHIN_KEYS,
    Config,
    JobConfig,
    RepositoryConfig,
)
from fogvault.jobs.toml_reader import dotted
from fogvault.maintenance.retention import RetentionPolicy


def effective_document(config: Config) -> dict[str, Any]:
    """The config as it is in effect: defaults filled in, paths expanded; no secrets (the file
    holds none)."""
    from fogvault.jobs.status import run_log_path

    return {
        "config_file": str(config.path),
        "repositories": {name: _repository_document(r)
                         for name, r in config.repositories.items()},
        "jobs": {name: _job_document(j) for name, j in config.jobs.items()},
        "monitoring": {"run_log": str(run_log_path(config)),
                       "metrics_file": str(config.monitoring.metrics_file or "")},
    }


def _repository_document(repo: RepositoryConfig) -> dict[str, Any]:
    password = {k: v for k in ("password_file", "password_command", "password_env")
                if (v := getattr(repo, k))}
    return {
        "targets": repo.targets, **password,
        "password_source": "config" if password else "environment (FOGVAULT_PASSWORD*)",
        "min_targets": repo.effective_min_targets(), "compression": repo.compression,
        **({"target_options": repo.target_options} if repo.target_options else {}),
        **{key: value for key in ("limit_upload", "limit_download")
           if (value := getattr(repo, key)) is not None},
    }


def _job_document(job: JobConfig) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "repository": job.repository, "paths": job.paths, "exclude": job.exclude,
        "exclude_files": job.exclude_files, "exclude_caches": job.exclude_caches,
        "exclude_if_present": job.exclude_if_present, "iexclude": job.iexclude,
        "one_file_system": job.one_file_system, "skip_if_unchanged": job.skip_if_unchanged,
        "no_flags": job.no_flags, "ignore_ctime": job.ignore_ctime,
        "ignore_inode": job.ignore_inode,
        "tags": job.tags, "host": job.host or hostname(),
        "schedule": job.schedule.text if job.schedule else "(none: run by hand)",
        "prune": job.prune.text if job.prune else "never",
        "check": job.check.text if job.check else "never",
    }
    if job.exclude_larger_than is not None:
        doc["exclude_larger_than"] = str(job.exclude_larger_than)  # bytes, as a size
    if job.check_read_data_subset:
        doc["check_read_data_subset"] = job.check_read_data_subset
    if job.retention is not None:
        doc["retention"] = _retention_document(job.retention)
    hooks = job.hooks
    doc["hooks"] = {k: v for k, v in (
        ("before", hooks.before), ("after", hooks.after), ("on_failure", hooks.on_failure),
        ("timeout", hooks.timeout), ("ping_url", hooks.ping_url),
        ("ping_start", hooks.ping_start), ("ping_success", hooks.ping_success),
        ("ping_failure", hooks.ping_failure), ("ping_timeout", hooks.ping_timeout),
    ) if v not in (None, [])}
    return doc


def _retention_document(policy: RetentionPolicy) -> dict[str, Any]:
    doc: dict[str, Any] = {k: v for k in RETENTION_COUNT_KEYS if (v := getattr(policy, k))}
    doc |= {k: str(v) for k in RETENTION_WITHIN_KEYS if not (v := getattr(policy, k)).is_zero()}
    if policy.keep_tags:
        doc["keep_tags"] = list(policy.keep_tags)
    doc["summary"] = policy.describe()
    return doc


def dump_toml(document: dict[str, Any]) -> str:
    """TOML for nested dicts of strings, numbers, booleans and lists (empty strings left out)."""
    lines: list[str] = []
    _dump_table(document, (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _dump_table(table: dict[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict) and v != ""}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines += ["", f"[{dotted(path)}]"]
    lines += [f"{dotted((k,))} = {_toml_value(v)}" for k, v in scalars.items()]
    for key, sub in tables.items():
        _dump_table(sub, (*path, key), lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))
