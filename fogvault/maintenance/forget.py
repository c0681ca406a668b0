"""``forget``: remove snapshot manifests chosen by uid or by a retention policy.

Only manifests are removed; the data they used stays until ``prune``. Refuses an empty policy
without uids (it would keep everything, and a user who typed it surely meant something else),
and refuses to empty a group by policy alone (restic's rule: a group keeps at least one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from fogvault.errors import FogVaultError, UsageError
from fogvault.maintenance.retention import GroupResult, RetentionPolicy, apply_policy
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, select_snapshots


@dataclass(slots=True)
class ForgetResult:
    groups: list[GroupResult[Snapshot]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # uids, removed or (dry run) to remove
    #: the snapshots named by uid -> their time (None: the snapshot could not be read, which
    #: does not keep it from being forgotten)
    named: dict[str, datetime | None] = field(default_factory=dict)
    dry_run: bool = False


def forget(
    repo: Repository,
    policy: RetentionPolicy | None = None,
    *,
    uids: Iterable[str] = (),
    host: str | None = None,
    tags: Iterable[str] = (),
    paths: Iterable[str] = (),
    group_by: str | Iterable[str] = ("host", "paths"),
    tz: tzinfo | None = None,
    dry_run: bool = False,
) -> ForgetResult:
    """Forget the snapshots named by ``uids`` (prefixes allowed) and those ``policy`` drops
    from the rest: the policy decides among the snapshots that are not named, so that what it
    reports as kept is kept."""
    explicit = [repo.resolve_snapshot(u) for u in uids]
    if not explicit and (policy is None or policy.is_empty()):
        raise UsageError("no snapshots named and no keep rule set (a rule of 0 is off): "
                         "refusing to forget anything")
    removed = dict.fromkeys(explicit)  # ordered, and a member test that is not a list scan
    result = ForgetResult(named={uid: _time_of(repo, uid) for uid in removed}, dry_run=dry_run)
    if policy is not None and not policy.is_empty():
        chosen = [s for s in select_snapshots(repo.snapshots(), host, tags, paths)
                  if s.uid not in removed]
        result.groups = apply_policy(chosen, policy, group_by=group_by, tz=tz)
        for group in result.groups:
            if group.removes_all:
                raise UsageError(
                    f"the policy would remove every snapshot of {group.describe()}; refusing"
                )
            removed.update(dict.fromkeys(s.uid for s in group.remove))
    result.removed = list(removed)
    if not dry_run:
        for uid in result.removed:
            repo.delete_snapshot(uid)
    return result


def _time_of(repo: Repository, uid: str) -> datetime | None:
    """The time of snapshot ``uid`` for the report, or None if it cannot be read (a damaged
    snapshot is forgotten all the same: that is one way out of it)."""
    try:
        return repo.load_snapshot(uid).time
    except FogVaultError:
        return None
