"""``tag``: change the tags of existing snapshots (restic's ``tag``).

A snapshot manifest is never changed in place: a write of one object to several targets is not
atomic across them, and create-only writes are what keeps two writers from replacing each
other's objects. So a retagged snapshot is written anew, with a new uid and everything else as
it was (time, host, paths, tree, parent, the version of the program that wrote its trees), to
the targets that hold the old one (a snapshot that a k-of-N backup left on some targets stays
on those), and then the old manifest is deleted, as restic does. If the process dies in
between, both manifests remain, the old tags on one and the new ones on the other; nothing is
lost, and the old one can be forgotten by uid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from fogvault.errors import FogVaultError, UsageError
from fogvault.maintenance.selection import check_selection, chosen_snapshots
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, new_uid, refuse_commas


@dataclass(slots=True)
class TagChange:
    old_uid: str
    new_uid: str  # the uid it would get, in a dry run
    tags: list[str]


@dataclass(slots=True)
class TagResult:
    changed: list[TagChange] = field(default_factory=list)
    unchanged: int = 0  # selected snapshots whose tags were already as asked
    dry_run: bool = False


@dataclass(slots=True)
class TagOptions:
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    set: list[str] | None = None  # replace every tag with these (an empty list: no tags)
    uids: list[str] = field(default_factory=list)  # none: every snapshot the filters select
    host: str | None = None
    tags: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    dry_run: bool = False

    def validate(self) -> None:
        if self.set is not None and (self.add or self.remove):
            raise UsageError("--set cannot be combined with --add or --remove")
        if self.set is None and not (self.add or self.remove):
            raise UsageError("nothing to change: give --add, --remove or --set")
        if any(not t for t in [*self.add, *self.remove, *(self.set or [])]):
            raise UsageError("a tag cannot be empty")
        refuse_commas([*self.add, *(self.set or [])])  # --remove takes an older one off
        check_selection(self.uids, self.host, self.tags, self.paths)

    def new_tags(self, tags: Iterable[str]) -> list[str]:
        kept = set(tags) if self.set is None else set(self.set)
        return sorted((kept | set(self.add)) - set(self.remove))


def tag(repo: Repository, options: TagOptions) -> TagResult:
    """Retag the snapshots named by ``options.uids`` (prefixes allowed), or else every one the
    filters select (all, without filters). The caller holds a shared lock."""
    options.validate()
    chosen = chosen_snapshots(repo, options.uids, options.host, options.tags, options.paths)
    result = TagResult(dry_run=options.dry_run)
    locations = repo.snapshot_locations() if chosen and not options.dry_run else {}
    for snapshot in chosen:
        tags = options.new_tags(snapshot.tags)
        if tags == sorted(snapshot.tags):
            result.unchanged += 1
            continue
        # the same contents: `copy` knows it for what it was made from (as restic's tag does)
        retagged = dataclasses.replace(snapshot, uid=new_uid(), tags=tags,
                                       original=snapshot.original or snapshot.uid)
        if not options.dry_run:
            _replace(repo, snapshot, retagged, locations.get(snapshot.uid, []))
        result.changed.append(TagChange(snapshot.uid, retagged.uid, tags))
    return result


def _replace(repo: Repository, old: Snapshot, new: Snapshot, holders: list[str]) -> None:
    """Write ``new`` to the targets that hold ``old`` (and so its data), then delete ``old``:
    never a moment without either. A target whose write failed is dropped, so the deletion
    leaves ``old`` there; one that never held ``old`` does not get ``new``."""
    where = [t for t in repo.targets.active() if t.url in holders]
    if not where:
        raise FogVaultError(f"snapshot {old.uid} is on no reachable target; nothing changed")
    repo.save_snapshot_copy(new, where)
    repo.delete_snapshot(old.uid)
