"""FogVault: versioned, deduplicating, encrypted backups to several targets at once.

The names below are the library API (docs/api.md); the CLI is a shell over them. They are
imported when first used, so that ``import fogvault`` (and every CLI command, which imports
this package first) stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it
_API = {
    "Repository": "fogvault.repo.repository",
    "RepoConfig": "fogvault.repo.config",
    "Snapshot": "fogvault.repo.snapshot",
    "TargetPolicy": "fogvault.targets.policy",
    "Archiver": "fogvault.backup.archiver",
    "BackupOptions": "fogvault.backup.archiver",
    "BackupResult": "fogvault.backup.archiver",
    "ExcludeRules": "fogvault.backup.excludes",
    "DescriptorSource": "fogvault.backup.stream_source",
    "CommandSource": "fogvault.backup.stream_source",
    "Restorer": "fogvault.restore.restorer",
    "RestoreOptions": "fogvault.restore.restorer",
    "RestoreSummary": "fogvault.restore.restorer",
    "RetentionPolicy": "fogvault.maintenance.retention",
    "apply_policy": "fogvault.maintenance.retention",
    "forget": "fogvault.maintenance.forget",
    "ForgetResult": "fogvault.maintenance.forget",
    "tag": "fogvault.maintenance.tag",
    "TagOptions": "fogvault.maintenance.tag",
    "TagResult": "fogvault.maintenance.tag",
    "rewrite": "fogvault.maintenance.rewrite",
    "RewriteOptions": "fogvault.maintenance.rewrite",
    "RewriteResult": "fogvault.maintenance.rewrite",
    "copy": "fogvault.maintenance.copy",
    "CopyOptions": "fogvault.maintenance.copy",
    "CopyResult": "fogvault.maintenance.copy",
    "prune": "fogvault.maintenance.prune",
    "PruneOptions": "fogvault.maintenance.prune",
    "PruneResult": "fogvault.maintenance.prune",
    "check": "fogvault.maintenance.check",
    "CheckOptions": "fogvault.maintenance.check",
    "CheckResult": "fogvault.maintenance.check",
    "repair": "fogvault.maintenance.repair",
    "RepairOptions": "fogvault.maintenance.repair",
    "RepairResult": "fogvault.maintenance.repair",
    "repair_snapshots": "fogvault.maintenance.repair_snapshots",
    "RepairSnapshotsOptions": "fogvault.maintenance.repair_snapshots",
    "RepairSnapshotsResult": "fogvault.maintenance.repair_snapshots",
    "BackupProgress": "fogvault.backup.progress",
    "RestoreProgress": "fogvault.restore.progress",
    "PhaseProgress": "fogvault.maintenance.progress",
    "KDF_PROFILES": "fogvault.crypto",
    "exit_code_for": "fogvault.errors",
    "FogVaultError": "fogvault.errors",
    "UsageError": "fogvault.errors",
    "WrongPassword": "fogvault.errors",
    "RepositoryNotFound": "fogvault.errors",
    "RepositoryExists": "fogvault.errors",
    "LockError": "fogvault.errors",
    "IntegrityError": "fogvault.errors",
    "SnapshotNotFound": "fogvault.errors",
    "AmbiguousPrefix": "fogvault.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'fogvault' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))

