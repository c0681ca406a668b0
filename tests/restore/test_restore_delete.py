"""``restore --delete`` (restic 0.17's): a restore over an existing tree deletes, in the folders
it restores, what the snapshot does not have there; only what the filters select; never through
a symlink, never above the snapshot's backed-up paths; nothing at all unless every entry of the
snapshot was restored in full. Through the library and the real CLI."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import AS_USER, PASSWORD

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import UsageError
from fogvault.repo.format import pack_name
from fogvault.repo.repository import Repository
from fogvault.restore import extras
from fogvault.restore.progress import RestoreProgress
from fogvault.restore.restorer import RestoreOptions, Restorer, RestoreSummary
from fogvault.restore.safefs import Parts
from tests.restore.test_damaged_data import _chunks, _flip
from tests.restore.test_restore_options import (
    ALL,
    FILES,
    MTIME_NS,
    Backed,
    back_up,
    listing,
    make_source,
)
from tests.restore.test_safefs import TMPFS, mounted


@pytest.fixture
def backed(make_repo: Callable[..., Repository], tmp_path: Path) -> Backed:
    """test_restore_options' tree backed up, with a folder mtime to check after deleting."""
    src = tmp_path / "src"
    make_source(src)
    for folder in (src / "docs", src / "docs" / "sub", src):
        os.utime(folder, ns=(MTIME_NS, MTIME_NS))
    return back_up(make_repo(), src)


def _restored(backed: Backed, target: Path) -> Path:
    """A full restore at ``target``; the source's place below it."""
    backed.restore(target)
    root = backed.restored(target)
    assert listing(root) == ALL
    return root


def _add_extras(root: Path, outside: Path) -> None:
    """Entries the snapshot does not have: a file, a folder tree, symlinks to what lies
    outside the target (a folder with a file in it, and a file)."""
    (root / "extra.txt").write_bytes(b"extra")
    (root / "docs" / "sub" / "old" / "deeper").mkdir(parents=True)
    (root / "docs" / "sub" / "old" / "deeper" / "f").write_bytes(b"old")
    (root / "docs" / "sub" / "old" / "g").write_bytes(b"old")
    outside.mkdir()
    (outside / "precious").write_bytes(b"keep me")
    os.symlink(outside, root / "docs" / "to-outside")
    os.symlink(outside / "precious", root / "img" / "to-precious")


def _cli(fogvault: Callable[..., Any], backed: Backed, target: Path, *args: str,
         wrap: list[str] | None = None) -> Any:
    return fogvault("-r", backed.repo.targets.urls[0], "restore", "latest", "-t", str(target),
                    *args, wrap=wrap)


def _json_lines(done: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


# ---- what is deleted ----------------------------------------------------------------------


def test_delete_brings_the_tree_back_to_the_snapshot(backed: Backed, tmp_path: Path) -> None:
    """Extra files, folders (with what is in them) and symlinks go; a symlink to a folder
    outside the target goes as a link, what it points to stays; the restored folders keep the
    snapshot's times although their entries changed; each deletion is told of, top-most."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    _add_extras(root, tmp_path / "outside")
    told: list[tuple[bytes, bool]] = []

    summary = Restorer(backed.repo, backed.snapshot,
                       RestoreOptions(target=str(target), delete=True),
                       deleted=lambda path, is_dir: told.append((path, is_dir))).run()

    assert listing(root) == ALL
    assert listing(tmp_path / "outside") == {"precious": b"keep me"}
    assert summary.warnings == []
    assert sorted(told) == sorted([
        (bytes(root / "extra.txt"), False), (bytes(root / "docs" / "sub" / "old"), True),
        (bytes(root / "docs" / "to-outside"), False), (bytes(root / "img" / "to-precious"),
                                                       False)])
    assert summary.deleted == 4
    for folder in (root / "docs", root / "docs" / "sub", root):
        assert folder.stat().st_mtime_ns == MTIME_NS, folder


def test_without_delete_extra_entries_stay(backed: Backed, tmp_path: Path,
                                           fogvault: Callable[..., Any]) -> None:
    """The old behaviour, through the library and the CLI (whose summary says 0 deleted)."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    _add_extras(root, tmp_path / "outside")
    before = listing(root)

    assert backed.restore(target).deleted == 0
    done = fogvault("-r", backed.repo.targets.urls[0], "--json", "restore", "latest", "-t",
                    str(target))

    assert done.returncode == 0, done.stderr.decode()
    assert _json_lines(done)[-1]["deleted"] == 0
    assert listing(root) == before
    assert listing(root) != ALL


def test_nothing_above_the_backed_up_paths_is_deleted(backed: Backed, tmp_path: Path) -> None:
    """The snapshot holds the folders above its paths (the target's own entries, tmp_path's
    parents) only as the way to them: what else they hold here was never backed up."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    (target / "unrelated").write_bytes(b"u")
    (root.parent / "beside-src").mkdir()
    (root / "extra").write_bytes(b"x")

    summary = backed.restore(target, delete=True)

    assert summary.deleted == 1
    assert listing(root) == ALL
    assert (target / "unrelated").read_bytes() == b"u"
    assert (root.parent / "beside-src").is_dir()


DEEP = 1100  # folders in a chain: more than Python's recursion limit


def test_a_folder_deeper_than_the_recursion_limit_is_deleted(backed: Backed,
                                                             tmp_path: Path) -> None:
    target = tmp_path / "out"
    root = _restored(backed, target)
    fd = os.open(root, os.O_RDONLY)
    for _ in range(DEEP):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)

    try:
        summary = backed.restore(target, delete=True)
    finally:
        _remove_chain(root)  # if left: pytest's own clean-up would hit the recursion limit

    assert summary.warnings == [] and summary.deleted == 1
    assert listing(root) == ALL


def _remove_chain(folder: Path) -> None:
    """Remove the chain of "d" folders below ``folder``, one descriptor open at a time."""
    fd, depth = os.open(folder, os.O_RDONLY), 0
    try:
        while depth < DEEP:
            inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd, depth = inner, depth + 1
    except FileNotFoundError:
        pass
    while depth:
        parent = os.open("..", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd, depth = parent, depth - 1
        os.rmdir("d", dir_fd=fd)
    os.close(fd)


def test_overwrite_never_keeps_snapshot_names_and_delete_still_deletes(
    backed: Backed, tmp_path: Path
) -> None:
    """--overwrite decides about the snapshot's names (here: keep them, even a folder where
    the snapshot has a file), --delete about the others."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    (root / "notes.txt").write_bytes(b"changed")
    (root / "img" / "x.png").unlink()
    (root / "img" / "x.png").mkdir()
    (root / "img" / "x.png" / "inside").write_bytes(b"in a folder where a file was")
    (root / "img" / "extra").write_bytes(b"x")

    summary = backed.restore(target, delete=True, overwrite="never")

    assert summary.deleted == 1 and not (root / "img" / "extra").exists()
    assert (root / "notes.txt").read_bytes() == b"changed"
    assert (root / "img" / "x.png" / "inside").exists()


# ---- filters ------------------------------------------------------------------------------


def test_excluded_paths_are_left_alone(backed: Backed, tmp_path: Path) -> None:
    """An extra entry the excludes match stays, and so does the extra folder holding one (the
    rest of that folder goes, each entry told of)."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    (root / "mine.keep").write_bytes(b"k")
    (root / "docs" / "mixed" / "sub").mkdir(parents=True)
    (root / "docs" / "mixed" / "sub" / "a.keep").write_bytes(b"k")
    (root / "docs" / "mixed" / "sub" / "b").write_bytes(b"b")
    (root / "docs" / "mixed" / "c").write_bytes(b"c")
    (root / "docs" / "mixed" / "gone").mkdir()
    (root / "docs" / "junk").write_bytes(b"j")
    told: list[bytes] = []

    summary = Restorer(backed.repo, backed.snapshot,
                       RestoreOptions(target=str(target), delete=True, excludes=["*.keep"]),
                       deleted=lambda path, _: told.append(path)).run()

    mixed = root / "docs" / "mixed"
    assert sorted(told) == sorted(bytes(p) for p in (mixed / "sub" / "b", mixed / "c",
                                                     mixed / "gone", root / "docs" / "junk"))
    assert summary.deleted == 4
    assert listing(root) == {**ALL, "mine.keep": b"k", "docs/mixed": None,
                             "docs/mixed/sub": None, "docs/mixed/sub/a.keep": b"k"}


def test_include_deletes_only_below_and_on_the_way_what_it_selects(
    backed: Backed, tmp_path: Path
) -> None:
    """With --include SRC/docs: below docs, every extra entry goes; in the folder on the way
    (the source's), only what the include selects; in a folder the restore does not write
    (img), nothing. A '!' include takes back part of what it deletes."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    (root / "docs" / "extra").write_bytes(b"x")
    (root / "docs" / "sub" / "extra").write_bytes(b"x")
    (root / "docs" / "sub" / "deeper" / "kept").write_bytes(b"k")
    (root / "img" / "extra").write_bytes(b"x")
    (root / "extra").write_bytes(b"x")
    (root / "docs2").write_bytes(b"not docs")

    summary = backed.restore(target, delete=True, includes=[
        f"{backed.src}/docs", f"!{backed.src}/docs/sub/deeper"])

    assert summary.deleted == 2
    assert not (root / "docs" / "extra").exists()
    assert not (root / "docs" / "sub" / "extra").exists()
    for kept in ("docs/sub/deeper/kept", "img/extra", "extra", "docs2"):
        assert (root / kept).exists(), kept


def test_include_deletes_nothing_in_a_folder_it_restores_nothing_in(
    backed: Backed, tmp_path: Path
) -> None:
    """With --include '*.txt': docs (a.txt restored) loses its extra .txt file, not its .md;
    img, where no .txt is restored, keeps its .txt too (restic's rule)."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    for extra in ("docs/new.txt", "docs/new.md", "img/new.txt"):
        (root / extra).write_bytes(b"x")

    summary = backed.restore(target, delete=True, includes=["*.txt"])

    assert summary.deleted == 1 and not (root / "docs" / "new.txt").exists()
    assert (root / "docs" / "new.md").exists() and (root / "img" / "new.txt").exists()


def test_cli_restoring_a_subfolder_deletes_only_there(
    backed: Backed, tmp_path: Path, fogvault: Callable[..., Any]
) -> None:
    target = tmp_path / "out"
    root = _restored(backed, target)
    (root / "docs" / "sub" / "extra").write_bytes(b"x")
    (root / "docs" / "extra").write_bytes(b"x")
    (root / "img" / "extra").write_bytes(b"x")

    done = _cli(fogvault, backed, target, "--include", f"{backed.src}/docs/sub", "--delete")

    assert done.returncode == 0, done.stderr.decode()
    assert "; deleted 1 entry" in done.stdout.decode()
    assert not (root / "docs" / "sub" / "extra").exists()
    assert (root / "docs" / "extra").exists() and (root / "img" / "extra").exists()


def test_cli_a_folder_an_earlier_incomplete_run_set_aside_is_never_deleted(
    backed: Backed, tmp_path: Path, fogvault: Callable[..., Any]
) -> None:
    target = tmp_path / "out"
    root = _restored(backed, target)
    aside = root / "docs" / ".a.txt.fogvault-in-the-way-4242"
    aside.mkdir()
    (aside / "thesis.txt").write_bytes(b"the only copy")
    (root / "docs" / "extra").write_bytes(b"x")

    done = _cli(fogvault, backed, target, "--delete")

    assert done.returncode == 3, done.stderr.decode()
    assert (f"{aside}: left alone by --delete: set aside by an earlier restore --delete that "
            "was not complete") in done.stderr.decode()
    assert (aside / "thesis.txt").read_bytes() == b"the only copy"
    assert not (root / "docs" / "extra").exists()


# ---- dry run and output -------------------------------------------------------------------


def test_cli_dry_run_lists_and_deletes_nothing(
    backed: Backed, tmp_path: Path, fogvault: Callable[..., Any]
) -> None:
    target = tmp_path / "out"
    root = _restored(backed, target)
    _add_extras(root, tmp_path / "outside")
    before = listing(root)

    dry = _cli(fogvault, backed, target, "--delete", "--dry-run")

    assert dry.returncode == 0, dry.stderr.decode()
    lines = dry.stdout.decode().splitlines()
    assert sorted(lines[:-1]) == sorted([
        f"would delete {root}/docs/sub/old/", f"would delete {root}/docs/to-outside",
        f"would delete {root}/extra.txt", f"would delete {root}/img/to-precious"])
    assert lines[-1].endswith("; would delete 4 entries")
    assert listing(root) == before

    as_json = fogvault("-r", backed.repo.targets.urls[0], "--json", "restore", "latest", "-t",
                       str(target), "--delete", "--dry-run")
    docs = _json_lines(as_json)
    assert {doc["path"] for doc in docs if doc["message_type"] == "deleted"} == {
        line.removeprefix("would delete ").rstrip("/") for line in lines[:-1]}
    assert docs[-1]["deleted"] == 4
    assert listing(root) == before


def test_cli_lists_deletions_with_v_and_counts_them_without(
    backed: Backed, tmp_path: Path, fogvault: Callable[..., Any]
) -> None:
    target = tmp_path / "out"
    root = _restored(backed, target)
    (root / "extra").write_bytes(b"x")

    verbose = _cli(fogvault, backed, target, "--delete", "-v")
    assert verbose.returncode == 0, verbose.stderr.decode()
    assert verbose.stdout.decode().splitlines()[0] == f"deleted {root}/extra"

    (root / "extra").write_bytes(b"x")
    quiet = fogvault("-r", backed.repo.targets.urls[0], "--json", "restore", "latest", "-t",
                     str(target), "--delete")
    assert quiet.returncode == 0, quiet.stderr.decode()
    docs = _json_lines(quiet)
    assert [doc for doc in docs if doc["message_type"] == "deleted"] == []
    assert docs[-1]["deleted"] == 1
    assert listing(root) == ALL


def test_dry_run_into_a_missing_target_deletes_and_makes_nothing(backed: Backed,
                                                                 tmp_path: Path) -> None:
    summary = backed.restore(tmp_path / "nowhere", delete=True, dry_run=True)
    assert summary.deleted == 0 and summary.files == len(FILES)
    assert not (tmp_path / "nowhere").exists()


# ---- what cannot be deleted, and restores that fail -----------------------------------------


@pytest.mark.parametrize(("mode", "warning"), [
    (0o555, "{root}/locked/f: cannot delete: Permission denied"),
    (0o000, "{root}/locked: cannot list it to delete what the snapshot does not have: "
            "Permission denied"),
])
def test_cli_an_entry_that_cannot_be_deleted_is_one_warning_and_exit_3(
    backed: Backed, tmp_path: Path, fogvault: Callable[..., Any], mode: int, warning: str
) -> None:
    """A folder that cannot be emptied (not writable) or listed: one warning line, no
    traceback, exit 3 (partial); the rest is deleted."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    (root / "locked").mkdir()
    (root / "locked" / "f").write_bytes(b"f")
    (root / "extra").write_bytes(b"x")
    (root / "locked").chmod(mode)
    try:
        done = _cli(fogvault, backed, target, "--delete", wrap=AS_USER)
    finally:
        (root / "locked").chmod(0o755)

    stderr = done.stderr.decode()
    assert done.returncode == 3, stderr
    assert stderr.splitlines() == [f"warning: {warning.format(root=root)}"]
    assert (root / "locked" / "f").exists()
    assert not (root / "extra").exists()


# Runs the CLI in a mount namespace of its own with a tmpfs on the folder given first, holding
# a file, and says afterwards on stderr whether that file is still there.
WITH_MOUNT = ["unshare", "--mount", "sh", "-c", 'mnt=$1; shift; mount -t tmpfs none "$mnt" '
              '&& echo precious > "$mnt/backup.img" || exit 99; "$@"; rc=$?; '
              'test -f "$mnt/backup.img" && echo "still there" >&2; exit $rc', "sh"]


def test_cli_a_file_system_mounted_on_a_folder_to_delete_is_left_alone(
    backed: Backed, tmp_path: Path, fogvault: Callable[..., Any]
) -> None:
    """As ``rm --one-file-system``: a backup disk mounted in a restored folder is no entry of
    it. One warning, exit 3; the rest is deleted."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    (root / "disk").mkdir()
    (root / "extra").write_bytes(b"x")
    probe = subprocess.run([*WITH_MOUNT, str(root / "disk"), "true"], capture_output=True,
                           check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a mount namespace: {probe.stderr!r}")

    done = _cli(fogvault, backed, target, "--delete", wrap=[*WITH_MOUNT, str(root / "disk")])

    stderr = done.stderr.decode()
    assert done.returncode == 3, stderr
    assert stderr.splitlines() == [
        f"warning: {root}/disk: left alone by --delete: another file system is mounted there",
        "still there"]
    assert not (root / "extra").exists()


@pytest.mark.parametrize("processes", [False, True], ids=["this process", "worker processes"])
def test_a_restore_that_cannot_write_a_file_in_full_deletes_nothing(
    make_repo: Callable[..., Repository], tmp_path: Path, processes: bool
) -> None:
    """A file moved since the older state in the target (old/photo -> new/photo), whose chunk
    no target can give: the restore writes new/photo but for that chunk, and deletes nothing,
    so old/photo, the last intact copy, stays; a warning says why."""
    repo = make_repo()
    src = tmp_path / "src"
    (src / "new").mkdir(parents=True)
    photo = random.Random(3).randbytes(600_000)
    (src / "new" / "photo").write_bytes(photo)
    (src / "other").write_bytes(b"o")
    Archiver(repo, BackupOptions()).run([str(src)])
    entry = _chunks(repo, src, "new/photo")[1]
    _flip(tmp_path / "repo" / pack_name(entry.pack_id), entry.offset + entry.length // 2)
    root = tmp_path / "out" / str(src).lstrip("/")
    (root / "old").mkdir(parents=True)
    (root / "old" / "photo").write_bytes(photo)

    with Repository.open(repo.targets.urls, PASSWORD, use_cache=False) as fresh:
        snapshot = fresh.load_snapshot(fresh.resolve_snapshot("latest"))
        summary: RestoreSummary = Restorer(fresh, snapshot, RestoreOptions(
            target=str(tmp_path / "out"), delete=True, processes=processes)).run()

    assert (root / "old" / "photo").read_bytes() == photo
    assert (root / "other").read_bytes() == b"o"
    assert summary.deleted == 0
    assert len(summary.warnings) == 2
    assert "new/photo: not restored in full" in summary.warnings[0]
    assert summary.warnings[1].startswith(
        "--delete deleted nothing: 1 entry of the snapshot could not be restored in full")


def _folder_in_the_way(root: Path) -> None:
    """A non-empty folder where the snapshot has the file notes.txt, and an extra file."""
    (root / "notes.txt").unlink()
    (root / "notes.txt" / "sub").mkdir(parents=True)
    (root / "notes.txt" / "sub" / "inside").write_bytes(b"i")
    (root / "notes.txt" / "mine.keep").write_bytes(b"k")
    (root / "extra").write_bytes(b"x")


def test_a_non_empty_folder_in_the_way_is_deleted_as_an_extra(backed: Backed,
                                                              tmp_path: Path) -> None:
    """--overwrite always with --delete: the folder where the snapshot has a file goes (told
    of, as any extra folder), the file is restored, and the rest is deleted as usual; a dry
    run tells of it too. Without that, no restore could ever bring the file back."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    _folder_in_the_way(root)
    told: list[tuple[bytes, bool]] = []

    def restore(**options: Any) -> RestoreSummary:
        told.clear()
        return Restorer(backed.repo, backed.snapshot,
                        RestoreOptions(target=str(target), delete=True, **options),
                        deleted=lambda path, is_dir: told.append((path, is_dir))).run()

    dry = restore(dry_run=True)
    assert sorted(told) == [(bytes(root / "extra"), False), (bytes(root / "notes.txt"), True)]
    assert dry.deleted == 2 and (root / "notes.txt" / "sub" / "inside").exists()

    summary = restore()

    assert summary.warnings == []
    assert sorted(told) == [(bytes(root / "extra"), False), (bytes(root / "notes.txt"), True)]
    assert summary.deleted == 2
    assert listing(root) == ALL


def test_a_folder_in_the_way_that_cannot_go_whole_is_named_and_deletes_nothing(
    backed: Backed, tmp_path: Path
) -> None:
    """What the excludes leave out of that folder stays, so the folder stays, whole (checked
    before deleting anything in it): the warning names it, the file is not restored, and nothing
    else is deleted (as for any entry not restored); the dry run says the same."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    _folder_in_the_way(root)

    for dry_run in (True, False):
        summary = backed.restore(target, delete=True, excludes=["*.keep"], dry_run=dry_run)

        assert summary.warnings[0] == (f"{root}/notes.txt: a folder is in the way where the "
                                       "snapshot has no folder, and --delete cannot delete all "
                                       "of it")
        assert summary.warnings[1].startswith("--delete deleted nothing: 1 entry")
        assert len(summary.warnings) == 2 and summary.deleted == 0
        assert (root / "extra").exists() and (root / "notes.txt" / "mine.keep").exists()
        assert (root / "notes.txt" / "sub" / "inside").read_bytes() == b"i"


def test_a_folder_in_the_way_of_a_file_not_restored_in_full_is_kept_aside(
    make_repo: Callable[..., Repository], tmp_path: Path
) -> None:
    """A folder now stands where the snapshot has a file whose chunk no target can give: the
    folder is renamed aside in place (the file must take its name), and as the file is not
    restored in full, it is kept there, whole, with a warning naming both paths; nothing is
    deleted, nor counted as deleted."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "doc").write_bytes(random.Random(5).randbytes(600_000))
    Archiver(repo, BackupOptions()).run([str(src)])
    entry = _chunks(repo, src, "doc")[1]
    _flip(tmp_path / "repo" / pack_name(entry.pack_id), entry.offset + entry.length // 2)
    root = tmp_path / "out" / str(src).lstrip("/")
    (root / "doc").mkdir(parents=True)
    (root / "doc" / "thesis.txt").write_bytes(b"only copy")
    (root / "extra").write_bytes(b"x")

    with Repository.open(repo.targets.urls, PASSWORD, use_cache=False) as fresh:
        snapshot = fresh.load_snapshot(fresh.resolve_snapshot("latest"))
        summary = Restorer(fresh, snapshot, RestoreOptions(
            target=str(tmp_path / "out"), delete=True)).run()

    aside = root / f".doc.fogvault-in-the-way-{os.getpid()}"
    assert (aside / "thesis.txt").read_bytes() == b"only copy"
    assert (root / "extra").exists() and summary.deleted == 0
    assert "doc: not restored in full" in summary.warnings[0]
    assert summary.warnings[1].startswith("--delete deleted nothing: 1 entry")
    assert summary.warnings[2] == (f"{root}/doc: the folder that stood where the snapshot has a "
                                   f"file is kept, as {aside}")


def test_a_restore_stopped_after_setting_a_folder_aside_says_where_it_is(
    make_repo: Callable[..., Repository], tmp_path: Path
) -> None:
    """An interrupt (or an error) once the plan moved a folder out of a file's way: the
    folder is kept aside, and a warning names both paths before the restore ends (it ended
    with 'interrupted' only)."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "doc").write_bytes(b"the snapshot's file")
    Archiver(repo, BackupOptions()).run([str(src)])
    root = tmp_path / "out" / str(src).lstrip("/")
    (root / "doc").mkdir(parents=True)
    (root / "doc" / "thesis.txt").write_bytes(b"only copy")

    class StoppedWhileWriting(RestoreProgress):
        def __init__(self) -> None:
            self.warnings: list[str] = []

        def start(self, total_bytes: int) -> None:
            raise KeyboardInterrupt

        def warning(self, message: str) -> None:
            self.warnings.append(message)

    snapshot = repo.load_snapshot(repo.resolve_snapshot("latest"))
    progress = StoppedWhileWriting()
    with pytest.raises(KeyboardInterrupt):
        Restorer(repo, snapshot, RestoreOptions(target=str(tmp_path / "out"), delete=True),
                 progress).run()

    aside = root / f".doc.fogvault-in-the-way-{os.getpid()}"
    assert (aside / "thesis.txt").read_bytes() == b"only copy"
    assert progress.warnings == [
        f"{root}/doc: the folder that stood where the snapshot has a file is kept, as {aside}"]


def test_a_restore_stopped_while_deleting_names_only_the_folders_still_aside(
    make_repo: Callable[..., Repository], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped as the second folder set aside was to go: the first one, deleted already, was
    still named as kept (review)."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b"):
        (src / name).write_bytes(name.encode())
    Archiver(repo, BackupOptions()).run([str(src)])
    root = tmp_path / "out" / str(src).lstrip("/")
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / "inside").write_bytes(b"x")

    class Recorded(RestoreProgress):
        def __init__(self) -> None:
            self.warnings: list[str] = []

        def warning(self, message: str) -> None:
            self.warnings.append(message)

    deleting = extras.Extras._delete
    calls: list[Parts] = []

    def stopped_at_the_second(self: Any, parts: Parts, deleted: Any, dry_run: bool) -> Any:
        if not dry_run:
            calls.append(parts)
            if len(calls) == 2:
                raise KeyboardInterrupt
        return deleting(self, parts, deleted, dry_run)

    monkeypatch.setattr(extras.Extras, "_delete", stopped_at_the_second)
    progress = Recorded()
    snapshot = repo.load_snapshot(repo.resolve_snapshot("latest"))
    with pytest.raises(KeyboardInterrupt):
        Restorer(repo, snapshot, RestoreOptions(target=str(tmp_path / "out"), delete=True),
                 progress).run()
    aside = root / f".b.fogvault-in-the-way-{os.getpid()}"
    assert not (root / f".a.fogvault-in-the-way-{os.getpid()}").exists() and aside.exists()
    assert progress.warnings == [
        f"{root}/b: the folder that stood where the snapshot has a file is kept, as {aside}"]


def test_without_delete_a_non_empty_folder_in_the_way_stays(backed: Backed,
                                                            tmp_path: Path) -> None:
    target = tmp_path / "out"
    root = _restored(backed, target)
    _folder_in_the_way(root)

    summary = backed.restore(target)

    assert summary.warnings == [f"{root}/notes.txt: a non-empty folder is in the way"]
    assert (root / "notes.txt" / "sub" / "inside").exists()


# ---- mounts -------------------------------------------------------------------------------


def test_a_file_system_mounted_on_a_restored_folder_is_left_alone(backed: Backed,
                                                                 tmp_path: Path) -> None:
    """The snapshot has docs, but what is mounted there is another file system: the restore
    writes in it, --delete lists and deletes nothing there (one warning)."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    (root / "extra").write_bytes(b"x")
    with mounted(root / "docs", *TMPFS):
        (root / "docs" / "backup.img").write_bytes(b"precious")

        summary = backed.restore(target, delete=True)

        assert (root / "docs" / "backup.img").read_bytes() == b"precious"
        assert (root / "docs" / "a.txt").read_bytes() == FILES["docs/a.txt"]
    assert summary.warnings == [
        f"{root}/docs: left alone by --delete: another file system is mounted there"]
    assert summary.deleted == 1 and not (root / "extra").exists()


@pytest.mark.parametrize("folder", ["img", "extra-dir"], ids=["restored", "extra"])
def test_a_bind_mount_from_the_same_file_system_is_left_alone(
    backed: Backed, tmp_path: Path, fogvault: Callable[..., Any], folder: str
) -> None:
    """A folder outside the target bound onto a restored or an extra folder (the same st_dev
    as the target): nothing in it is deleted, one warning, exit 3; the rest is deleted."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    (root / "extra-dir").mkdir()
    (root / "extra").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"keep me")
    with mounted(root / folder, "--bind", str(outside)):
        done = _cli(fogvault, backed, target, "--delete")
    assert (outside / "precious").read_bytes() == b"keep me"
    stderr = done.stderr.decode()
    assert done.returncode == 3, stderr
    assert stderr.splitlines() == [
        f"warning: {root}/{folder}: left alone by --delete: another file system is mounted "
        "there"]
    assert not (root / "extra").exists()


@pytest.mark.parametrize("dry_run", [False, True], ids=["real", "dry run"])
def test_delete_is_refused_when_the_mount_table_cannot_be_read(
    backed: Backed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dry_run: bool
) -> None:
    """Without /proc/self/mountinfo (a sandbox without /proc), a bind mount from the same file
    system looks like any folder and would be emptied: --delete is refused before anything is
    written, in one line saying why; a restore without it goes on."""
    target = tmp_path / "out"
    root = _restored(backed, target)
    (root / "extra").write_bytes(b"x")
    missing = str(tmp_path / "no-proc" / "mountinfo")
    monkeypatch.setattr("fogvault.restore.safefs.MOUNTINFO", missing)

    with pytest.raises(UsageError) as refused:
        backed.restore(target, delete=True, dry_run=dry_run)

    assert str(refused.value) == (f"--delete refused: cannot read {missing} (No such file or "
                                  "directory), so it cannot tell the mounts below the target, "
                                  "whose contents it would delete")
    assert (root / "extra").exists()
    assert backed.restore(target, dry_run=dry_run).warnings == []


# ---- what FogVault needs, and what the backup could not read --------------------------------


def test_cli_restoring_in_place_keeps_the_repository_cache_and_password_file(
    tmp_path: Path, fogvault: Callable[..., Any]
) -> None:
    """The repository, the cache (the one in use and the default one) and the password file
    lie in the source and were excluded from the backup: restoring in place with --delete
    deletes what else the backup excluded, never them (nor the folder holding the password
    file), one warning each, exit 3. The repository still works afterwards."""
    src = tmp_path / "src"
    (src / "secret").mkdir(parents=True)
    (src / "kept.txt").write_bytes(b"k")
    (src / "secret" / "pw").write_bytes(PASSWORD + b"\n")
    (src / "secret" / "other").write_bytes(b"o")
    (src / "junk").mkdir()
    (src / "junk" / "f").write_bytes(b"j")
    (src / "xdg" / "fogvault").mkdir(parents=True)
    (src / "xdg" / "fogvault" / "old").write_bytes(b"c")
    repo, pw = src / "repo", src / "secret" / "pw"
    common = ["-r", str(repo), "--password-file", str(pw), "--cache-dir", str(src / "cache")]
    env = {"XDG_CACHE_HOME": str(src / "xdg"), "FOGVAULT_PASSWORD": ""}
    assert fogvault(*common, "init", "--kdf", "interactive", env=env).returncode == 0
    backup = fogvault(*common, "backup", *(f"--exclude={src / name}" for name in (
        "repo", "cache", "secret", "junk", "xdg")), str(src), env=env)
    assert backup.returncode == 0, backup.stderr.decode()

    done = fogvault(*common, "restore", "latest", "-t", "/", "--delete", env=env)

    stderr = done.stderr.decode()
    assert done.returncode == 3, stderr
    assert sorted(stderr.splitlines()) == sorted([
        f"warning: {src}/cache: left alone by --delete: the cache folder",
        f"warning: {repo}: left alone by --delete: a folder of the repository",
        f"warning: {pw}: left alone by --delete: the password file",
        f"warning: {src}/xdg/fogvault: left alone by --delete: the cache folder"])
    assert sorted(os.listdir(src)) == ["cache", "kept.txt", "repo", "secret", "xdg"]
    assert os.listdir(src / "secret") == ["pw"]
    assert (src / "xdg" / "fogvault" / "old").exists()
    check = fogvault(*common, "check", env=env)
    assert check.returncode == 0, check.stderr.decode()


@pytest.mark.parametrize("how", [[], ["--overwrite", "always"], ["--delete"]])
def test_cli_restoring_in_place_never_writes_over_the_repository_it_reads(
    tmp_path: Path, fogvault: Callable[..., Any], how: list[str]
) -> None:
    """The repository, cache and password file lie in the source and are backed up with it;
    a later backup changes them. Restoring the first snapshot in place leaves them as they
    are (one warning each, exit 3): it deleted the packs it was reading and wrote the old
    config and key over the live ones, and the repository could not be opened again."""
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "data" / "f").write_bytes(b"v1")
    (src / "pw").write_bytes(PASSWORD + b"\n")
    repo, cache = src / "repo", src / "cache"
    common = ["-r", str(repo), "--password-file", str(src / "pw"), "--cache-dir", str(cache)]
    env = {"FOGVAULT_PASSWORD": ""}
    assert fogvault(*common, "init", "--kdf", "interactive", env=env).returncode == 0
    for _ in range(2):  # the second backup's snapshot holds the first's packs
        backup = fogvault(*common, "backup", str(src), env=env)
        assert backup.returncode == 0, backup.stderr.decode()
    uid = json.loads(fogvault(*common, "snapshots", "--json", env=env).stdout)[-1]["uid"]
    (src / "data" / "f").write_bytes(b"v2")
    assert fogvault(*common, "backup", str(src), env=env).returncode == 0

    done = fogvault(*common, "restore", f"{uid}:{src}", "-t", str(src), *how, env=env)

    stderr = done.stderr.decode()
    assert done.returncode == 3, stderr
    assert sorted(stderr.splitlines()) == sorted([
        f"warning: {cache}: not restored over: the cache folder",
        f"warning: {repo}: not restored over: a folder of the repository",
        f"warning: {src}/pw: not restored over: the password file"])
    assert (src / "data" / "f").read_bytes() == b"v1"
    listed = fogvault(*common, "snapshots", "--json", env=env)
    assert len(json.loads(listed.stdout)) == 3, listed.stderr.decode()
    check = fogvault(*common, "check", "--read-data", env=env)
    assert check.returncode == 0, check.stderr.decode()


def test_cli_the_symlinks_naming_the_repository_cache_and_password_file_are_kept(
    tmp_path: Path, fogvault: Callable[..., Any]
) -> None:
    """The repository, cache and password file are named through symlinks in the source, and
    FogVault's state folder lies there too, all excluded from the backup: restoring in place
    with --delete keeps the links as well as what they point to, and the state folder."""
    src = tmp_path / "src"
    hidden = src / ".hidden"
    (hidden / "realcache").mkdir(parents=True)
    (hidden / "realpw").write_bytes(PASSWORD + b"\n")
    (src / "state" / "fogvault").mkdir(parents=True)
    (src / "state" / "fogvault" / "runs.jsonl").write_bytes(b"{}\n")
    (src / "junk").write_bytes(b"j")
    env = {"XDG_STATE_HOME": str(src / "state"), "FOGVAULT_PASSWORD": ""}
    assert fogvault("-r", str(hidden / "realrepo"), "--password-file", str(hidden / "realpw"),
                    "init", "--kdf", "interactive", env=env).returncode == 0
    for link, real in (("repolink", "realrepo"), ("cachelink", "realcache"), ("pwlink", "realpw")):
        os.symlink(f".hidden/{real}", src / link)
    common = ["-r", str(src / "repolink"), "--password-file", str(src / "pwlink"),
              "--cache-dir", str(src / "cachelink")]
    backup = fogvault(*common, "backup", *(f"--exclude={src / name}" for name in (
        ".hidden", "repolink", "cachelink", "pwlink", "state", "junk")), str(src), env=env)
    assert backup.returncode == 0, backup.stderr.decode()

    done = fogvault(*common, "restore", "latest", "-t", "/", "--delete", env=env)

    stderr = done.stderr.decode()
    assert done.returncode == 3, stderr
    for name, why in (("cachelink", "the cache folder"), ("pwlink", "the password file"),
                      ("repolink", "a folder of the repository"),
                      ("state/fogvault", "FogVault's state folder")):
        assert f"warning: {src}/{name}: left alone by --delete: {why}" in stderr.splitlines()
    assert sorted(os.listdir(src)) == [".hidden", "cachelink", "pwlink", "repolink", "state"]
    assert (src / "state" / "fogvault" / "runs.jsonl").exists()
    check = fogvault(*common, "check", env=env)
    assert check.returncode == 0, check.stderr.decode()


def test_cli_a_snapshot_whose_backup_could_not_read_files_refuses_delete(
    make_repo: Callable[..., Repository], tmp_path: Path, fogvault: Callable[..., Any]
) -> None:
    """What the backup failed to read is not in the snapshot, so --delete would delete it:
    refused (exit 2, saying why) unless --delete-unreadable is given."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_bytes(b"f")
    result = Archiver(repo, BackupOptions()).run([str(src), str(tmp_path / "gone")])
    assert result.snapshot.summary.files_failed == 1
    target = tmp_path / "out"
    (target / str(src).lstrip("/")).mkdir(parents=True)
    (target / str(src).lstrip("/") / "unread").write_bytes(b"u")

    refused = fogvault("-r", repo.targets.urls[0], "restore", "latest", "-t", str(target),
                       "--delete")

    assert refused.returncode == 2, refused.stderr.decode()
    assert "could not read 1 file" in refused.stderr.decode()
    assert "--delete-unreadable" in refused.stderr.decode()
    assert (target / str(src).lstrip("/") / "unread").exists()
    forced = fogvault("-r", repo.targets.urls[0], "restore", "latest", "-t", str(target),
                      "--delete", "--delete-unreadable")
    assert forced.returncode == 0, forced.stderr.decode()
    assert not (target / str(src).lstrip("/") / "unread").exists()


def test_cli_delete_needs_the_target_given(backed: Backed, tmp_path: Path,
                                          fogvault: Callable[..., Any]) -> None:
    """Without -t, --delete would delete in the current folder (here, restoring the source's
    folder there as its root): a usage error, before the password is asked for."""
    here = tmp_path / "here"
    here.mkdir()
    (here / "mine").write_bytes(b"m")
    url = backed.repo.targets.urls[0]

    for env in ({}, {"FOGVAULT_PASSWORD": ""}):
        done = fogvault("-r", url, "restore", f"latest:{backed.src}", "--delete", cwd=here,
                        env=env)
        assert done.returncode == 2, done.stderr.decode()
        assert "--delete needs the target given with -t/--target" in done.stderr.decode()
    assert (here / "mine").read_bytes() == b"m"


@pytest.mark.parametrize("target", ["", " "], ids=["empty", "blank"])
@pytest.mark.parametrize("delete", [["--delete"], []], ids=["delete", "plain"])
def test_cli_an_empty_target_is_a_usage_error(backed: Backed, tmp_path: Path,
                                              fogvault: Callable[..., Any], target: str,
                                              delete: list[str]) -> None:
    """``-t "$UNSET"`` names no folder: refused (exit 2) for every restore, never taken as the
    current folder, which --delete would empty."""
    here = tmp_path / "here"
    here.mkdir()
    (here / "mine").write_bytes(b"m")

    done = fogvault("-r", backed.repo.targets.urls[0], "restore", f"latest:{backed.src}",
                    "-t", target, *delete, cwd=here)

    assert done.returncode == 2, done.stderr.decode()
    assert "-t/--target is empty" in done.stderr.decode()
    assert os.listdir(here) == ["mine"]


def test_the_library_refuses_delete_without_a_target_named(
        make_repo: Callable[..., Repository], tmp_path: Path) -> None:
    """The CLI requires -t with --delete; a library caller that leaves the target out (the
    current folder otherwise) is refused too, before anything is read or deleted."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    snapshot = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    with pytest.raises(UsageError, match="delete needs a target folder named"):
        Restorer(repo, snapshot, RestoreOptions(delete=True))


@pytest.mark.parametrize("include", ["", " ", "$FOGVAULT_TEST_EMPTY"])
def test_cli_an_empty_include_restores_and_deletes_nothing(backed: Backed, tmp_path: Path,
                                                            fogvault: Callable[..., Any],
                                                            include: str) -> None:
    """An include that is empty (an unset variable) matches nothing: it was dropped, which
    left no include at all, so everything was restored and --delete deleted the extras."""
    root = _restored(backed, tmp_path / "t")
    (root / "extra.txt").write_bytes(b"mine")
    (root / "docs" / "a.txt").unlink()

    done = fogvault("-r", backed.repo.targets.urls[0], "restore", "latest", "-t",
                    str(tmp_path / "t"), "--include", include, "--delete",
                    env={"FOGVAULT_TEST_EMPTY": ""})

    assert done.returncode == 3, done.stderr.decode()
    assert "matches nothing" in done.stderr.decode()
    assert (root / "extra.txt").read_bytes() == b"mine"
    assert not (root / "docs" / "a.txt").exists()
