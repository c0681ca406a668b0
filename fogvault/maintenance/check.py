"""``check``: is every snapshot complete and every copy intact, on every target?

* Structure: every snapshot decodes; every tree and data blob it references is indexed
  (:mod:`fogvault.maintenance.mark`). Every live object (:mod:`fogvault.maintenance.inventory`:
  config, key files, snapshots, live index files, indexed packs) is on every target, packs with
  exactly the size their index entries imply.
* Metadata copies: the config, every key file, snapshot and index file is read from *every*
  target and verified (:func:`fogvault.maintenance.verify.verify_stored_copy`), so a copy
  damaged on one target is reported there even when reads fall back to a good copy elsewhere.
* Content (``read_data`` or a subset): every selected pack is read from every target, in pieces
  (:func:`fogvault.repo.pack.verify_pack`), and verified: its bytes hash to its name, its header
  parses, every blob authenticates and hashes to its id.

Key files the password opened at open time that wrap another master key
(``Repository.stray_keys``: left by an interrupted init, or by one that lost a race) are not
this repository's: they are listed in ``CheckResult.stray_keys``, not reported as missing or
damaged (opening already warned about them, with the command that removes them). A key file
not in use that is missing on some targets is reported missing there, with a warning that
says both ways out (repair copies it, ``key remove`` removes it), since nobody can tell without
its password whether it belongs to this repository.

Problems are reported per target, never repaired here (that is ``repair``); what is found is
remembered in ``TargetSet.damaged`` (which the CLI keeps in the ledger, so ``repair`` knows
what to replace without reading everything again). A target that cannot be reached is reported
as unreachable. Packs that no index lists are reported as notes: they cost space, not data
(``prune`` removes them).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain

from fogvault.errors import FogVaultError, UsageError
from fogvault.maintenance.inventory import Inventory, take_inventory
from fogvault.maintenance.mark import mark_used
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.verify import judge_key_copies, verify_stored_copy
from fogvault.parallel import ordered_map
from fogvault.repo.format import DATA_DIR, KEYS_DIR, SNAPSHOTS_DIR, key_name
from fogvault.repo.repository import Repository
from fogvault.targets import Target

log = logging.getLogger("fogvault")

#: concurrent reads per target while verifying copies (latency-bound on S3 and SFTP)
READERS = 8


@dataclass(slots=True)
class CheckOptions:
    read_data: bool = False
    read_data_subset: str | None = None  # "10%" or "n/m"


@dataclass(slots=True)
class TargetReport:
    url: str
    reachable: bool = True
    error: str | None = None  # why it is unreachable
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
    stray_keys: list[str] = field(default_factory=list)  # ids of another master key's key files

    @property
    def ok(self) -> bool:
        return not self.problems and all(t.ok for t in self.targets)


def check(
    repo: Repository, options: CheckOptions | None = None, progress: PhaseProgress | None = None
) -> CheckResult:
    options = options or CheckOptions()
    progress = progress or PhaseProgress()
    selector = _subset(options)
    with repo.lock(writes=False):
        repo.load_index()
        result = CheckResult(blobs=len(repo.index))
        snapshots = repo.snapshots()
        result.snapshots = len(snapshots)
        marked = mark_used(repo, snapshots, progress)
        result.trees = marked.trees
        result.problems += marked.problems
        inventory = take_inventory(repo)
        packs = inventory.live.packs
        result.packs = len(packs)
        chosen = bytearray(packs.capacity)  # a byte per pack number, not a name per pack
        for number in packs.numbers() if selector else ():
            chosen[number] = selector(packs.pack_id(number))
        stray = {key_name(k) for k in repo.stray_keys}
        result.stray_keys = sorted(n[len(KEYS_DIR):] for n in stray if inventory.holders(n))
        metadata = [n for n in inventory.live.metadata() if n not in stray]
        copies = _key_copies(repo, metadata)
        for target in repo.targets.targets:
            report = TargetReport(target.url)
            result.targets.append(report)
            if target.url not in inventory.listings:
                report.reachable, report.error = False, target.dropped or "unreachable"
                continue
            try:
                _check_target(repo, target, inventory, metadata, chosen, copies, report,
                              progress)
            except FogVaultError as exc:
                report.reachable, report.error = False, str(exc)
        result.problems += _undecided_keys(copies)
        _warn_of_partial_keys(repo, inventory, result)
    return result


def _check_target(
    repo: Repository,
    target: Target,
    inventory: Inventory,
    metadata: list[str],
    chosen: bytearray,
    key_copies: dict[str, dict[str, bytes]],
    report: TargetReport,
    progress: PhaseProgress,
) -> None:
    url = target.url
    listing = inventory.listings[url]
    live_keys = {n for n in metadata if n.startswith(KEYS_DIR)}  # the stray ones left out
    report.missing = [n for n in inventory.missing(url)
                      if not n.startswith(KEYS_DIR) or n in live_keys]
    report.wrong_size = inventory.wrong_size(url)
    report.unindexed_packs = sum(1 for n in inventory.extra(url) if n.startswith(DATA_DIR))
    held_metadata = [n for n in metadata if n in listing]

    def chosen_packs() -> Iterator[int]:  # held at the expected size: the others are reported
        return (n for n in listing.packs_as_expected() if chosen[n])

    report.packs_read = sum(1 for _ in chosen_packs())
    progress.phase(f"verify copies on {url}", len(held_metadata) + report.packs_read)
    names = chain(held_metadata, map(inventory.live.packs.name, chosen_packs()))

    def one(name: str) -> tuple[str, str | None]:
        try:
            if name in key_copies:  # a key file not in use: judged against its other copies
                _, bad = judge_key_copies(key_copies[name])
                return name, "differs from the other copies" if url in bad else None
            return name, verify_stored_copy(repo, target.storage, name, listing[name])
        finally:
            progress.advance()

    corrupt = []
    for name, problem in ordered_map(one, names, workers=READERS):
        if problem is None:
            repo.targets.forget_damage(url, name)
        else:
            corrupt.append(name)
    report.corrupt = sorted(corrupt)
    _leave_out_forgotten(repo, report)
    for name in report.missing + report.wrong_size + report.corrupt:
        repo.targets.remember_damage(url, name)


def _leave_out_forgotten(repo: Repository, report: TargetReport) -> None:
    """Leave out of the report the snapshots found missing or unreadable that are now gone from
    every target: a forget deleted them meanwhile (it runs under a shared lock, as check does),
    nothing was lost. Other objects are reported however they went: packs and index files are
    deleted only under the exclusive lock (prune), key files too (key remove, key passwd), and
    the config never."""
    suspects = {n for n in report.missing + report.corrupt if n.startswith(SNAPSHOTS_DIR)}
    gone = {n for n in suspects if repo.gone_everywhere(n)}
    report.missing = [n for n in report.missing if n not in gone]
    report.corrupt = [n for n in report.corrupt if n not in gone]
    for name in gone:  # remembered when a read found it gone
        repo.targets.forget_damage(report.url, name)


def _warn_of_partial_keys(repo: Repository, inventory: Inventory, result: CheckResult) -> None:
    """A warning for each key file not in use that some reachable targets lack: it may be a
    key of another password that missed a target, or one an interrupted init left there."""
    lacking: dict[str, list[str]] = {}
    for report in result.targets:
        for name in report.missing:
            if name.startswith(KEYS_DIR) and name != key_name(repo.key_id):
                lacking.setdefault(name, []).append(report.url)
    for name, urls in sorted(lacking.items()):
        key_id = name[len(KEYS_DIR):]
        log.warning("key file %s is on %s but not on %s: if another password opens this "
                    "repository with it, 'fogvault repair' copies it; if an interrupted init "
                    "left it, 'fogvault key remove %s' removes it", key_id,
                    ", ".join(inventory.holders(name)), ", ".join(urls), key_id)


def _key_copies(repo: Repository, metadata: list[str]) -> dict[str, dict[str, bytes]]:
    """Every copy of every key file of ``metadata`` but the one in use: url -> bytes, per
    name."""
    copies: dict[str, dict[str, bytes]] = {}
    for name in metadata:
        if not name.startswith(KEYS_DIR) or name[len(KEYS_DIR):] == repo.key_id:
            continue
        read = repo.targets.read_each(name)
        copies[name] = {t.url: data for t, data in read.items() if isinstance(data, bytes)}
    return copies


def _undecided_keys(copies: dict[str, dict[str, bytes]]) -> list[str]:
    """Key files no copy of which can be told good: none is a key file, or they differ."""
    problems = []
    for name, by_url in copies.items():
        good, bad = judge_key_copies(by_url)
        if good is not None or not by_url:
            continue
        if bad == by_url.keys():
            key_id = name[len(KEYS_DIR):]
            problems.append(f"{name} is not a readable key file on any target that holds it; "
                            f"'fogvault key remove {key_id}' removes it")
        else:
            problems.append(f"the copies of key file {name} differ and none is in the majority")
    return problems


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

