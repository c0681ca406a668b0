"""``check``: is every snapshot complete and every copy intact, on every target?

* Structure: every snapshot decodes; every tree and data blob it references is indexed
  (:mod:`fogvault.maintenance.mark`); one that is not, or a tree that does not load, is one
  problem naming every snapshot that uses it (the first few in its line, all of them in
  ``CheckResult.broken_objects``). Every live object (:mod:`fogvault.maintenance.inventory`:
  config, key files, snapshots, live index files, indexed packs) is on every target, packs with
  exactly the size their index entries imply. Trees are read from the targets, never from the
  local cache's copies of tree packs, which would hide a tree damaged or lost on the targets.
* Metadata copies: the config, every key file, snapshot and index file is read from *every*
  target and verified (:func:`fogvault.maintenance.verify.stored_copy_problem`), so a copy
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
(``prune`` removes them), and so are other objects under ``data/``, which prune leaves
(:class:`~fogvault.maintenance.inventory.UnlistedData`).

A copy that cannot be read at all (permission denied, an I/O error: see
:func:`~fogvault.maintenance.verify.stored_copy_problem`) is reported as *unreadable* on its
target (``TargetReport.unreadable``, with the reason), not as corrupt: its bytes were never
judged, and it may be intact. So it is not remembered as damage (no read remembers a copy it
could not read: :class:`~fogvault.targets.replicated.TargetSet`), and ``repair`` does not act
on it unasked; check fails all the same, with a problem that says what to do: fix access there
and check again, or run ``repair --read-data``, which replaces any copy it cannot verify from a
good one. A pack that no target could read is not one that every target lacks or holds damaged:
it is not named for ``repair --index`` (which would keep it anyway, as it reads every copy
again first). Without ``read_data``, a tree is read from the first target that gives it: a tree
pack's copy that no target could read is reported on each target, one read from another target
instead is a warning only (which target is tried first follows measured speed: the result must
not).

Two states are reported as what they most likely are, not as what they look like:

* A pack that every target lacks or holds damaged (every target reached) is a problem naming
  ``repair --index``, which takes it out of the index so that a backup can store its data
  again.
* An index file that no target holds a good copy of (loading skips it with a warning) is
  corrupt on every target that holds it, with a problem naming ``repair --index``, which lists
  its packs again from their headers and then deletes it. If a copy could not be read (it is
  unreadable there), the problem says to fix access to it first (``repair --index`` does not
  delete it until no copy is left unread).
* A snapshot that only some targets hold and whose data the index lacks was most likely
  forgotten, and its data pruned, while those targets were away (``repair`` says the same and
  will not spread it): it is a problem naming ``forget``, not an object missing on the targets
  that deleted it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain

from fogvault.errors import FogVaultError, UsageError
from fogvault.maintenance.inventory import Inventory, take_inventory, unlisted_data
from fogvault.maintenance.mark import BrokenObject, mark_used
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.reindex import (
    looks_forgotten,
    packs_meant_to_go,
    unindexed_data_may_be_found,
)
from fogvault.maintenance.subset import Chooser, chooser
from fogvault.maintenance.verify import (
    CopyProblem,
    damaged_index_files,
    judge_key_copies,
    read_problem,
    stored_copy_problem,
)
from fogvault.parallel import ordered_map
from fogvault.repo.format import (
    DATA_DIR,
    INDEX_DIR,
    KEYS_DIR,
    SNAPSHOTS_DIR,
    id_from_name,
    key_name,
    pack_name,
    snapshot_name,
)
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot
from fogvault.storage import StorageError
from fogvault.targets import Target

log = logging.getLogger("fogvault")

#: concurrent reads per target while verifying copies (latency-bound on S3 and SFTP)
READERS = 8
#: snapshots named in the problem of a tree or blob that more use (JSON has them all)
SNAPSHOTS_NAMED = 3

#: url -> the bytes of its copy of a key file, or the error that kept it from being read
KeyCopies = dict[str, bytes | StorageError]


@dataclass(slots=True)
class CheckOptions:
    read_data: bool = False
    read_data_subset: str | None = None  # "n/m", "10%" or a size (see subset)


@dataclass(slots=True)
class TargetReport:
    url: str
    reachable: bool = True
    error: str | None = None  # why it is unreachable
    missing: list[str] = field(default_factory=list)  # object names absent here
    wrong_size: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)  # failed verification when read
    #: name -> why it could not be read (permission denied, I/O error): not judged, not damage
    unreadable: dict[str, str] = field(default_factory=dict)
    unindexed_packs: int = 0  # objects named as packs that no index lists: prune deletes them
    unindexed_pruned: int = 0  # ...of which a prune or forget deleted elsewhere (stay unlisted)
    misplaced: list[str] = field(default_factory=list)  # live packs' copies in another folder
    foreign: list[str] = field(default_factory=list)  # under data/, not named as packs
    packs_read: int = 0
    #: the missing, wrong-size and corrupt copies here of which another target may hold a good
    #: copy, or the local cache holds one: 'repair' copies them here, each once what it needs
    #: is (an index file once the packs it lists are, a snapshot once the index is)
    recoverable: list[str] = field(default_factory=list)

    @property
    def damaged(self) -> bool:
        return bool(self.missing or self.wrong_size or self.corrupt)

    @property
    def ok(self) -> bool:
        return self.reachable and not (self.damaged or self.unreadable)


@dataclass(slots=True)
class CheckResult:
    snapshots: int = 0
    trees: int = 0
    blobs: int = 0
    packs: int = 0
    problems: list[str] = field(default_factory=list)  # repository-wide (missing data)
    targets: list[TargetReport] = field(default_factory=list)
    stray_keys: list[str] = field(default_factory=list)  # ids of another master key's key files
    data_missing: bool = False  # a snapshot held everywhere lacks data: packs may hold it
    #: some of that is still listed by the index (a tree whose pack no target gave intact):
    #: 'repair' may copy it from the cache, 'repair --index' takes it out; else only a backup
    #: of the same files or 'repair --snapshots' is left
    missing_data_indexed: bool = False
    forgotten: list[str] = field(default_factory=list)  # uids forgotten while a target was away
    damaged_index_files: list[str] = field(default_factory=list)  # no good copy anywhere
    #: trees and data the snapshots use that the index lacks or that did not load, each with
    #: every snapshot using it (those of snapshots called forgotten left out)
    broken_objects: list[BrokenObject] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(t.ok for t in self.targets)


def check(
    repo: Repository, options: CheckOptions | None = None, progress: PhaseProgress | None = None
) -> CheckResult:
    options = options or CheckOptions()
    progress = progress or PhaseProgress()
    selector = _subset(options)
    # Trees from the targets: a good copy in the local cache must not hide a damaged one there.
    with repo.lock(writes=False), repo.trees_from_targets():
        repo.load_index()
        result = CheckResult(blobs=len(repo.index))
        snapshots = repo.snapshots()
        result.snapshots = len(snapshots)
        inventory = take_inventory(repo)
        pruned = packs_meant_to_go(repo, inventory)  # listed by superseded index files
        _mark(repo, snapshots, inventory, result, progress, pruned,
              may_be_found=unindexed_data_may_be_found(repo, inventory))
        damaged_index = damaged_index_files(repo, inventory)
        result.damaged_index_files = sorted(damaged_index)
        result.problems += map(_index_file_problem, damaged_index.items())
        packs = inventory.live.packs
        result.packs = len(packs)
        chosen = bytearray(packs.capacity)  # a byte per pack number, not a name per pack
        for number in selector(packs) if selector is not None else ():
            chosen[number] = 1
        stray = {key_name(k) for k in repo.stray_keys}
        result.stray_keys = sorted(n[len(KEYS_DIR):] for n in stray if inventory.holders(n))
        metadata = [n for n in inventory.live.metadata() if n not in stray]
        copies = _key_copies(repo, metadata)
        unread_trees = _unread_tree_copies(repo, result.broken_objects)
        for target in repo.targets.targets:
            report = TargetReport(target.url)
            result.targets.append(report)
            if target.url not in inventory.listings:
                report.reachable, report.error = False, target.dropped or "unreachable"
                continue
            report.unreadable = dict(unread_trees.get(target.url, {}))
            try:
                _check_target(repo, target, inventory, metadata, chosen, copies, report,
                              progress)
            except FogVaultError as exc:
                report.reachable, report.error = False, str(exc)
                continue
            _sort_unlisted(repo, inventory, pruned, report)
            _leave_out_forgotten_here(repo, result, report)
            _add_index_file_copies(repo, damaged_index, report)
        has_good_copy = _good_copy_finder(repo, result.targets)
        for report in result.targets:
            report.recoverable = [n for n in (*report.missing, *report.wrong_size,
                                              *report.corrupt) if has_good_copy(report, n)]
        result.problems += _unreadable_problems(result.targets, set(damaged_index),
                                                has_good_copy)
        result.problems += _lost_packs(repo, result.targets)
        result.problems += _undecided_keys(copies)
        _warn_of_partial_keys(repo, inventory, result)
    return result


def _index_file_problem(damaged: tuple[str, dict[str, CopyProblem]]) -> str:
    """The problem of an index file that no target gave a good copy of, with the way out."""
    name, copies = damaged
    found = f"({'; '.join(f'{url}: {why}' for url, why in copies.items())})"
    relist = ("'fogvault repair --index' lists its packs again from their headers and then "
              "deletes it")
    if not any(problem.unreadable for problem in copies.values()):
        return f"index file {name} is damaged on every target that holds it {found}: {relist}"
    return (f"no target gave a good copy of index file {name} {found}: fix access to it where "
            "it could not be read, then check again; meanwhile 'fogvault repair --index' lists "
            "its packs again from their headers, and deletes it once no copy of it is left "
            "unread (delete by hand a copy that can never be read, on a failing disk)")


def _add_index_file_copies(repo: Repository, damaged: dict[str, dict[str, CopyProblem]],
                           report: TargetReport) -> None:
    """Report the target's copies of the index files no target gave a good copy of: as
    unreadable, or as corrupt (remembered as damage)."""
    for name, copies in damaged.items():
        problem = copies.get(report.url)
        if problem is None:
            continue
        if problem.unreadable:
            report.unreadable = dict(sorted({**report.unreadable, name: problem.reason}.items()))
        else:
            report.corrupt = sorted({*report.corrupt, name})
            repo.targets.remember_damage(report.url, name)


def _unread_tree_copies(repo: Repository, broken: list[BrokenObject]
                        ) -> dict[str, dict[str, str]]:
    """url -> {name: why} of the copies of the tree packs whose trees did not load that could
    not be read: no target gave a good copy, so each was tried (a read tries every target until
    one works). A copy that could not be read while another target's was read instead is not
    among them: a plain check does not read every target's copy of a tree, so which one it
    tried first would decide the exit code (``--read-data`` reads them all). Snapshots and
    index files are read from every target by :func:`_check_target`."""
    packs = set()
    for tree in (b for b in broken if b.kind == "tree"):
        entry = repo.index.get(bytes.fromhex(tree.id))
        if entry is not None:
            packs.add(pack_name(entry.pack_id))
    unread: dict[str, dict[str, str]] = {}
    for (url, name), why in sorted(repo.targets.unreadable_copies().items()):
        if name in packs:
            unread.setdefault(url, {})[name] = why
    return unread


GoodCopyFinder = Callable[[TargetReport, str], bool]


def _good_copy_finder(repo: Repository, reports: list[TargetReport]) -> GoodCopyFinder:
    """Whether a good copy of a name, for the copy a report's target holds, may be found on
    another target (:func:`_may_hold_good_copy`) or is in the local cache (a tree pack or an
    index file, hashed once per name)."""
    cached: dict[str, bool] = {}

    def in_cache(name: str) -> bool:
        if name not in cached:
            cached[name] = (name.startswith((DATA_DIR, INDEX_DIR))
                            and repo.cached_copy(name) is not None)
        return cached[name]

    def has_good_copy(report: TargetReport, name: str) -> bool:
        return any(_may_hold_good_copy(other, name) for other in reports
                   if other is not report) or in_cache(name)

    return has_good_copy


def _unreadable_problems(reports: list[TargetReport], covered: set[str],
                         has_good_copy: GoodCopyFinder) -> list[str]:
    """The problem of each target some copies of which could not be read, with what to do:
    'repair' only if another target may hold a good copy of one of them, or the local cache
    holds one (with --read-data if one is a pack: a plain repair reads the other objects, not
    the packs). Names ``covered`` by a problem of their own (an index file no target gave a
    good copy of) are left out."""
    problems = []
    for report in reports:
        names = {name: why for name, why in report.unreadable.items() if name not in covered}
        if not names:
            continue
        (first, why), count = next(iter(names.items())), len(names)
        what, it = ((f"{first} could not be read ({why})", "it") if count == 1 else
                    (f"{count} copies could not be read ({first}: {why}, ...)", "them"))
        problem = (f"{report.url}: {what}: check could not verify {it}, which may be intact: "
                   f"fix access to {it} there, then check again")
        if any(has_good_copy(report, name) for name in names):
            repair = ("repair --read-data" if any(n.startswith(DATA_DIR) for n in names)
                      else "repair")
            problem += (f"; 'fogvault {repair}' would instead replace {it} from good copies "
                        "on the other targets or in the local cache, if they hold any")
        problems.append(problem)
    return problems


def _may_hold_good_copy(report: TargetReport, name: str) -> bool:
    """Whether ``report``'s target may hold a good copy of ``name``: it was reached, and its
    copy is not known to be missing, damaged or unreadable."""
    return report.reachable and name not in report.unreadable and not any(
        name in names for names in (report.missing, report.wrong_size, report.corrupt))


def _lost_packs(repo: Repository, reports: list[TargetReport]) -> list[str]:
    """A problem for each pack that every target lacks or holds damaged, if every target was
    reached, with the way out: ``repair`` if the local cache holds a good copy (a tree pack),
    else ``repair --index``. A copy that could not be read is neither: the pack may be
    intact there."""
    if not all(report.reachable for report in reports):
        return []
    bad = [{n for n in (*r.missing, *r.wrong_size, *r.corrupt) if n.startswith(DATA_DIR)}
           for r in reports]
    problems = []
    for name in sorted(set.intersection(*bad)):
        if repo.cached_copy(name) is not None:
            way_out = "the local cache holds a good copy, which 'fogvault repair' copies back"
        else:
            way_out = ("'fogvault repair --index' takes it out of the index (keeping what "
                       "still reads of it), so that the next backup stores its data again")
        problems.append(f"pack {name} is missing or damaged on every target: {way_out}")
    return problems


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
    held_metadata = [n for n in metadata if n in listing]

    def chosen_packs() -> Iterator[int]:  # held at the expected size: the others are reported
        return (n for n in listing.packs_as_expected() if chosen[n])

    report.packs_read = sum(1 for _ in chosen_packs())
    progress.phase(f"verify copies on {url}", len(held_metadata) + report.packs_read)
    names = chain(held_metadata, map(inventory.live.packs.name, chosen_packs()))

    def one(name: str) -> tuple[str, CopyProblem | None]:
        try:
            if name in key_copies:  # a key file not in use: judged against its other copies
                return name, _key_copy_problem(key_copies[name], url)
            return name, stored_copy_problem(repo, target.storage, name, listing[name])
        finally:
            progress.advance()

    corrupt = []
    for name, problem in ordered_map(one, names, workers=READERS):
        if problem is None:
            repo.targets.forget_damage(url, name)
            report.unreadable.pop(name, None)
        elif problem.unreadable:  # nothing learnt of its bytes: the ledger stays as it was
            report.unreadable[name] = problem.reason
        else:
            corrupt.append(name)
    report.corrupt = sorted(corrupt)
    report.unreadable = dict(sorted(report.unreadable.items()))
    _leave_out_forgotten(repo, report)
    for name in report.missing + report.wrong_size + report.corrupt:
        repo.targets.remember_damage(url, name)


def _mark(repo: Repository, snapshots: list[Snapshot], inventory: Inventory, result: CheckResult,
          progress: PhaseProgress, pruned: set[bytes], *, may_be_found: bool) -> None:
    """Mark the blobs the snapshots use, reporting what the index lacks or cannot be read, each
    with every snapshot that uses it. The snapshots every reachable target holds go first, so
    that data they share with the others is reported as theirs; a snapshot that only some hold
    whose own data the index lacks, and that :func:`looks_forgotten` (``pruned``), was most
    likely forgotten while those were away (its data pruned elsewhere): that is what is
    reported, unless the data ``may_be_found`` (packs no
    index lists that no prune meant to delete, or an index file damaged everywhere): then it is
    missing data, which 'repair --index' may list again, and forgetting it would destroy it. A
    tree that could not be read (not damage) says nothing of the kind."""
    reachable = len(inventory.listings)
    partial = set() if may_be_found else {
        s.uid for s in snapshots if len(inventory.holders(snapshot_name(s.uid))) < reachable}
    ordered = sorted(snapshots, key=lambda s: s.uid in partial)  # stable: oldest first
    marked = mark_used(repo, ordered, progress)
    result.trees = marked.trees
    first_lost: dict[str, str] = {}  # uid -> what it is the first to use, of what is lost
    for broken in marked.unindexed(repo.index):
        first_lost.setdefault(broken.snapshots[0], broken.what)
    forgotten = {s.uid for s in snapshots if s.uid in partial and s.uid in first_lost
                 and looks_forgotten(repo.index, s, pruned)}
    for snapshot in snapshots:
        uid = snapshot.uid
        if uid not in forgotten:
            continue
        holders = inventory.holders(snapshot_name(uid))
        were = "that target was" if len(holders) == 1 else "those targets were"
        result.forgotten.append(uid)
        result.problems.append(
            f"snapshot {uid} is only on {', '.join(holders)} and its data is not indexed "
            f"({first_lost[uid]}): it was probably forgotten while {were} away: 'fogvault "
            f"forget {uid}' deletes it everywhere")
    result.broken_objects = [b for b in marked.broken if b.snapshots[0] not in forgotten]
    result.problems += map(_broken_problem, result.broken_objects)
    result.data_missing = any(not b.unreadable for b in result.broken_objects)
    result.missing_data_indexed = any(not b.unreadable and bytes.fromhex(b.id) in repo.index
                                      for b in result.broken_objects)


def _broken_problem(broken: BrokenObject) -> str:
    """The problem of a broken object, naming the snapshots that use it (the first few: JSON's
    ``broken_objects`` has them all)."""
    uids = broken.snapshots
    if len(uids) == 1:
        users = f"snapshot {uids[0]}"
    else:
        more = len(uids) - SNAPSHOTS_NAMED
        users = (f"{len(uids)} snapshots ({', '.join(uids[:SNAPSHOTS_NAMED])}"
                 f"{f' and {more} more' if more > 0 else ''})")
    if broken.unreadable:
        return (f"{users}: {broken.what}: it could not be read, which says nothing of its "
                "bytes: fix access to it, then check again")
    return f"{users}: {broken.what}"


def _sort_unlisted(repo: Repository, inventory: Inventory, pruned: set[bytes],
                   report: TargetReport) -> None:
    """The target's objects under ``data/`` beyond the live packs, sorted by what becomes of
    them (prune deletes those named as packs, and leaves the others)."""
    found = unlisted_data(inventory.listings[report.url], repo.index)
    report.unindexed_packs = len(found.packs)
    report.unindexed_pruned = sum(1 for name in found.packs if id_from_name(name) in pruned)
    report.misplaced, report.foreign = found.misplaced, found.foreign


def _leave_out_forgotten_here(repo: Repository, result: CheckResult,
                              report: TargetReport) -> None:
    """A snapshot forgotten while another target was away is not missing here: this target
    deleted it rightly."""
    names = {snapshot_name(uid) for uid in result.forgotten}
    if names & set(report.missing):
        report.missing = [n for n in report.missing if n not in names]
        for name in names:
            repo.targets.forget_damage(report.url, name)


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


def _key_copies(repo: Repository, metadata: list[str]) -> dict[str, KeyCopies]:
    """Every copy of every key file of ``metadata`` but the one in use: url -> bytes (or the
    error reading it), per name."""
    copies: dict[str, KeyCopies] = {}
    for name in metadata:
        if not name.startswith(KEYS_DIR) or name[len(KEYS_DIR):] == repo.key_id:
            continue
        copies[name] = {t.url: data for t, data in repo.targets.read_each(name).items()}
    return copies


def _read_copies(copies: KeyCopies) -> dict[str, bytes]:
    return {url: data for url, data in copies.items() if isinstance(data, bytes)}


def _key_copy_problem(copies: KeyCopies, url: str) -> CopyProblem | None:
    """The problem of the copy on ``url`` of a key file not in use, judged against the
    others."""
    copy = copies.get(url)  # None: the target was no longer in use
    if isinstance(copy, StorageError):
        return read_problem(copy)
    _, bad = judge_key_copies(_read_copies(copies))
    return CopyProblem("differs from the other copies") if url in bad else None


def _undecided_keys(copies: dict[str, KeyCopies]) -> list[str]:
    """Key files no copy of which can be told good: none is a key file, or they differ."""
    problems = []
    for name, read in copies.items():
        by_url = _read_copies(read)
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


def _subset(options: CheckOptions) -> Chooser | None:
    """Which packs have their content read (see subset), or None to read none."""
    spec = options.read_data_subset
    if options.read_data and spec:
        raise UsageError("--read-data reads every pack: give it or --read-data-subset, not both")
    if options.read_data:
        return lambda packs: packs.numbers()
    return chooser(spec) if spec else None
