"""``repair``: copy missing and damaged objects from healthy targets to the others.

Under the shared lock (repair only adds and replaces; prune, which deletes, holds the exclusive
one), or the exclusive one with ``index`` (:mod:`fogvault.maintenance.reindex` first lists the
packs no index lists, which a running backup's are until its index file is written, moving
those found outside their folder into it):

1. **Find** what each target lacks (:mod:`fogvault.maintenance.inventory`: missing live objects,
   packs of the wrong size) and which copies are damaged: every config, key file, snapshot and
   index file copy is read and verified on every target, plus the damage already known
   (``TargetSet.damaged``: found by earlier reads or ``check``, kept in the ledger), plus, with
   ``read_data``, every pack copy.
2. **Copy**, kind by kind in the format's order: key files, packs, index files, snapshots, and
   the config last. Each object's good bytes come from a copy that verifies (a pack's BLAKE3 is
   its name; other objects decrypt and decode; key files as in
   :func:`~fogvault.maintenance.verify.judge_key_copies`): a target's, or for a pack that no
   target holds intact, the local cache's (which holds copies of tree packs, verified the
   same way). A missing object is written
   create-only; a damaged copy is replaced (``overwrite=True``) with the verified bytes. The
   copy counts only after it has been read back and found byte-identical.
3. **Ordering per target** (docs/format.md, "Ordering rules"): an index file is copied to a
   target only once every pack it lists is there; a snapshot only once the target holds every
   live index file and every tree and blob of the snapshot is indexed; the config only once
   nothing else failed on that target (so ``target add`` marks a new target complete last).
4. **Missed deletions** (``TargetSet.missed_deletes``, from the ledger): objects deleted on the
   others while a target was away are deleted there, after the copies, if no other target
   still holds them as live objects and nothing failed on that target.

5. **Index files damaged on every target** (:func:`~fogvault.maintenance.verify.
   damaged_index_files`: loading skips them, so they are no live objects to copy) are reported
   as unrecoverable, unless ``index`` is given: then, once every target can be reached and
   every pack the targets hold (but those a prune or forget meant to delete) is listed by
   another index file, the damaged file lists nothing that is not listed elsewhere, and it is
   deleted (under the exclusive lock, as prune deletes index files). Never before: its packs
   may hold what a snapshot needs. Nor while a copy of it could not be read (permission
   denied, an I/O error): that copy may be intact, and what it supersedes matters.

6. **Packs no target holds intact** (every target lacks them, or holds damaged copies, and the
   cache has no good copy) are reported as unrecoverable, unless ``index`` is given: then,
   once every target can be reached and holds every other pack, they are taken out of the
   index, their blobs that still authenticate in some copy kept in new packs
   (:mod:`fogvault.maintenance.lost_packs`), so that the next backup stores the rest again;
   one whose copy is intact after all, or whose intact copy outside its folder is moved into
   it, is *found* instead. If that held objects back (an index file listing such a pack), or
   found a pack, a second pass spreads what the new index allows and copies the found packs;
   a dry run plans that pass over the index it would write, and the found packs' copies.

Idempotent and resumable: each copy is atomic and independent, and a second run finds nothing
left to do. With ``dry_run`` it only plans. Objects with no good copy anywhere are reported as
unrecoverable; nothing can be done for them here.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain

from fogvault.errors import FogVaultError
from fogvault.maintenance.inventory import Inventory, Listing, take_inventory, unlisted_data
from fogvault.maintenance.lost_packs import (
    Copies,
    LostPacks,
    Misplaced,
    drop_lost_packs,
    find_intact,
)
from fogvault.maintenance.mark import mark_used
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.reindex import (
    MovedPack,
    ReindexResult,
    index_unlisted_packs,
    looks_forgotten,
    packs_meant_to_go,
    unindexed_data_may_be_found,
    write_verified,
)
from fogvault.maintenance.verify import (
    CopyProblem,
    damaged_index_files,
    judge_key_copies,
    stored_copy_problem,
    verify_copy,
)
from fogvault.parallel import ordered_map
from fogvault.repo.format import (
    CONFIG_NAME,
    DATA_DIR,
    INDEX_DIR,
    KEYS_DIR,
    SNAPSHOTS_DIR,
    id_from_name,
    pack_name,
)
from fogvault.repo.index import BlobIndex
from fogvault.repo.repository import Repository
from fogvault.sizes import counted
from fogvault.storage import ObjectNotFound, StorageError
from fogvault.targets import Target
from fogvault.targets.replicated import count_mutation

#: the order objects are copied in (docs/format.md, "Ordering rules"); the config comes last
_PHASES = (KEYS_DIR, DATA_DIR, INDEX_DIR, SNAPSHOTS_DIR, CONFIG_NAME)
#: ... and the order missed deletions are applied in (as prune deletes)
_DELETE_ORDER = (SNAPSHOTS_DIR, INDEX_DIR, DATA_DIR, KEYS_DIR)
#: a destination that fails this many writes is given up for this run
_FAILURES_TO_GIVE_UP = 3
#: held back because the object itself is bad (unrecoverable), not because of the target
_NOT_SPREAD = "not spread"


@dataclass(slots=True)
class RepairOptions:
    dry_run: bool = False
    read_data: bool = False  # read and verify every pack copy too (else: known damage only)
    only: list[str] | None = None  # bring only these targets up to date (``target add``)
    workers: int = 4  # objects copied at once
    index: bool = False  # first index the packs no index lists (under the exclusive lock)


@dataclass(slots=True)
class TargetRepair:
    url: str
    reachable: bool = True
    error: str | None = None
    copied: list[str] = field(default_factory=list)  # were missing
    replaced: list[str] = field(default_factory=list)  # were damaged
    #: could not be read (``read_data``, or as a source), and written again: they may have
    #: been intact, so they are not called damaged
    rewritten: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # deletions it had missed
    failed: list[str] = field(default_factory=list)  # "name: why"
    skipped: list[str] = field(default_factory=list)  # "name: why" (ordering held it back)
    bytes_copied: int = 0  # of the objects copied, replaced and rewritten

    @property
    def ok(self) -> bool:
        return self.reachable and not self.failed and not self.skipped


@dataclass(slots=True)
class RepairResult:
    targets: list[TargetRepair] = field(default_factory=list)
    unrecoverable: list[str] = field(default_factory=list)  # "name: why"
    dry_run: bool = False
    indexed: list[str] = field(default_factory=list)  # packs no index listed, listed anew
    left_out: list[str] = field(default_factory=list)  # ...but not these: a prune deleted them
    moved: list[MovedPack] = field(default_factory=list)  # packs moved into their folder
    #: packs thought lost with a copy intact after all, or (``index``) one moved into their
    #: folder: copied on in the same run
    found: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)  # index files damaged everywhere, deleted
    #: packs no target held intact, taken out of the index (``index``), and of their blobs
    #: those kept in new packs and those lost (no copy intact, no other pack holds them)
    lost_packs: list[str] = field(default_factory=list)
    blobs_salvaged: int = 0
    blobs_lost: int = 0

    @property
    def ok(self) -> bool:
        return (not self.unrecoverable and not self.blobs_lost
                and all(t.ok for t in self.targets))

    @property
    def changes(self) -> int:
        copies = sum(len(t.copied) + len(t.replaced) + len(t.rewritten) + len(t.deleted)
                     for t in self.targets)
        return (copies + len(self.indexed) + len(self.retired) + len(self.lost_packs)
                + len(self.moved))


def repair(
    repo: Repository, options: RepairOptions | None = None, progress: PhaseProgress | None = None
) -> RepairResult:
    options = options or RepairOptions()
    progress = progress or PhaseProgress()
    # --index: a running backup's packs are unlisted until its own index file is written.
    # Trees from the targets: what a snapshot needs is judged by what they hold, not the cache.
    with (repo.lock(exclusive=options.index and not options.dry_run) as lock,
          repo.trees_from_targets()):
        repo.load_index()
        reindexed = ReindexResult()
        if options.index:
            reindexed = index_unlisted_packs(repo, dry_run=options.dry_run, progress=progress,
                                             before_write=lock.ensure_fresh,
                                             workers=options.workers)
        work = _Repair(repo, options, progress)
        result = work.run()
        if options.only is None:  # not for 'target add'
            result = _drop_lost_packs(repo, work, options, progress, lock.ensure_fresh)
            _retire_damaged_index_files(repo, work.inventory, options, reindexed, result)
    if not options.dry_run:
        for report in result.targets:
            if report.ok:  # whole again: later operations of the session may count on it
                repo.targets.caught_up(report.url)
    result.indexed, result.left_out = reindexed.indexed, reindexed.left_out
    result.moved = reindexed.moved + result.moved
    result.unrecoverable += reindexed.unreadable
    return result


def _drop_lost_packs(repo: Repository, work: _Repair, options: RepairOptions,
                     progress: PhaseProgress, before_write: Callable[[], None]) -> RepairResult:
    """The packs no target holds intact (``work.lost_packs``), read again: found intact (a
    record of damage gone stale), or, with ``index`` once nothing else stands in the way, taken
    out of the index, what still reads of them kept (:mod:`fogvault.maintenance.lost_packs`);
    else left unrecoverable, saying what to do. Returns the result, with a second pass's if
    the first held objects back that the new index frees, or found a pack (which it copies)."""
    result = work.result
    if not work.lost_packs:
        return result
    why_not = ("'fogvault repair --index' also reads its copies outside its folder (data/zz/), "
               "and if none is intact takes it out of the index, keeping what still reads of "
               "it, so that the next backup stores the rest again")
    if options.index:
        why_not = work.why_lost_packs_stay()
    listings = work.inventory.listings
    copies = {name: {url: listings[url][name] for url in work.inventory.holders(name)}
              for name in work.lost_packs}
    if why_not is None:
        lost = drop_lost_packs(repo, copies, _misplaced(repo, listings, copies), progress,
                               dry_run=options.dry_run, before_write=before_write)
    elif options.read_data:  # every copy was just read: no record of damage is stale
        lost = LostPacks()
    else:  # only read again: a record of damage may be stale (the copy put back meanwhile)
        lost = find_intact(repo, copies, progress, dry_run=options.dry_run)
    handled = {work.lost_packs[name] for name in (*lost.dropped, *lost.kept, *lost.found)}
    still_lost = set(work.lost_packs.values()) - handled if why_not else set()
    result.unrecoverable = [f"{e}; {why_not}" if e in still_lost else e
                            for e in result.unrecoverable if e not in handled]
    result.unrecoverable += (f"{name}: {why}" for name, why in lost.kept.items())
    result.lost_packs, result.blobs_salvaged = lost.dropped, lost.blobs_salvaged
    result.blobs_lost, result.moved, result.found = lost.blobs_lost, lost.moved, [*lost.found]
    held_back = lost.dropped and any(t.skipped for t in result.targets)
    if not (held_back or lost.found):
        return result
    # Objects held back for the lost packs' sake (an index file that lists one, a snapshot
    # waiting for it) are spread, or dropped, by a second pass over the new index, which also
    # copies the packs found intact; a dry run plans that pass over the index it would write,
    # and the found packs' copies, so as to report what the run would do.
    if options.dry_run:
        work.plan_found_copies(lost.found)
        if held_back and lost.index_after is not None:
            work.replan_over_new_index(lost.index_after)
        return result
    # every copy the first pass read (read_data) is judged: the second only copies
    again = _Repair(repo, dataclasses.replace(options, read_data=False), progress).run()
    return _merged(result, again)


def _misplaced(repo: Repository, listings: dict[str, Listing], copies: Copies
               ) -> Misplaced:
    """The copies of the packs of ``copies`` that the targets hold outside their folders."""
    misplaced: Misplaced = defaultdict(list)
    for url, listing in listings.items():
        for copy in unlisted_data(listing, repo.index).misplaced:
            name = pack_name(id_from_name(copy))
            if name in copies:
                misplaced[name].append((url, copy, listing[copy]))
    return misplaced


def _merged(first: RepairResult, second: RepairResult) -> RepairResult:
    """``first`` with what ``second`` (a pass over the same targets) did: its copies added,
    its failures and held-back objects in place of the first's (which it tried again)."""
    for report, later in zip(first.targets, second.targets, strict=True):
        report.copied += later.copied
        report.replaced += later.replaced
        report.rewritten += later.rewritten
        report.deleted += later.deleted
        report.failed += later.failed
        report.skipped = later.skipped
        report.bytes_copied += later.bytes_copied
        report.reachable, report.error = later.reachable, later.error
    first.unrecoverable += [e for e in second.unrecoverable if e not in first.unrecoverable]
    return first


def _retire_damaged_index_files(repo: Repository, inventory: Inventory, options: RepairOptions,
                                reindexed: ReindexResult, result: RepairResult) -> None:
    """Index files no target holds a good copy of: deleted with ``index`` once nothing they
    may list is unlisted (see the module's step 5) and no copy is left unread, else reported
    unrecoverable (and the damaged copies kept in the damage ``targets`` shows)."""
    damaged = damaged_index_files(repo, inventory)
    if not damaged:
        return
    why_not = None
    if not options.index:
        why_not = ("'fogvault repair --index' lists its packs again from their headers and "
                   "then deletes it")
    elif inventory.unreachable:
        why_not = (f"not deleted while {', '.join(sorted(inventory.unreachable))} cannot be "
                   "reached (it may hold a good copy)")
    else:
        # by id: a dry run's index lacks what the reindex would list, a copy elsewhere too
        listed_now = {id_from_name(n) for n in (*reindexed.indexed, *reindexed.left_out)}
        unlisted = sorted(name for name in {n for listing in inventory.listings.values()
                                            for n in unlisted_data(listing, repo.index).packs}
                          if id_from_name(name) not in listed_now)
        if unlisted:
            why_not = (f"not deleted while {counted(len(unlisted), 'pack')} no index lists "
                       f"(such as {unlisted[0]}) may be listed by it alone")
    for name, copies in damaged.items():
        holders = [url for url in copies if url in inventory.listings]
        unread = [url for url, problem in copies.items() if problem.unreadable]
        held_back = why_not or (unread and (
            f"not deleted while its copy on {', '.join(unread)} could not be read: fix access "
            "to it, then run 'fogvault repair --index' again (if it never can be read, delete "
            "that copy by hand: its packs are listed again)"))
        if held_back:
            for url in holders:  # remembered: repair drops damage of objects that are not live
                if not copies[url].unreadable:
                    repo.targets.remember_damage(url, name)
            found = "; ".join(f"{url}: {problem}" for url, problem in copies.items())
            what = ("no target gave a good copy" if unread else
                    "damaged on every target that holds it")
            result.unrecoverable.append(f"{name}: {what} ({found}); {held_back}")
            continue
        if not options.dry_run:
            repo.targets.delete(name)
            for url in holders:
                repo.targets.forget_damage(url, name)
            if repo.cache:
                repo.cache.discard(name)
        result.retired.append(name)


class _Repair:
    def __init__(self, repo: Repository, options: RepairOptions, progress: PhaseProgress) -> None:
        self.repo = repo
        self.targets = repo.targets
        self.options = options
        self.progress = progress
        self.result = RepairResult(dry_run=options.dry_run)
        self.reports: dict[str, TargetRepair] = {}
        self.inventory: Inventory
        self._may_be_found = False  # unindexed data may be in unlisted packs (set with inventory)
        self.bad: set[tuple[str, str]] = set()  # (url, name): copies known or found damaged
        #: (url, name) -> why, of the copies that could not be read (not damage)
        self.unreadable: dict[tuple[str, str], str] = {}
        self.have: dict[str, Listing] = {}  # url -> names it holds (good or not), as we go
        self._lock = threading.Lock()
        self._failures: dict[str, int] = defaultdict(int)
        self._indexes_lacking: dict[str, int] = {}  # url -> live index files it lacks, per phase
        self._incomplete: dict[str, str | None] = {}  # snapshot name -> why it is not spread
        #: pack name -> its entry in ``result.unrecoverable``: no target holds it intact
        self.lost_packs: dict[str, str] = {}
        #: planned as if a new index, on every target, superseded the index files loaded
        self._index_rewritten = False
        self._pruned: set[bytes] | None = None  # packs_meant_to_go, read when needed

    def run(self) -> RepairResult:
        self.inventory = take_inventory(self.repo)
        self._may_be_found = unindexed_data_may_be_found(self.repo, self.inventory)
        for target in self.targets.targets:
            if self.options.only is not None and target.url not in self.options.only:
                continue
            report = TargetRepair(target.url)
            self.reports[target.url] = report
            self.result.targets.append(report)
            if target.url not in self.inventory.listings:
                report.reachable, report.error = False, target.dropped or "unreachable"
        # What each target holds as copies land (a dry run's too): copies, so that the
        # inventory keeps what was found (its holders are the sources to copy from).
        self.have = {url: listing.copy() for url, listing in self.inventory.listings.items()}
        self._find_damage()
        for phase in _PHASES:
            self._copy_phase(phase)
        self._apply_missed_deletes()
        return self.result

    # ---- 1. what is damaged ------------------------------------------------------------

    def _find_damage(self) -> None:
        live = self.inventory.live
        for url, name in list(self.targets.damaged):
            if name not in live:  # pruned or forgotten since: nothing to repair any more
                self.targets.forget_damage(url, name)
        self.bad = {(u, n) for u, n in self.targets.damaged if n in live}
        for url in self.inventory.listings:
            for name in self.inventory.wrong_size(url):
                self.bad.add((url, name))
        self.progress.phase("verify copies", sum(1 for _ in self._copies_to_verify()))
        verified = ordered_map(self._verify_one, self._copies_to_verify(),
                               workers=self.options.workers)  # fmt: skip
        for (url, name), problem in verified:
            if problem is None:
                self.targets.forget_damage(url, name)
                continue
            self.bad.add((url, name))  # replaced from a good copy, if any, either way
            if problem.unreadable:  # not damage: it may be intact
                self.unreadable[url, name] = f"{url} {name}: {problem}"
            else:
                self.targets.remember_damage(url, name)
        for name in live.metadata():
            if self._is_other_key(name):
                copies = self._read_copies(name)
                _, bad = judge_key_copies(copies)
                self.bad |= {(url, name) for url in bad}

    def _copies_to_verify(self) -> Iterator[tuple[str, str]]:
        """(url, name) of each copy to read, made as they are read (a name per pack, held
        for every pack, cost about 120 bytes a pack): every metadata copy not known to be bad
        but the key files not in use (judged against each other), and with ``read_data`` every
        pack copy."""
        live = self.inventory.live
        packs = map(live.packs.name, live.packs.numbers()) if self.options.read_data else ()
        for name in chain(live.metadata(), packs):
            if not self._is_other_key(name):
                for url in self.inventory.holders(name):
                    if (url, name) not in self.bad:
                        yield url, name

    def _verify_one(self, copy: tuple[str, str]) -> tuple[tuple[str, str], CopyProblem | None]:
        url, name = copy
        try:
            return copy, stored_copy_problem(self.repo, self.targets.target(url).storage, name,
                                             self.inventory.listings[url][name], full=False)
        finally:
            self.progress.advance()

    def _is_other_key(self, name: str) -> bool:
        return name.startswith(KEYS_DIR) and name[len(KEYS_DIR):] != self.repo.key_id

    def _read_copies(self, name: str) -> dict[str, bytes]:
        read = self.targets.read_each(name)
        return {t.url: data for t, data in read.items() if isinstance(data, bytes)}

    # ---- 2. copies -----------------------------------------------------------------------

    def _copy_phase(self, phase: str) -> None:
        work: dict[str, list[tuple[Target, bool]]] = defaultdict(list)  # name -> (dest, replace)
        self._indexes_lacking = {}
        for url, report in self.reports.items():
            if not report.reachable:
                continue
            target = self.targets.target(url)
            for name in self._lacking(url, phase):
                replace = name in self.have[url]  # and damaged
                why = self._held_back(url, name)
                if why:
                    if why != _NOT_SPREAD:
                        report.skipped.append(f"{name}: {why}")
                    continue
                work[name].append((target, replace))
        if not work:
            return
        self.progress.phase(f"copy {phase.rstrip('/')}", len(work))
        workers = 2 if phase == DATA_DIR else self.options.workers
        self._map(lambda item: self._copy_object(*item), list(work.items()), workers)

    def _held_back(self, url: str, name: str) -> str | None:
        """Why ``name`` may not go to ``url`` yet (the ordering rules), or None."""
        report = self.reports[url]
        if not report.reachable:
            return "target given up"
        if name.startswith(INDEX_DIR):
            try:
                listed = self.repo.index_file_packs(name)
            except FogVaultError as exc:
                return f"unreadable ({exc})"
            lacking = [p for p in listed if not self._holds_good(url, pack_name(p))]
            return f"{len(lacking)} of its packs are not on the target" if lacking else None
        if name.startswith(SNAPSHOTS_DIR):
            if name not in self._incomplete:
                self._incomplete[name] = self._snapshot_incomplete(name)
            if self._incomplete[name]:
                return _NOT_SPREAD
            if url not in self._indexes_lacking:  # once per target and phase, not per snapshot
                self._indexes_lacking[url] = 0 if self._index_rewritten else sum(
                    1 for n in self.repo.live_index_names() if not self._holds_good(url, n))
            lacking = self._indexes_lacking[url]
            return f"the target lacks {lacking} index files" if lacking else None
        if name == CONFIG_NAME and (report.failed or report.skipped):
            return "other objects could not be copied to the target"
        return None

    def _lacking(self, url: str, phase: str) -> list[str]:
        """The live objects of ``phase`` that ``url`` lacks or holds damaged, sorted."""
        def of_phase(name: str) -> bool:
            return name == phase if phase == CONFIG_NAME else name.startswith(phase)

        held = self.have[url]
        if phase == DATA_DIR:
            names = [self.inventory.live.packs.name(n) for n in held.missing_packs()]
        else:
            names = [n for n in self.inventory.live.metadata() if of_phase(n) and n not in held]
        names += (n for u, n in self.bad if u == url and of_phase(n) and n in held)
        return sorted(names)

    def _holds_good(self, url: str, name: str) -> bool:
        """Does ``url`` hold ``name`` in good condition? Asked while a phase is planned, before
        its copies start: what the earlier phases' copies left."""
        return name in self.have[url] and (url, name) not in self.bad

    def _snapshot_incomplete(self, name: str) -> str | None:
        """A snapshot only some targets hold whose data the index lacks is not spread: it may
        have been forgotten while those targets were away (:func:`looks_forgotten`: then the
        advice is 'forget'), or use data lost on every target (then it is a backup, or
        'repair --snapshots'). Nor one whose trees could not be read now, which may be either.
        One that uses indexed data lost on every target is spread: that is damage, which check
        and 'repair --index' report."""
        uid = name[len(SNAPSHOTS_DIR):]
        try:
            snapshot = self.repo.load_snapshot(uid)
        except FogVaultError as exc:
            self._unrecoverable(name, f"unreadable everywhere ({exc})")
            return "unreadable"
        marked = mark_used(self.repo, [snapshot])
        unindexed = marked.unindexed(self.repo.index)
        if unindexed:
            if self._may_be_found:  # in packs no index lists: forgetting it would destroy it
                advice = ("packs no index lists may hold it: 'fogvault repair --index' lists "
                          "them again")
            elif looks_forgotten(self.repo.index, snapshot, self._packs_pruned()):
                advice = (f"it was probably forgotten while a target was away: 'fogvault "
                          f"forget {uid}' deletes it everywhere")
            else:  # lost, not forgotten: forgetting it would lose what it keeps
                advice = ("it uses data no target holds: a backup of the same files stores it "
                          f"again, else 'fogvault repair --snapshots {uid}' saves a copy "
                          "without it")
            self._unrecoverable_once(name, f"its data is not indexed ({unindexed[0].what}); "
                                           f"{advice}")
            return "its data is not indexed"
        unread = [b for b in marked.broken if b.unreadable]
        if unread:
            self._unrecoverable_once(name, f"its trees could not be read ({unread[0].what}): "
                                           "run repair again once they can be")
            return "its trees could not be read"
        return None

    def _packs_pruned(self) -> set[bytes]:
        if self._pruned is None:
            self._pruned = packs_meant_to_go(self.repo, self.inventory)
        return self._pruned

    def _unrecoverable_once(self, name: str, why: str) -> None:
        with self._lock:
            entry = f"{name}: {why}"
            if entry not in self.result.unrecoverable:
                self.result.unrecoverable.append(entry)

    def _copy_object(self, name: str, dests: list[tuple[Target, bool]]) -> None:
        try:
            data = self._good_bytes(name, {t.url for t, _ in dests})
        finally:
            self.progress.advance()
        if data is None:
            return
        for dest, replace in dests:
            report = self.reports[dest.url]
            if not report.reachable:
                continue
            problem = None
            if not self.options.dry_run:  # a dry run plans as if every copy worked
                problem = write_verified(dest.storage, name, data, replace=replace)
            with self._lock:
                if problem is None:
                    self._done_list(report, name, replace).append(name)
                    report.bytes_copied += len(data)
                    self.have[dest.url].add(name)
                    self.bad.discard((dest.url, name))
                    if not self.options.dry_run:
                        self.targets.forget_damage(dest.url, name)
                else:
                    report.failed.append(f"{name}: {problem}")
                    self._count_failure(dest)

    def _done_list(self, report: TargetRepair, name: str, replace: bool) -> list[str]:
        """Where a copy of ``name`` written to ``report``'s target is counted: copied where
        it was missing, else rewritten where it could not be read and holds no known damage,
        else replaced."""
        if not replace:
            return report.copied
        key = (report.url, name)
        if key in self.unreadable and key not in self.targets.damaged:
            return report.rewritten
        return report.replaced

    def _good_bytes(self, name: str, exclude: set[str]) -> bytes | None:
        """Verified bytes of ``name`` from a healthy copy, or None (recorded unrecoverable)."""
        if name == f"{KEYS_DIR}{self.repo.key_id}" and self.repo.key_bytes is not None:
            return self.repo.key_bytes
        if self._is_other_key(name):
            good, _ = judge_key_copies(self._read_copies(name))
            if good is not None:
                return good
            return self._unrecoverable(name, "its copies differ and none is in the majority")
        holders = set(self.inventory.holders(name)) - exclude
        order = [t for t in self.targets.read_order(name)
                 if t.url in holders and (t.url, name) not in self.bad]
        problems = []
        for source in order:
            try:
                data = source.storage.read(name)
            except StorageError as exc:  # its message names the target and the object
                with self._lock:
                    self.unreadable[source.url, name] = str(exc)
                continue
            problem = verify_copy(self.repo, name, data, full=False)
            if problem is None:
                return data
            problems.append(f"{source.url}: {problem}")
            with self._lock:
                self.bad.add((source.url, name))
                self.targets.remember_damage(source.url, name)
        # a copy that could not be read, here or when verified, may be intact
        unread = [self.unreadable[url, name] for url in self.inventory.holders(name)
                  if (url, name) in self.unreadable]
        why = "; ".join(problems + unread) or "no target holds a good copy"
        if name.startswith((DATA_DIR, INDEX_DIR)):
            # a tree pack's or an index file's copy, verified as a target's (its hash)
            cached = self.repo.cached_copy(name)
            if cached is not None:
                return cached
        if name.startswith(DATA_DIR) and not unread:  # lost only if every copy was seen
            with self._lock:
                self.lost_packs[name] = f"{name}: {why}"
        if unread:
            why += ("; repair again once the copies that could not be read can be (fix access "
                    "to them if it was denied)")
        return self._unrecoverable(name, why)

    def plan_found_copies(self, found: dict[str, str]) -> None:
        """For a dry run: plan the copies of the packs ``found`` (name -> the target holding an
        intact copy) that a second pass would make, to each other reachable target that lacks
        the pack or holds it damaged. (A real run's first pass saw those packs as lost: it
        did not know the copy, whose damage record a dry run keeps, or which it did not move.)"""
        for name, source in sorted(found.items()):
            size = self.inventory.live[name] or 0
            for url, report in self.reports.items():
                if url == source or not report.reachable:
                    continue
                if name not in self.have[url] or (url, name) in self.bad:
                    self._done_list(report, name, name in self.have[url]).append(name)
                else:
                    continue
                report.bytes_copied += size

    def replan_over_new_index(self, index: BlobIndex) -> None:
        """For a dry run: plan in place of what was held back what a second pass would do
        once the lost packs are out of the index (``index``: the blobs the new one would list).
        Its files go to every target and supersede the loaded ones, so the index files held
        back are no longer live and no snapshot waits for one; a snapshot whose data ``index``
        lacks is not spread; the config and the missed deletions follow as in any pass."""
        self._index_rewritten = True
        # judged again by the new index, which lacks what the loaded one lacks
        self._incomplete = {name: why for name, why in self._incomplete.items() if why}
        for report in self.result.targets:
            report.skipped.clear()
        # Swapped, not passed: the snapshots are judged (mark_used) by the repository's index.
        loaded, self.repo.index = self.repo.index, index
        try:
            for phase in (SNAPSHOTS_DIR, CONFIG_NAME):
                self._copy_phase(phase)
        finally:
            self.repo.index = loaded
        self._apply_missed_deletes()

    def why_lost_packs_stay(self) -> str | None:
        """Why the lost packs may not be taken out of the index now, or None: the new index
        goes to every target, so every target must be reachable, and hold every other pack
        intact (it may hold a good copy of a lost one, or lack a pack the index lists)."""
        for url, report in self.reports.items():
            if not report.reachable:
                return f"not while {url} cannot be reached (it may hold a good copy)"
            if report.failed:
                return f"not while copies to {url} fail"
            live = self.inventory.live.packs
            lacking = {live.name(number) for number in self.have[url].missing_packs()}
            lacking |= {n for u, n in self.bad if u == url and n.startswith(DATA_DIR)}
            if lacking - self.lost_packs.keys():
                return f"not while {url} lacks other packs"
        return None

    def _unrecoverable(self, name: str, why: str) -> None:
        with self._lock:
            self.result.unrecoverable.append(f"{name}: {why}")
        return None

    def _count_failure(self, dest: Target) -> None:
        self._failures[dest.url] += 1
        if self._failures[dest.url] >= _FAILURES_TO_GIVE_UP:
            report = self.reports[dest.url]
            report.reachable = False
            report.error = f"{self._failures[dest.url]} copies failed; given up"

    # ---- 4. missed deletions -------------------------------------------------------------

    def _apply_missed_deletes(self) -> None:
        pending = sorted(self.targets.missed_deletes, key=lambda p: _delete_rank(p[1]))
        for url, name in pending:
            report = self.reports.get(url)
            if report is None or not report.ok:
                continue
            if name in self.inventory.live:  # live again (or still): not to be deleted
                self.targets.missed_deletes.discard((url, name))
                continue
            if self.options.dry_run:
                if name in self.have[url]:
                    report.deleted.append(name)
                    self.have[url].discard(name)  # planned once, should a replan follow
                continue
            try:
                if name in self.have[url]:
                    count_mutation()
                    self.targets.target(url).storage.delete(name)
                    report.deleted.append(name)
            except ObjectNotFound:
                pass
            except StorageError as exc:
                report.failed.append(f"{name}: delete failed ({exc})")
                continue
            self.targets.missed_deletes.discard((url, name))

    # ---- helpers -------------------------------------------------------------------------

    def _map(self, fn: Callable, items: list, workers: int | None = None) -> list:
        if not items:
            return []
        return list(ordered_map(fn, items, workers=workers or self.options.workers))


def _delete_rank(name: str) -> int:
    for rank, prefix in enumerate(_DELETE_ORDER):
        if name.startswith(prefix):
            return rank
    return len(_DELETE_ORDER)
