"""Restore worker processes (fogvault/restore/workers.py): when they are used, and that what
goes wrong in one (a damaged pack, a failed file, a crash, an interrupt) reaches the restoring
process as it would have from a thread: the same error and exit code, the same warnings, and
no worker left running."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import FogVaultError
from fogvault.repo.format import BlobType, pack_name
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot
from fogvault.restore import restorer
from fogvault.restore.restorer import RestoreOptions, Restorer, RestoreSummary
from fogvault.storage.faulty import FaultyStorage
from fogvault.storage.local import LocalStorage
from fogvault.targets.replicated import TargetSet
from tests.restore.test_write_errors import read_tree


def make_tree(root: Path, files: int) -> dict[str, bytes]:
    """``files`` small files in a few folders, each with its own content."""
    contents = {}
    for n in range(files):
        rel = f"d{n % 7}/f{n:05d}.txt"
        contents[rel] = f"file {n}\n".encode() * (1 + n % 50)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contents[rel])
    return contents


def backed_up(repo: Repository, src: Path) -> Snapshot:
    return Archiver(repo, BackupOptions()).run([str(src)]).snapshot


class Spy:
    """Counts the tasks handed to worker processes and keeps their processes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch,
                 on_start: Callable[[Any], None] = lambda setup: None) -> None:
        self.tasks: list[int] = []
        self.processes: list[Any] = []
        real_submit = restorer.WriterProcesses.submit
        real_start = restorer.WriterProcesses._start

        def submit(pool: Any, jobs: list[Any], locations: list[Any]) -> None:
            self.tasks.append(len(jobs))
            real_submit(pool, jobs, locations)

        def start(pool: Any, setup: Any) -> None:
            if not self.processes:
                on_start(setup)
            real_start(pool, setup)
            self.processes.append(pool._workers[-1].process)

        monkeypatch.setattr(restorer.WriterProcesses, "submit", submit)
        monkeypatch.setattr(restorer.WriterProcesses, "_start", start)

    def all_ended(self) -> bool:
        return all(p.poll() is not None for p in self.processes)


def restore(repo: Repository, snapshot: Snapshot, target: Path, **options: Any) -> RestoreSummary:
    return Restorer(repo, snapshot, RestoreOptions(target=str(target), **options)).run()


def data_packs(repo: Repository, repo_dir: Path) -> list[Path]:
    """The pack files in ``repo_dir`` holding file contents only (no trees: the plan must
    still load them)."""
    types: dict[bytes, set[BlobType]] = {}
    for entry in repo.index:
        types.setdefault(entry.pack_id, set()).add(entry.blob_type)
    packs = [repo_dir / pack_name(pack_id) for pack_id, kinds in types.items()
             if kinds == {BlobType.DATA}]
    assert packs
    return packs


def test_many_files_from_local_folders_are_written_by_workers(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Left to decide, a restore of at least PROCESS_MIN_FILES files from local folders uses
    worker processes, in tasks of at most TASK_FILES consecutive files; metadata is kept."""
    monkeypatch.setattr(restorer, "PROCESS_MIN_FILES", 40)
    monkeypatch.setattr(restorer, "TASK_FILES", 16)
    spy = Spy(monkeypatch)
    repo = make_repo()
    src = tmp_path / "src"
    contents = make_tree(src, 100)
    os.utime(src / "d3", ns=(1, 1_234_567_891_000_000_000))
    summary = restore(repo, backed_up(repo, src), tmp_path / "out")
    out = tmp_path / "out" / str(src).lstrip("/")
    assert read_tree(out) == contents
    assert summary.warnings == [] and summary.files == 100
    assert sum(spy.tasks) == 100 and max(spy.tasks) == 16
    assert len(spy.processes) == restorer.PROCESSES and spy.all_ended()
    assert (out / "d3").stat().st_mtime_ns == 1_234_567_891_000_000_000
    some = f"d1/f{1:05d}.txt"
    assert (out / some).stat().st_mtime_ns == (src / some).stat().st_mtime_ns


def test_few_files_or_wrapped_targets_are_written_here(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Below PROCESS_MIN_FILES, or when a target is not a plain folder (here one injecting
    faults, which a worker opening the folder by path would bypass), threads write."""
    spy = Spy(monkeypatch)
    repo = make_repo()
    src = tmp_path / "src"
    contents = make_tree(src, 20)
    snapshot = backed_up(repo, src)
    restore(repo, snapshot, tmp_path / "few")
    assert not spy.tasks
    wrapped = TargetSet([FaultyStorage(LocalStorage(repo.targets.urls[0]))])
    assert wrapped.local_folders() is None
    monkeypatch.setattr(repo, "targets", wrapped)
    restore(repo, snapshot, tmp_path / "wrapped", processes=True)
    assert not spy.tasks
    assert read_tree(tmp_path / "wrapped" / str(src).lstrip("/")) == contents


def test_local_folders_in_read_order(tmp_path: Path) -> None:
    targets = TargetSet([LocalStorage(tmp_path / "a"), LocalStorage(tmp_path / "b")])
    assert targets.local_folders() == [str(tmp_path / "a"), str(tmp_path / "b")]
    targets.drop(targets.targets[0], "gone")
    assert targets.local_folders() == [str(tmp_path / "b")]


def corrupt_data_packs(repo: Repository, repo_dir: Path) -> None:
    for pack in data_packs(repo, repo_dir):
        data = bytearray(pack.read_bytes())
        data[len(data) // 2] ^= 0xFF
        pack.chmod(0o644)
        pack.write_bytes(bytes(data))


def test_a_damaged_pack_is_reported_the_same_way_by_a_worker(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    repo = make_repo()
    src = tmp_path / "src"
    make_tree(src, 30)
    snapshot = backed_up(repo, src)
    corrupt_data_packs(repo, tmp_path / "repo")
    outcomes = []
    for processes in (False, True):
        repo.targets.damaged.clear()
        out = tmp_path / f"out-{processes}"
        summary = restore(repo, snapshot, out, processes=processes)
        # the same warnings as from a thread, and the damaged copies known here, for the ledger
        outcomes.append((sorted(w.replace(str(out), "OUT") for w in summary.warnings),
                         set(repo.targets.damaged)))
        assert bool(spy.tasks) == processes and spy.all_ended()
    assert outcomes[0] == outcomes[1] and outcomes[0][0] and outcomes[0][1]
    assert all("not restored in full" in w for w in outcomes[0][0])


def test_a_worker_reads_the_healthy_copy_and_its_warning_is_logged_here(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    repo = make_repo("one", "two")
    first: list[str] = []

    def corrupt_first(setup: Any) -> None:  # the copies the workers will read first
        first.append(setup.folders[0])
        corrupt_data_packs(repo, Path(setup.folders[0]))

    spy = Spy(monkeypatch, corrupt_first)
    src = tmp_path / "src"
    contents = make_tree(src, 30)
    snapshot = backed_up(repo, src)
    with caplog.at_level(logging.WARNING, logger="fogvault"):
        summary = restore(repo, snapshot, tmp_path / "out", processes=True)
    assert spy.tasks and summary.warnings == []
    assert read_tree(tmp_path / "out" / str(src).lstrip("/")) == contents
    assert "trying another target" in caplog.text
    bad = {(url, name) for url, name in repo.targets.damaged}  # known here, for the ledger
    assert bad and {url for url, _ in bad} == set(first)


def test_a_file_a_worker_cannot_create_is_a_warning_here(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's warnings reach the summary; with --verify, a file it could not create is not
    verified (nor reported as a mismatch)."""
    spy = Spy(monkeypatch)
    repo = make_repo()
    src = tmp_path / "src"
    make_tree(src, 30)
    snapshot = backed_up(repo, src)
    out = tmp_path / "out"
    real_plan = Restorer._plan

    def plan_then_block(self: Restorer, root: Any) -> Any:
        for step in real_plan(self, root):
            # a folder where the worker will create d2/f00002.txt (after the plan's checks)
            os.mkdir(out / str(src).lstrip("/") / "d2" / "f00002.txt")
            yield step

    monkeypatch.setattr(Restorer, "_plan", plan_then_block)
    summary = restore(repo, snapshot, out, processes=True, verify=True)
    assert spy.tasks
    assert len(summary.warnings) == 1
    assert "d2/f00002.txt: cannot restore: File exists" in summary.warnings[0]
    assert summary.verified == 29


def test_a_worker_that_dies_is_an_error_not_a_hang(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    monkeypatch.setattr(restorer, "TASK_FILES", 5)
    real_submit = restorer.WriterProcesses.submit

    def kill_first(pool: Any, jobs: list[Any], locations: list[Any]) -> None:
        if len(spy.tasks) == 1:
            pool._workers[0].process.kill()  # the other is stopped by the restore
        real_submit(pool, jobs, locations)

    monkeypatch.setattr(restorer.WriterProcesses, "submit", kill_first)
    repo = make_repo()
    src = tmp_path / "src"
    make_tree(src, 40)
    with pytest.raises(FogVaultError, match="restore worker stopped unexpectedly"):
        restore(repo, backed_up(repo, src), tmp_path / "out", processes=True)
    assert spy.all_ended()


def test_an_interrupted_restore_stops_its_workers(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)

    def interrupted(self: Restorer, done: int, stored: int, warnings: list[str]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Restorer, "_report", interrupted)
    repo = make_repo()
    src = tmp_path / "src"
    make_tree(src, 40)
    with pytest.raises(KeyboardInterrupt):
        restore(repo, backed_up(repo, src), tmp_path / "out", processes=True)
    assert spy.processes and spy.all_ended()


def test_no_processes_to_be_had_means_restoring_in_this_one(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from fogvault.restore import workers

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(workers.subprocess, "Popen", refuse)
    repo = make_repo()
    src = tmp_path / "src"
    contents = make_tree(src, 30)
    with caplog.at_level(logging.WARNING, logger="fogvault"):
        summary = restore(repo, backed_up(repo, src), tmp_path / "out", processes=True)
    assert summary.warnings == []
    assert read_tree(tmp_path / "out" / str(src).lstrip("/")) == contents
    assert "cannot start restore workers (Resource temporarily unavailable)" in caplog.text


def test_the_command_restores_many_files_with_workers(fogvault: Callable[..., Any],
                                                      tmp_path: Path) -> None:
    """The real command, left to decide: workers start (this interpreter, this FogVault) and
    the tree comes back whole."""
    src = tmp_path / "src"
    contents = make_tree(src, restorer.PROCESS_MIN_FILES + 50)
    assert fogvault("init", "-r", "repo").returncode == 0
    assert fogvault("backup", "-r", "repo", str(src)).returncode == 0
    done = fogvault("-vv", "restore", "-r", "repo", "-V", "latest", "-t", "out")
    assert done.returncode == 0, done.stderr
    assert b"contents written by 2 worker processes" in done.stderr
    assert read_tree(tmp_path / "out" / str(src).lstrip("/")) == contents


def test_workers_run_this_fogvault_whatever_the_current_folder_holds(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker gets this process's module path and nothing from the current folder: a
    restore started in a folder holding another ``fogvault`` (a source checkout of another
    version, say) must not run that one's worker, nor a stray ``json.py`` there."""
    decoy = tmp_path / "elsewhere" / "fogvault"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise SystemExit(0)  # not the FogVault under test\n")
    ran = tmp_path / "decoy-ran"  # nor any other module from there, before the path is set
    (decoy.parent / "json.py").write_text(f"open({str(ran)!r}, 'w').close()\n")
    spy = Spy(monkeypatch)
    repo = make_repo()
    src = tmp_path / "src"
    contents = make_tree(src, 30)
    snapshot = backed_up(repo, src)
    monkeypatch.chdir(decoy.parent)
    restore(repo, snapshot, tmp_path / "out", processes=True)
    assert spy.tasks and not ran.exists()
    assert read_tree(tmp_path / "out" / str(src).lstrip("/")) == contents


def test_an_unexpected_worker_error_is_one_line_with_its_type() -> None:
    """A worker's OSError (a full disk, say) comes back as itself, as from a thread; an error
    that cannot be pickled comes back as a FogVaultError whose first line names it."""
    from fogvault.restore.workers import _portable

    full = OSError(errno.ENOSPC, "No space left on device")
    assert _portable(full) is full

    class Unpicklable(Exception):
        def __reduce__(self) -> Any:
            raise TypeError("no")

    try:
        raise Unpicklable("odd")
    except Unpicklable as exc:
        portable = _portable(exc)
    assert isinstance(portable, FogVaultError)
    assert str(portable) == "restore worker failed: Unpicklable: odd"
    assert portable.__notes__[0].startswith("Traceback")  # for -v


def test_workers_write_into_the_folder_opened_not_whatever_its_path_becomes(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The restore folder reaches the workers as the restoring process's open descriptor: a
    symlink swapped in for it before they start redirects nothing."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()

    def swap(setup: Any) -> None:
        out.rename(tmp_path / "out-moved")
        out.symlink_to(elsewhere)

    spy = Spy(monkeypatch, swap)
    repo = make_repo()
    src = tmp_path / "src"
    contents = make_tree(src, 30)
    restore(repo, backed_up(repo, src), out, processes=True)
    assert spy.tasks
    assert list(elsewhere.iterdir()) == []
    assert read_tree(tmp_path / "out-moved" / str(src).lstrip("/")) == contents
