"""Run one job: backup, forget by retention, prune and check when due, with hooks and pings.

:func:`run_job` is what ``fogvault run JOB`` and the daemon call. Order of a run:

1. take the job lock (:mod:`fogvault.jobs.joblock`; a second run of the job exits 11 at once);
2. ping *start*; run the ``before`` hooks (a failure ends the run: exit 20, nothing backed up);
3. open the repository (none there: exit 10, unless ``--init`` creates it);
4. back up the job's paths (unreadable files, or targets left behind by a k-of-N commit, make
   the run *partial*, exit 3, and it goes on);
5. forget by the job's retention, among this job's snapshots only (same host, same paths);
6. prune, then check, when due (:func:`fogvault.jobs.schedule.is_due`, from the run log). A
   target the check could not reach (away: unreachable, no repository) is behind, not damage:
   the run is partial (exit 3) and the check, incomplete, stays due. So is a target known to be
   behind that misses only what it could have missed while away (snapshots, index files, packs
   that only index files it lacks list): behind, not damage; the repair copies what it misses;
7. repair targets that are behind (after a backup that left one behind, a previous run that
   left one behind, or a check that found objects missing or damaged on a target): copy what
   they miss from the healthy ones; a check that found damage then fails the run with exit 21,
   whatever the repair mended;
8. run the ``after`` hooks (only if everything above succeeded);
9. on failure, run the ``on_failure`` hooks; ping *success* or *failure*; append one record to
   the run log and rewrite the metrics file.

A step that fails skips the steps after it. The exit code is the run's, by this table
(docs/scheduling.md): 0 success, 1 error, 2 usage or config error, 3 partial, 10 no repository,
11 job or repository locked, 12 wrong password, 20 a ``before``/``after`` hook failed, 21 check
found problems, 130 interrupted. An interrupted run is logged, but runs no ``on_failure`` hook
and sends no ping. ``--dry-run`` stores nothing, runs no hook, sends no ping, logs nothing and
takes no job lock: it shows what the run would do.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from fogvault.backup.archiver import Archiver, BackupOptions, normalise_paths
from fogvault.backup.excludes import ExcludeRules
from fogvault.crypto import KdfParams
from fogvault.errors import (
    EXIT_INTERRUPTED,
    EXIT_PARTIAL,
    FogVaultError,
    NoRepository,
    RepositoryNotFound,
    UsageError,
    exit_code_for,
)
from fogvault.heap import use_one_malloc_arena
from fogvault.host import hostname
from fogvault.jobs.config import Command, Config, JobConfig
from fogvault.jobs.hooks import HookFailed, Pinger, run_commands
from fogvault.jobs.joblock import JobLock
from fogvault.jobs.schedule import Schedule, is_due, next_after_last
from fogvault.jobs.status import (
    RunLog,
    RunLogUnreadable,
    RunRecord,
    StepResult,
    lock_dir,
    metrics_text,
    run_log_path,
    write_atomically,
)
from fogvault.maintenance.forget import forget
from fogvault.maintenance.repair import RepairResult, repair
from fogvault.maintenance.retention import apply_policy
from fogvault.patterns import pattern_warnings
from fogvault.repo.config import RepoConfig
from fogvault.repo.format import (
    INDEX_DIR,
    SNAPSHOTS_DIR,
    index_name,
    pack_id_from_name,
    pack_name,
)
from fogvault.repo.lock import NoLock
from fogvault.repo.repository import Repository
from fogvault.sizes import counted, format_size
from fogvault.targets.ledger import Ledger
from fogvault.targets.policy import TargetPolicy
from fogvault.text import one_line

EXIT_CHECK_FAILED = 21
_T = TypeVar("_T")
MAX_MESSAGES = 20


class CheckFailed(FogVaultError):
    exit_code = EXIT_CHECK_FAILED


@dataclass(slots=True)
class RunOptions:
    dry_run: bool = False
    init: bool = False  # create the repository if there is none
    cache_dir: Path | None = None
    use_cache: bool = True
    kdf: KdfParams | None = None  # for init; None: Repository.init's default
    retry_lock: float = 0.0  # seconds to wait for another process's repository lock
    #: KiB/s from the command line, over the repository's limit_upload/limit_download
    limit_upload: int | None = None
    limit_download: int | None = None


def run_job(config: Config, name: str, options: RunOptions | None = None) -> RunRecord:
    """Run job ``name`` once; returns its record (``exit_code`` says how it went).

    Raises :class:`~fogvault.jobs.joblock.JobRunning` if the job is running already, and
    ``KeyboardInterrupt`` (after logging the run) if interrupted."""
    job = config.job(name)
    options = options or RunOptions()
    log = RunLog(run_log_path(config))
    if options.dry_run:
        return _JobRun(config, job, options, log).execute()
    with JobLock(lock_dir(), job.name):
        run = _JobRun(config, job, options, log)
        try:
            return run.execute()
        finally:
            save_record(config, log, run.record)


def save_record(config: Config, log: RunLog, record: RunRecord) -> None:
    """Log the run and rewrite the metrics; a log or metrics file that cannot be written is a
    note, never a change of the run's result."""
    unlogged: list[RunRecord] = []
    try:
        log.append(record)
    except OSError as exc:
        record.messages.append(f"cannot write the run log {log.path}: {exc.strerror or exc}")
        unlogged.append(record)  # the metrics still show this run
    if config.monitoring.metrics_file is not None:
        try:
            records = log.records() + unlogged
        except RunLogUnreadable:  # noted by the run already: the metrics show this run alone
            records = [record]
        # a job renamed or removed from the config leaves the metrics (its last success would
        # grow old, and alerts fire); the run log may be shared with other config files
        records = [r for r in records if r.job in config.jobs]
        try:
            write_atomically(config.monitoring.metrics_file, metrics_text(records))
        except OSError as exc:
            record.messages.append(f"cannot write metrics file: {exc.strerror or exc}")


def _now() -> datetime:
    return datetime.now().astimezone()


class _JobRun:
    def __init__(self, config: Config, job: JobConfig, options: RunOptions, log: RunLog) -> None:
        self.config, self.job, self.options, self.log = config, job, options, log
        self.repo_config = config.repository_of(job)
        self.host = job.host or hostname()
        self.record = RunRecord(job.name, _now(), dry_run=options.dry_run)
        self.pinger = Pinger(job.hooks)
        self.check_failure: CheckFailed | None = None
        # Targets known to lack changes: the ones the job's previous run left behind (the
        # next open cannot always tell: a target that missed only a snapshot looks complete),
        # then those this run's backup leaves behind. Objects they may have missed while away
        # are what the repair step copies, not damage (:meth:`_missed_and_lost`).
        self.known_behind: set[str] = set()
        self.opened = False  # the repository was opened: this run's record says who is behind
        self.log_unreadable = False

    # ---- the run -----------------------------------------------------------------------

    def execute(self) -> RunRecord:
        self._carry_over_targets_behind()
        try:
            try:
                self._steps()
            except Exception as exc:
                self._fail(exit_code_for(exc), error_message(exc))
                self._still_behind_if_unopened()
                if "--min-targets" in str(exc):  # its hint names the command-line option
                    self._note(f"in a job, min_targets of [repositories.{self.repo_config.name}]"
                               " sets how many targets a backup must reach")
            self._finish()
        except KeyboardInterrupt:  # also in an on_failure hook or the last ping: exit 130
            self._fail(EXIT_INTERRUPTED, "interrupted", "interrupted")
            self._still_behind_if_unopened()
            self.record.finished = _now()
            raise
        return self.record

    def _steps(self) -> None:
        self._ping("start", "")
        self._hooks("before", self.job.hooks.before)
        with self._open() as repo:
            self._keep_targets_of(repo)
            self._step("backup", lambda: self._backup(repo))
            self._step("forget", lambda: self._forget(repo))
            self._step("prune", lambda: self._prune(repo))
            self._step("check", lambda: self._check(repo))
            self._repair_step(repo)
        self._hooks("after", self.job.hooks.after)

    def _step(self, name: str, action: Callable[[], StepResult]) -> None:
        try:
            result = action()
        except BaseException as exc:
            self.record.steps[name] = StepResult("failed", error_message(exc))
            raise
        if result.status == "done":
            result.at = _now().isoformat()
        self.record.steps[name] = result

    def _fail(self, code: int, message: str, result: str = "failed") -> None:
        self.record.result, self.record.exit_code, self.record.error = result, code, message

    def _finish(self) -> None:
        record = self.record
        record.finished = _now()
        if record.result == "running":
            record.result = "partial" if record.is_partial else "success"
            record.exit_code = EXIT_PARTIAL if record.is_partial else 0
            self._ping("success", "\n".join(summary_lines(record)))
            return
        with contextlib.suppress(HookFailed):
            self._hooks("on_failure", self.job.hooks.on_failure)
        self._ping("failure", "\n".join(summary_lines(record)))

    # ---- hooks and pings ---------------------------------------------------------------

    def _hooks(self, kind: str, commands: list[Command]) -> None:
        if not commands:
            return
        if self.options.dry_run:
            self.record.steps[kind] = StepResult("skipped", "dry run")
            return
        try:
            self._step(kind, lambda: self._run_hooks(kind, commands))
        except HookFailed as exc:
            if kind == "on_failure":
                self._note(str(exc))
            raise

    def _run_hooks(self, kind: str, commands: list[Command]) -> StepResult:
        run_commands(kind, commands, self._hook_env(kind), self.job.hooks.timeout,
                     os.path.realpath(self.config.path.parent))
        return StepResult("done", counted(len(commands), "command"))

    def _hook_env(self, kind: str) -> dict[str, str]:
        """What a hook is told: the job, and (but for ``before``: nothing has happened yet) how
        the run went."""
        env = {"FOGVAULT_JOB": self.job.name, "FOGVAULT_REPOSITORY": self.repo_config.name}
        if kind == "before":
            return env
        record = self.record
        result, code = record.result, record.exit_code
        if result == "running":  # the after hooks: the steps have succeeded
            result = "partial" if record.is_partial else "success"
            code = EXIT_PARTIAL if record.is_partial else 0
        return env | {
            "FOGVAULT_RESULT": result,
            "FOGVAULT_EXIT_CODE": str(code), "FOGVAULT_SNAPSHOT": record.snapshot or "",
            "FOGVAULT_UNCHANGED_SINCE": record.unchanged_since or "",
            "FOGVAULT_ERROR": record.error or "",
        }

    def _ping(self, event: str, body: str) -> None:
        if self.options.dry_run:
            return
        warning = self.pinger.ping(event, body)
        if warning:
            self._note(warning)

    def _note(self, message: str) -> None:
        if len(self.record.messages) < MAX_MESSAGES:
            self.record.messages.append(message)

    # ---- the repository ----------------------------------------------------------------

    @contextlib.contextmanager
    def _open(self) -> Iterator[Repository]:
        cfg = self.repo_config
        password = cfg.password_source().read()
        options = cfg.storage_options()
        kwargs: dict[str, Any] = {
            "cache_dir": self.options.cache_dir,
            "use_cache": self.options.use_cache,
            "policy": self._policy(),
        }
        if options:
            kwargs["target_options"] = options
        use_one_malloc_arena()  # before the index loaders' threads make arenas (heap.py)
        try:
            repo = Repository.open(cfg.targets, password, **kwargs)
        except NoRepository:  # else the core's message names the target that lacks it
            if not self.options.init or self.options.dry_run:
                raise RepositoryNotFound(self._no_repository_message()) from None
            repo = self._init(password, kwargs)
        with contextlib.closing(repo):
            repo.lock_wait = self.options.retry_lock
            ledger = Ledger(repo.config.repo_id)
            ledger.seed(repo.targets)
            try:
                yield repo
            finally:
                ledger.save(repo.targets, f"run {self.job.name}")

    def _no_repository_message(self) -> str:
        where = ", ".join(self.repo_config.targets)
        run_init = f"'fogvault run {self.job.name} --init'"
        if self.options.init:  # and --dry-run, which creates nothing: --init alone does
            return (f"no repository at {where}: a dry run creates none; create it once with "
                    f"{run_init} (without --dry-run)")
        return f"no repository at {where}: create it once with {run_init} (or 'fogvault init')"

    def _policy(self) -> TargetPolicy:
        """The repository's policy: bandwidth limits from the command line, else the config
        file, else the environment (a daemon's next job sets the process's limit anew)."""
        cfg, options = self.repo_config, self.options
        return TargetPolicy.from_env(
            min_targets=cfg.min_targets,
            limit_upload=_first_given(options.limit_upload, cfg.limit_upload),
            limit_download=_first_given(options.limit_download, cfg.limit_download))

    def _init(self, password: bytes, kwargs: dict[str, Any]) -> Repository:
        cfg = self.repo_config
        if self.options.kdf is not None:
            kwargs["kdf"] = self.options.kdf
        repo = Repository.init(cfg.targets, password,
                               config=RepoConfig(compression_level=cfg.compression), **kwargs)
        self._note(f"created repository {repo.config.repo_id[:8]} at {', '.join(cfg.targets)}")
        return repo

    # ---- steps -------------------------------------------------------------------------

    def _carry_over_targets_behind(self) -> None:
        """The targets the job's previous run left behind. Every logged run records the
        targets still behind after it, so the previous record says it all: a run that stops
        before opening the repository (a ``before`` hook, the password, no target reachable)
        changed nothing, and records the same targets again (:meth:`_still_behind_if_unopened`).
        """
        previous = self._from_log(lambda: self.log.last(self.job.name))
        if previous is not None:
            self.known_behind = set(previous.targets_behind)

    def _keep_targets_of(self, repo: Repository) -> None:
        """Once the repository is open: the targets carried over that are still its targets."""
        self.opened = True
        urls = set(repo.targets.urls)
        self.known_behind = {url for url in self.known_behind if url in urls}
        self.record.targets_behind = sorted(self.known_behind)

    def _still_behind_if_unopened(self) -> None:
        """A run that failed before opening the repository repaired nothing: the targets the
        previous run left behind are still behind, and the next run must know it."""
        if not self.opened:
            self.record.targets_behind = sorted(self.known_behind)

    def _backup(self, repo: Repository) -> StepResult:
        job, record = self.job, self.record
        patterns = job.exclude + ExcludeRules.read_files(job.exclude_files)
        for line in pattern_warnings([*patterns, *job.iexclude]):  # would exclude nothing
            self._note(line)
        rules = ExcludeRules(patterns, job.exclude_caches, job.exclude_if_present, job.iexclude,
                             job.exclude_larger_than)
        options = BackupOptions(tags=list(job.tags), host=self.host, excludes=rules,
                                one_file_system=job.one_file_system, dry_run=self.options.dry_run,
                                skip_if_unchanged=job.skip_if_unchanged,
                                inode_flags=not job.no_flags, ignore_ctime=job.ignore_ctime,
                                ignore_inode=job.ignore_inode)
        result = Archiver(repo, options).run(job.paths)
        s = result.snapshot.summary
        saved = not (result.dry_run or result.unchanged_since)
        record.snapshot = result.snapshot.uid if saved else None
        record.unchanged_since = None if result.dry_run else result.unchanged_since
        record.bytes_added = s.bytes_added
        record.files = s.files_new + s.files_changed + s.files_unchanged
        record.errors = s.files_failed or result.warnings.total
        for warning in result.warnings[:5]:
            self._note(warning)
        self.known_behind.update(result.targets_behind)
        record.targets_behind = sorted(self.known_behind)
        for url, why in sorted(result.targets_behind.items()):  # k-of-N commit: partial
            self._note(f"target {url} is behind: {why}")
        if result.dry_run:
            name = "dry run"
        elif result.unchanged_since:
            name = f"unchanged since snapshot {result.unchanged_since}, none saved"
        else:
            name = f"snapshot {result.snapshot.uid}"
        failed = f", {record.errors} unreadable" if record.errors else ""
        behind = (f"; {counted(len(result.targets_behind), 'target')} behind"
                  if result.targets_behind else "")
        return StepResult("done", f"{name}: {s.files_new} new, {s.files_changed} changed, "
                                  f"{counted(s.files_unchanged, 'unchanged file')}{failed}; "
                                  f"added {format_size(s.bytes_added)}{behind}")

    def _repair_step(self, repo: Repository) -> None:
        """Repair; a check that found problems fails the run once the repair has run."""
        try:
            self._step("repair", lambda: self._repair(repo))
        except Exception as exc:
            if self.check_failure is None:
                raise
            self._note(f"repair failed: {error_message(exc)}")  # the check's failure leads
        if self.check_failure is not None:
            raise self.check_failure

    def _repair(self, repo: Repository) -> StepResult:
        if len(repo.targets.storages) < 2:
            return StepResult("skipped", "one target")
        if not self.record.targets_behind:
            return StepResult("skipped", "no target behind")
        if self.options.dry_run:
            return StepResult("would run", ", ".join(self.record.targets_behind))
        result = repair(repo)
        if not result.ok:  # the targets stay behind, so the run is partial
            return StepResult("incomplete", _incomplete_repair(result))
        self.record.targets_behind = []  # full redundancy again
        return StepResult("done", f"{counted(result.changes, 'object')} copied or fixed")

    def _forget(self, repo: Repository) -> StepResult:
        policy = self.job.retention
        if policy is None:
            return StepResult("skipped", "no retention set")
        # The paths exactly as the backup records them (parent symlinks resolved, duplicates
        # dropped), or no snapshot would ever match.
        wanted = sorted(os.fsdecode(p) for p in normalise_paths(self.job.paths))
        with NoLock() if self.options.dry_run else repo.lock():
            mine = [s for s in repo.snapshots()
                    if s.host == self.host and sorted(s.paths) == wanted]
            groups = apply_policy(mine, policy)
            if any(group.removes_all for group in groups):
                raise UsageError("the retention policy would remove every snapshot of this job;"
                                 " refusing")
            remove = [s.uid for group in groups for s in group.remove]
            if self.record.snapshot in remove:  # newer ones are dated ahead of this run
                remove.remove(self.record.snapshot)
                self._note(f"the retention policy would remove snapshot {self.record.snapshot},"
                           " which this run saved: snapshots of this job are dated after it (a "
                           "clock that was ahead?); it is kept")
            if remove:
                forget(repo, uids=remove, dry_run=self.options.dry_run)
        verb = "would remove" if self.options.dry_run else "removed"
        return StepResult("done", f"{verb} {len(remove)} of {counted(len(mine), 'snapshot')}; "
                                  f"{policy.describe()}")

    def _prune(self, repo: Repository) -> StepResult:
        waiting = self._not_due("prune", self.job.prune)
        if waiting is not None:
            return waiting
        try:
            from fogvault.maintenance.prune import PruneOptions, prune
        except ModuleNotFoundError as exc:
            if exc.name != "fogvault.maintenance.prune":
                raise
            return StepResult("unavailable", "this FogVault has no prune yet")
        result = prune(repo, PruneOptions(retry_lock=self.options.retry_lock))
        return StepResult("done", f"deleted {result.packs_deleted} and repacked "
                                  f"{counted(result.packs_repacked, 'pack')}, freed "
                                  f"{format_size(result.bytes_freed)}")

    def _check(self, repo: Repository) -> StepResult:
        waiting = self._not_due("check", self.job.check)
        if waiting is not None:
            return waiting
        try:
            from fogvault.maintenance.check import CheckOptions, check
        except ModuleNotFoundError as exc:
            if exc.name != "fogvault.maintenance.check":
                raise
            return StepResult("unavailable", "this FogVault has no check yet")
        subset = self.job.check_read_data_subset
        result = check(repo, CheckOptions(read_data_subset=subset))
        # Missing or damaged copies are what the repair step heals, from the healthy targets.
        self.record.targets_behind = [t.url for t in result.targets if not t.ok]
        # A target that is away (unreachable, no repository: a disk not mounted) is behind, and
        # so is one known to be behind that misses what it may have missed while away: the run
        # is partial, as without a check. Damage is what fails the run: copies missing that the
        # target must have held, copies of the wrong size or corrupt, and problems of the
        # repository as a whole.
        away = [f"{t.url} not checked: {t.error or 'unreachable'}"
                for t in result.targets if not t.reachable]
        lagging: list[str] = []
        problems = list(result.problems)
        for t in result.targets:
            if not t.reachable or t.ok:
                continue
            missed, lost = (self._missed_and_lost(repo, t.url, t.missing)
                            if t.url in self.known_behind else ([], t.missing))
            if missed:
                lagging.append(f"{t.url} is behind: {counted(len(missed), 'object')} missing")
            if lost or t.wrong_size or t.corrupt:
                problems.append(f"{t.url}: {len(lost)} missing, {len(t.wrong_size)} wrong size, "
                                f"{len(t.corrupt)} corrupt")
        if problems:
            message = f"check found {counted(len(problems), 'problem')}: {problems[0]}"
            self.check_failure = CheckFailed(message)
            for line in away + lagging:  # the step's line has room for the failure only
                self._note(f"check: {line}")
            return StepResult("failed", message)
        # Objects missing are not "no problems", even when the repair copies them.
        found = "no damage" if lagging else "no problems"
        read = f"; read {subset} of the data" if subset else ""
        if away:  # not every copy was checked: the check stays due, and runs again next time
            return StepResult("incomplete", "; ".join(
                [f"{found} on the targets checked{read}", *lagging, *away]))
        return StepResult("done", "; ".join([found + read, *lagging]))

    @staticmethod
    def _missed_and_lost(repo: Repository, url: str, missing: list[str]
                         ) -> tuple[list[str], list[str]]:
        """Split what the check found missing on ``url``, a target known to be behind, into
        what it may have missed while away, and what it must have held: lost.

        Missed: snapshots, index files, and packs that only index files it lacks list (the
        changes written without it). Lost: packs that an index file it holds lists (index
        files are written after their packs, to the targets that took the packs), and
        everything else (the config, key files). An index file it holds that cannot be read
        leaves no way to tell: its missing packs count as lost."""
        target = next(t for t in repo.targets.targets if t.url == url)
        missing_packs = {n for n in missing if pack_id_from_name(n) is not None}
        held_listed: set[str] = set()
        if missing_packs:
            held = repo.targets.last_listing(INDEX_DIR, target)
            if held is None:  # not listed by the check: the live files it does not miss
                held = repo.live_index_names() - set(missing)
            loaded = {index_name(i) for i in repo.index_ids()}  # superseded ones too
            for name in sorted(held & loaded):
                try:
                    held_listed.update(pack_name(p) for p in repo.index_file_packs(name))
                except FogVaultError:
                    held_listed = missing_packs
                    break
        missed, lost = [], []
        for name in missing:
            if name.startswith((SNAPSHOTS_DIR, INDEX_DIR)) or (
                    name in missing_packs and name not in held_listed):
                missed.append(name)
            else:
                lost.append(name)
        return missed, lost

    def _from_log(self, read: Callable[[], _T]) -> _T | None:
        """What ``read`` finds in the run log; None, and a note, when the log cannot be read:
        the run goes on as if the job had never run (prune and check are due)."""
        try:
            return read()
        except RunLogUnreadable as exc:
            if not self.log_unreadable:
                self.log_unreadable = True
                self._note(f"{exc}; the run goes on as if the job had never run")
            return None

    def _not_due(self, step: str, schedule: Schedule | None) -> StepResult | None:
        """A result when ``step`` is not to run now; None when it is to run."""
        if schedule is None:
            return StepResult("skipped", f"no {step} schedule set")
        last = self._from_log(lambda: self.log.last_step_done(self.job.name, step))
        now = _now()
        if last is not None and not is_due(schedule, last, now):
            upcoming = next_after_last(schedule, last, now)
            return StepResult("not due", f"last {last:%Y-%m-%d %H:%M}, "
                                         f"due from {upcoming:%Y-%m-%d %H:%M} ({schedule.text})")
        if self.options.dry_run:
            return StepResult("would run", f"due ({schedule.text})")
        return None


# ---- reporting -------------------------------------------------------------------------------


def _incomplete_repair(result: RepairResult) -> str:
    """What a repair did, and why it could not do the rest: the targets it could not reach,
    the copies it could not write, the objects no target holds a good copy of."""
    parts = [f"{counted(result.changes, 'object')} copied or fixed"]
    for target in result.targets:
        if not target.reachable:
            parts.append(f"{target.url} not reached: {target.error or 'unreachable'}")
        elif target.failed or target.skipped:
            first = (target.failed or target.skipped)[0]
            parts.append(f"{target.url}: {len(target.failed)} failed, "
                         f"{len(target.skipped)} held back (first: {first})")
    if result.unrecoverable:
        parts.append(f"{len(result.unrecoverable)} could not be: {result.unrecoverable[0]}")
    return "; ".join(parts)


def error_message(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = one_line(exc)
    if isinstance(exc, FogVaultError):
        return text
    return f"unexpected error ({type(exc).__name__}): {text}"


#: Where a step's status starts in the summary: after the longest name, 'on_failure: '.
_STEP_COLUMN = len("on_failure: ")


def summary_lines(record: RunRecord) -> list[str]:
    """The run's summary: a headline, then one line per step, then messages."""
    dry = " (dry run)" if record.dry_run else ""
    lines = [f"job {record.job}: {record.result} (exit {record.exit_code}) in "
             f"{record.duration_s:.1f} s{dry}"]
    if record.error:
        lines.append(f"  error: {record.error}")
    lines += [f"  {name + ':':<{_STEP_COLUMN}}{step.status}"
              + (f": {step.detail}" if step.detail else "")
              for name, step in record.steps.items()]
    lines += [f"  note: {message}" for message in record.messages]
    return lines


def _first_given(*values: int | None) -> int | None:
    """The first value that is not None (0 counts: it means "no limit")."""
    return next((v for v in values if v is not None), None)
