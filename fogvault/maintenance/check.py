"""``check``: is every snapshot complete and every copy intact, on every target?

* Structure: every snapshot decodes; every tree and data blob it references is indexed
  (:mod:`fogvault.maintenance.mark`); every index file is on every target; every indexed pack
  exists on every target with exactly the size its index entries imply.
* Content (``read_data`` or a subset): every selected pack is read from every target and
  verified: its bytes hash to its name, its header parses, every blob authenticates and hashes
  to its id.

Problems are reported per target, never repaired here (that is ``repair``). Packs that no
index lists are reported as notes: they cost space, not data (``prune`` removes them).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass, field

from fogvault.errors import FogVaultError, UsageError
from fogvault.maintenance.mark import mark_used
from fogvault.maintenance.progress import PhaseProgress
from fogvault.repo.format import DATA_DIR, INDEX_DIR, index_name, pack_name
from fogvault.repo.pack import PackEntry, expected_pack_size
from fogvault.repo.repository import Repository
from fogvault.storage import Storage


@dataclass(slots=True)
class CheckOptions:
    read_data: bool = False
    read_data_subset: str | None = None  # "10%" or "n/m"


@dataclass(slots=True)
class TargetReport:
    url: str
    reachable: bool = True
    missing: list[str] = field(default_factory=list)  # object names absent here
    wrong_size: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)  # failed verification when read
    unindexed_packs: int = 0
    packs_read: int = 0

    @property
    def ok(self) -> bool:
        return self.reachable and not (self.missing or self.wrong_size or self.corrupt)


@dataclass(slots=True)
class CheckResult:
    snapshots: int = 0
    trees: int = 0
    blobs: int = 0
    packs: int = 0
    problems: list[str] = field(default_factory=list)  # repository-wide (missing data)
    targets: list[TargetReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(t.ok for t in self.targets)


def check(
    repo: Repository, options: CheckOptions | None = None, progress: PhaseProgress | None = None
) -> CheckResult:
    options = options or CheckOptions()
    progress = progress or PhaseProgress()
    selector = _subset(options)
    with repo.lock():
        repo.load_index()
        result = CheckResult(blobs=len(repo.index))
        snapshots = repo.snapshots()
        result.snapshots = len(snapshots)
        marked = mark_used(repo, snapshots, progress)
        result.trees = marked.trees
        result.problems += marked.problems
        packs = _packs(repo)
        result.packs = len(packs)
        chosen = sorted(p for p in packs if selector(p)) if selector else []
        for storage in repo.targets.storages:
            report = TargetReport(storage.url)
            result.targets.append(report)
            try:
                _check_target(repo, storage, packs, chosen, report, progress)
            except FogVaultError as exc:
                report.reachable = False
                report.missing.append(f"target unusable: {exc}")
    return result


def _packs(repo: Repository) -> dict[bytes, list[PackEntry]]:
    packs: dict[bytes, list[PackEntry]] = defaultdict(list)
    for entry in repo.index:
        packs[entry.pack_id].append(entry.pack_entry())
    return packs


def _check_target(
    repo: Repository,
    storage: Storage,
    packs: dict[bytes, list[PackEntry]],
    chosen: list[bytes],
    report: TargetReport,
    progress: PhaseProgress,
) -> None:
    index_names = {info.name for info in storage.list(INDEX_DIR)}
    report.missing += sorted(index_name(i) for i in repo.index_ids()
                             if index_name(i) not in index_names)
    sizes = {info.name: info.size for info in storage.list(DATA_DIR)}
    progress.phase(f"packs on {storage.url}", len(packs))
    for pack_id, entries in packs.items():
        name = pack_name(pack_id)
        if name not in sizes:
            report.missing.append(name)
        elif sizes[name] != expected_pack_size(entries):
            report.wrong_size.append(name)
        progress.advance()
    indexed = {pack_name(p) for p in packs}
    report.unindexed_packs = sum(1 for n in sizes if n not in indexed)
    progress.phase(f"read data on {storage.url}", len(chosen))
    for pack_id in chosen:
        name = pack_name(pack_id)
        if name in sizes:
            problem = repo.verify_pack(pack_id, storage)
            report.packs_read += 1
            if problem is not None and name not in report.wrong_size:
                report.corrupt.append(name)
        progress.advance()


def _subset(options: CheckOptions):
    """A predicate choosing the packs whose content is read, or None to read none."""
    spec = options.read_data_subset
    if options.read_data or spec in ("100%",):
        return lambda pack_id: True
    if not spec:
        return None
    if match := re.fullmatch(r"(\d+(?:\.\d+)?)%", spec):
        share = float(match.group(1)) / 100
        if not 0 < share <= 1:
            raise UsageError("--read-data-subset percentage must be in (0, 100]")
        rng = random.Random()
        return lambda pack_id: rng.random() < share
    if match := re.fullmatch(r"(\d+)/(\d+)", spec):
        n, m = int(match.group(1)), int(match.group(2))
        if not 1 <= n <= m:
            raise UsageError("--read-data-subset n/m needs 1 <= n <= m")
        return lambda pack_id: int.from_bytes(pack_id[:4], "big") % m == n - 1
    raise UsageError("--read-data-subset takes a percentage (5%) or a group (n/m)")

