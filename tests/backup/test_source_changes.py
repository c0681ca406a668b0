"""Source files that change or vanish between being listed and being read. The progress hook
``file_started`` runs after the file's lstat and before it is opened, so a test can change
the file at exactly that moment, every time."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from fogvault import warning_list
from fogvault.backup import archiver
from fogvault.backup.archiver import Archiver, BackupOptions, BackupResult
from fogvault.backup.progress import BackupProgress
from fogvault.treewalk import walk
from fogvault.warning_list import WarningList


class MeddlingProgress(BackupProgress):
    def __init__(self, target: Path, action) -> None:
        self.target = os.fsencode(target)
        self.action = action
        self.warnings: list[str] = []

    def file_started(self, path: bytes, size: int) -> None:
        if path == self.target:
            self.action(Path(os.fsdecode(path)))

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def _names(repo, snapshot) -> set[str]:
    return {os.fsdecode(p).rsplit("/", 1)[-1] for p, n in walk(repo, snapshot.tree)}


def test_file_vanishing_before_it_is_read_is_a_warning(make_repo, tmp_path):
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "stays").write_text("kept")
    (src / "goes").write_text("deleted mid-backup")
    progress = MeddlingProgress(src / "goes", Path.unlink)
    result = Archiver(repo, BackupOptions(), progress).run([str(src)])
    assert any("goes" in w for w in result.warnings) and progress.warnings
    assert result.snapshot.summary.files_failed == 1
    assert "stays" in _names(repo, result.snapshot) and "goes" not in _names(repo, result.snapshot)


def test_file_changing_while_read_is_stored_as_read_and_read_again_next_time(make_repo,
                                                                              tmp_path,
                                                                              trust_recent_entries):
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    target = src / "growing"
    target.write_bytes(b"a" * 1000)

    def grow(path: Path) -> None:
        with path.open("ab") as f:
            f.write(b"b" * 500)

    first = Archiver(repo, BackupOptions(), MeddlingProgress(target, grow)).run([str(src)])
    assert any("changed while it was read" in w for w in first.warnings)
    assert first.snapshot.summary.bytes_read == 1500
    second = Archiver(repo, BackupOptions()).run([str(src)])  # nothing changes this time
    assert second.snapshot.summary.files_changed == 1  # the torn copy is not trusted
    assert second.snapshot.summary.bytes_read == 1500 and not second.warnings
    third = Archiver(repo, BackupOptions()).run([str(src)])
    assert third.snapshot.summary.bytes_read == 0  # now it is settled


class VanishingProgress(BackupProgress):
    """Deletes every file just before it is read; counts the warnings reported live."""

    def __init__(self) -> None:
        self.reported = 0

    def file_started(self, path: bytes, size: int) -> None:
        os.unlink(path)

    def warning(self, message: str) -> None:
        self.reported += 1


def test_a_run_keeps_the_first_warnings_and_counts_the_rest(make_repo, reopen, tmp_path,
                                                            monkeypatch):
    """Every warning is reported as it happens; the result and the snapshot keep the first
    MAX_WARNINGS and a line counting the rest (200 bytes a warning, kept for a run over
    millions of unreadable files, was unbounded)."""
    monkeypatch.setattr(warning_list, "MAX_WARNINGS", 5)
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"f{i:02}").write_text("deleted mid-backup")
    progress = VanishingProgress()
    result = Archiver(repo, BackupOptions(), progress).run([str(src)])
    assert progress.reported == result.warnings.total == 12
    assert result.snapshot.summary.files_failed == 12
    assert [w.rsplit("/", 1)[-1][:3] for w in result.warnings[:5]] == [
        "f00", "f01", "f02", "f03", "f04"]
    assert result.warnings[5:] == ["... and 7 more warnings"]
    recorded = reopen(repo).load_snapshot(result.snapshot.uid).warnings
    assert recorded == list(result.warnings)


@dataclass
class Summary:
    warnings: WarningList


def test_a_warning_list_built_from_a_list_is_bounded_the_same_way(monkeypatch):
    monkeypatch.setattr(warning_list, "MAX_WARNINGS", 2)
    assert WarningList.of(["a", "b"]) == ["a", "b"]
    bounded = WarningList.of(["a", "b", "c", "d"])
    assert bounded == ["a", "b", "... and 2 more warnings"] and bounded.total == 4
    assert asdict(Summary(bounded)) == {"warnings": bounded}  # a copy, not bounded again


class ShrinksOnceRead(BackupProgress):
    """Cuts the file short once its bytes have been read, before the backup's final fstat:
    the size stat then gives is smaller than what was stored."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.done = False

    def bytes_done(self, n: int) -> None:
        if not self.done:
            self.done = True
            os.truncate(self.target, 600)


def test_a_file_is_stored_with_the_size_read_not_the_size_stat_gave(make_repo, tmp_path):
    """The size used to be the fstat after the read: the snapshot listed 600 bytes and held
    1,000, and --verify called the exact restore a mismatch (a file that grew got zeros it
    never had)."""
    from fogvault.restore.restorer import RestoreOptions, Restorer

    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "log").write_bytes(b"a" * 1000)
    result = Archiver(repo, BackupOptions(), ShrinksOnceRead(src / "log")).run([str(src)])
    assert any("changed while it was read" in w for w in result.warnings)
    [node] = [n for p, n in walk(repo, result.snapshot.tree) if p.endswith(b"/log")]
    assert node.size == 1000
    out = tmp_path / "out"
    restored = Restorer(repo, result.snapshot, RestoreOptions(target=str(out), verify=True)).run()
    assert not restored.warnings
    assert (out / str(src / "log").lstrip("/")).read_bytes() == b"a" * 1000


def test_a_procfs_file_is_stored_with_what_it_reads(make_repo):
    """procfs gives sizes of 0 and its sysctl files refuse reads of 4 MiB or more (ENOMEM):
    the file was a "read error" warning."""
    repo = make_repo()
    result = Archiver(repo, BackupOptions()).run(["/proc/sys/kernel/ostype"])
    assert not result.warnings
    [(_, node)] = [(p, n) for p, n in walk(repo, result.snapshot.tree) if p.endswith(b"ostype")]
    assert node.size == len(Path("/proc/sys/kernel/ostype").read_bytes()) > 0


def test_a_file_replaced_by_a_fifo_before_it_is_opened_is_skipped_not_waited_on(make_repo,
                                                                                tmp_path):
    """Opening a fifo waits for a writer: without O_NONBLOCK the backup waited for ever."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "data").write_text("a file when listed")

    def replace_by_fifo(path: Path) -> None:
        path.unlink()
        os.mkfifo(path)

    progress = MeddlingProgress(src / "data", replace_by_fifo)
    result = _not_waiting_on(src / "data", Archiver(repo, BackupOptions(), progress).run, src)
    assert any("replaced by something that is not a file" in w for w in result.warnings)


def _not_waiting_on(fifo: Path, run: Callable[[list[str]], BackupResult], src: Path
                    ) -> BackupResult:
    """``run([src])``'s result; fails if the backup waited for a writer to ``fifo``."""
    results = []
    backup = threading.Thread(target=lambda: results.append(run([str(src)])))
    backup.start()
    backup.join(timeout=60)  # a bound for a failing test, not a synchronisation
    if backup.is_alive():  # let the hung open return, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        backup.join()
        raise AssertionError("the backup waited on a fifo")
    return results[0]


def test_a_path_given_below_another_given_path_is_never_excluded(make_repo, tmp_path):
    from fogvault.backup.excludes import ExcludeRules

    repo = make_repo()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("a")
    (src / "sub" / "b").write_text("b")
    options = BackupOptions(excludes=ExcludeRules(["sub"]))
    result = Archiver(repo, options).run([str(src), str(src / "sub")])
    assert {"a", "sub", "b"} <= _names(repo, result.snapshot)
    alone = Archiver(repo, options).run([str(src)])  # not given: excluded as asked
    assert "sub" not in _names(repo, alone.snapshot)


def test_a_given_path_below_an_excluded_folder_is_reached_through_it(make_repo, tmp_path):
    """The excluded folder ``build`` (and the cache folder, whose contents are left out) are
    stored with only the way to the given paths below them."""
    from fogvault.backup.excludes import ExcludeRules

    repo = make_repo()
    src = tmp_path / "src"
    for folder in ("build/keep", "build/other", "cache/want", "cache/junk"):
        (src / folder).mkdir(parents=True)
        (src / folder / "f").write_text(folder)
    (src / "cache" / "CACHEDIR.TAG").write_bytes(
        b"Signature: 8a477f597d28d172789f06886806bc55\n")
    options = BackupOptions(excludes=ExcludeRules([str(src / "build")], exclude_caches=True))
    given = [str(src), str(src / "build" / "keep"), str(src / "cache" / "want")]
    result = Archiver(repo, options).run(given)
    stored = {os.fsdecode(p).split("/src/", 1)[1] for p, _ in walk(repo, result.snapshot.tree)
              if b"/src/" in p}
    assert stored == {"build", "build/keep", "build/keep/f", "cache", "cache/want",
                      "cache/want/f"}


def test_a_later_name_of_a_hardlinked_file_gets_the_size_of_what_was_read(make_repo, tmp_path):
    """The first name is read and stored at the bytes read; a later name shares its content
    and so must share that size, not its own lstat's (which a restore would pad to)."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"a" * 1000)
    os.link(src / "a", src / "b")
    result = Archiver(repo, BackupOptions(), ShrinksOnceRead(src / "a")).run([str(src)])
    sizes = {p.rsplit(b"/", 1)[-1]: n.size for p, n in walk(repo, result.snapshot.tree)
             if n.type == "file"}
    assert sizes == {b"a": 1000, b"b": 1000}


def test_an_entry_changed_around_its_parents_run_is_read_again(make_repo, tmp_path,
                                                                monkeypatch):
    """Racy timestamps: a file changed again within one tick of a coarse file system clock
    after the parent read it keeps its size, mtime and ctime, so an entry whose ctime is that
    close to the parent's start, or later, is not trusted: the file is read again. Here the
    margin is made an hour wide, so the file just written falls in it; with no margin the
    same backup trusts the entry."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "db").write_bytes(os.urandom(3000))
    Archiver(repo, BackupOptions()).run([str(src)])
    monkeypatch.setattr(archiver, "RACY_MARGIN_NS", 3600 * 10**9)
    racy = Archiver(repo, BackupOptions()).run([str(src)]).snapshot.summary
    assert (racy.bytes_read, racy.files_changed) == (3000, 1)
    monkeypatch.setattr(archiver, "RACY_MARGIN_NS", 0)
    settled = Archiver(repo, BackupOptions()).run([str(src)]).snapshot.summary
    assert (settled.bytes_read, settled.files_unchanged) == (0, 1)


def test_a_given_path_below_an_excluded_folder_of_a_whole_system_backup_is_stored(
        make_repo, tmp_path):
    """With ``/`` among the paths, the folders on the way to the other given path (all excluded
    here) are stored too: the snapshot named trees that were never saved."""
    from fogvault.backup.excludes import ExcludeRules

    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"below an excluded folder")
    options = BackupOptions(excludes=ExcludeRules(["/*"]))
    result = Archiver(repo, options).run(["/", str(src)])
    files = {p: n for p, n in walk(repo, result.snapshot.tree) if n.type == "file"}
    assert list(files) == [os.fsencode(src / "f")]
    assert repo.load_blob(files[os.fsencode(src / "f")].content[0]) == b"below an excluded folder"


def test_a_fifo_named_cachedir_tag_neither_blocks_nor_marks_a_cache(make_repo, tmp_path):
    from fogvault.backup.excludes import ExcludeRules

    repo = make_repo()
    src = tmp_path / "src"
    (src / "cache").mkdir(parents=True)
    (src / "cache" / "f").write_text("kept")
    os.mkfifo(src / "cache" / "CACHEDIR.TAG")
    options = BackupOptions(excludes=ExcludeRules(exclude_caches=True))
    result = _not_waiting_on(src / "cache" / "CACHEDIR.TAG", Archiver(repo, options).run, src)
    assert {"CACHEDIR.TAG", "f"} <= _names(repo, result.snapshot)


def test_given_paths_below_excluded_folders_with_names_that_sort_close(make_repo, tmp_path):
    """The given paths below an excluded folder are a range of the sorted given paths: a-b
    sorts before a/ and a0 after it, and each folder leads to its own given path only."""
    from fogvault.backup.excludes import ExcludeRules

    repo = make_repo()
    src = tmp_path / "src"
    for folder in ("a", "a-b", "a0"):
        for name in ("keep", "skip"):
            (src / folder / name).mkdir(parents=True)
            (src / folder / name / "f").write_text(f"{folder}/{name}")
    given = [str(src), *(str(src / folder / "keep") for folder in ("a", "a-b", "a0"))]
    result = Archiver(repo, BackupOptions(excludes=ExcludeRules(["a*"]))).run(given)
    stored = {os.fsdecode(p).split("/src/", 1)[1] for p, _ in walk(repo, result.snapshot.tree)
              if b"/src/" in p}
    assert stored == {path for folder in ("a", "a-b", "a0")
                      for path in (folder, f"{folder}/keep", f"{folder}/keep/f")}
