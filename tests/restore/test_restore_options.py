"""Restore options: include/exclude, overwrite modes, dry run, verify, ``latest``, and a target
that already holds a symlinked folder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import UnsafePath, UsageError
from fogvault.maintenance.forget import forget
from fogvault.maintenance.prune import PruneOptions, prune
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot
from fogvault.restore.restorer import RestoreOptions, Restorer, RestoreSummary

FILES = {
    "docs/a.txt": b"alpha\n",
    "docs/b.md": b"# bravo\n",
    "docs/sub/c.txt": b"charlie\n" * 1000,
    "docs/sub/deeper/d.log": b"delta\n",
    "img/x.png": bytes(range(256)) * 2000,  # ~500 KiB: several chunks
    "notes.txt": b"notes\n",
}
LINKS = {"link-to-a": "docs/a.txt"}
MTIME_NS = 1_500_000_000_123_456_789


@dataclass
class Backed:
    repo: Repository
    src: Path
    snapshot: Snapshot

    def restored(self, target: Path) -> Path:
        """Where ``src`` lands below ``target`` (the absolute path, re-rooted)."""
        return target / str(self.src).lstrip("/")

    def restore(self, target: Path, **options: Any) -> RestoreSummary:
        opts = RestoreOptions(target=str(target), **options)
        return Restorer(self.repo, self.snapshot, opts).run()


def listing(root: Path) -> dict[str, bytes | str | None]:
    """Relative path -> content (files), link target (symlinks) or None (folders)."""
    out: dict[str, bytes | str | None] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = os.readlink(path)
        elif path.is_dir():
            out[rel] = None
        else:
            out[rel] = path.read_bytes()
    return out


def expected(*files: str, links: tuple[str, ...] = ()) -> dict[str, bytes | str | None]:
    """The listing of a restore holding exactly ``files`` and ``links`` (and their folders)."""
    out: dict[str, bytes | str | None] = {}
    for rel in files:
        out[rel] = FILES[rel]
    for rel in links:
        out[rel] = LINKS[rel]
    for rel in list(out):
        parent = Path(rel).parent
        while str(parent) != ".":
            out[str(parent)] = None
            parent = parent.parent
    return dict(sorted(out.items()))


ALL = expected(*FILES, links=tuple(LINKS))


def make_source(src: Path) -> None:
    """FILES (with MTIME_NS) and LINKS below ``src``."""
    for rel, data in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
        os.utime(src / rel, ns=(MTIME_NS, MTIME_NS))
    for rel, link in LINKS.items():
        os.symlink(link, src / rel)


def back_up(repo: Repository, src: Path) -> Backed:
    result = Archiver(repo, BackupOptions()).run([str(src)])
    assert result.warnings == []
    return Backed(repo, src, result.snapshot)


@pytest.fixture
def backed(make_repo: Callable[..., Repository], tmp_path: Path) -> Backed:
    make_source(tmp_path / "src")
    return back_up(make_repo(), tmp_path / "src")


def test_restore_reloads_the_index_under_its_lock(
    backed: Backed, reopen: Callable[[Repository], Repository], tmp_path: Path
) -> None:
    """Opened (index loaded) before a prune repacked what it restores, as the CLI opens it: the
    restore loads the index again once it holds its lock, not reading the deleted packs."""
    (backed.src / "img" / "x.png").unlink()
    second = Archiver(backed.repo, BackupOptions()).run([str(backed.src)]).snapshot
    forget(backed.repo, uids=[backed.snapshot.uid])
    restoring = reopen(backed.repo)
    snapshot = restoring.load_snapshot(second.uid)
    assert prune(backed.repo, PruneOptions(max_unused=0.0)).packs_repacked
    Restorer(restoring, snapshot, RestoreOptions(target=str(tmp_path / "out"))).run()
    restoring.close()
    assert listing(backed.restored(tmp_path / "out")) == {
        k: v for k, v in ALL.items() if k != "img/x.png"}


def test_full_restore(backed: Backed, tmp_path: Path) -> None:
    summary = backed.restore(tmp_path / "out")
    assert listing(backed.restored(tmp_path / "out")) == ALL
    assert summary.files == len(FILES) and summary.links == len(LINKS)
    assert summary.total_bytes == sum(map(len, FILES.values()))


# ---- include / exclude --------------------------------------------------------------------


@pytest.mark.parametrize(("includes", "excludes", "want"), [
    (["*.txt"], [], expected("docs/a.txt", "docs/sub/c.txt", "notes.txt")),
    (["SRC/docs"], [], expected("docs/a.txt", "docs/b.md", "docs/sub/c.txt",
                                "docs/sub/deeper/d.log")),
    (["sub"], [], expected("docs/sub/c.txt", "docs/sub/deeper/d.log")),
    (["docs/sub/*.txt"], [], expected("docs/sub/c.txt")),
    (["**/deeper/*"], [], expected("docs/sub/deeper/d.log")),
    (["link-*", "x.png"], [], expected("img/x.png", links=("link-to-a",))),
    (["nothing-matches"], [], {}),
    ([], ["*.md", "img"], expected("docs/a.txt", "docs/sub/c.txt", "docs/sub/deeper/d.log",
                                   "notes.txt", links=("link-to-a",))),
    ([], ["SRC/docs/sub"], expected("docs/a.txt", "docs/b.md", "img/x.png", "notes.txt",
                                    links=("link-to-a",))),
    ([], ["*"], {}),
    (["SRC/docs"], ["*.txt"], expected("docs/b.md", "docs/sub/deeper/d.log")),
    # A '!' include takes back part of a folder an include brings whole (restic's rule).
    (["SRC/docs", "!SRC/docs/sub"], [], expected("docs/a.txt", "docs/b.md")),
    (["SRC/docs", "!SRC/docs/sub", "SRC/docs/sub/deeper"], [],
     expected("docs/a.txt", "docs/b.md", "docs/sub/deeper/d.log")),
    (["*.txt", "*.log"], ["deeper"], expected("docs/a.txt", "docs/sub/c.txt", "notes.txt")),
])
def test_include_and_exclude(
    backed: Backed, tmp_path: Path, includes: list[str], excludes: list[str], want: dict
) -> None:
    """An include selects matching entries (a folder: all of it); an exclude drops matching
    entries (a folder: all of it), and wins over includes. ``SRC`` stands for the source's
    absolute path (anchored patterns)."""
    subst = [p.replace("SRC", str(backed.src)) for p in includes]
    excl = [p.replace("SRC", str(backed.src)) for p in excludes]
    target = tmp_path / "out"
    summary = backed.restore(target, includes=subst, excludes=excl)
    root = backed.restored(target)
    got = listing(root) if root.exists() else {}
    # Folders above a selected entry exist; nothing else does.
    assert {k: v for k, v in got.items() if v is not None} == {
        k: v for k, v in want.items() if v is not None}
    assert {k for k, v in got.items() if v is None} <= {k for k, v in ALL.items() if v is None}
    assert summary.files == sum(1 for v in want.values() if isinstance(v, bytes))


def test_an_include_that_matches_nothing_is_a_warning(backed: Backed, tmp_path: Path) -> None:
    summary = backed.restore(tmp_path / "out", includes=["nothing-matches", "*.txt"])
    assert summary.warnings == [f"--include 'nothing-matches' matches nothing in snapshot "
                                f"{backed.snapshot.uid} that is not excluded"]
    assert summary.files == 3


@pytest.mark.parametrize("includes", [
    ["SRC/docs", "SRC/docs/sub"],  # the second below a folder the first brings whole
    ["SRC/docs", "*.txt"],  # both match docs/a.txt; *.txt also notes.txt
    ["*.txt", "notes*"],  # both match notes.txt, the last one decides
])
def test_includes_that_match_are_not_warned_about(backed: Backed, tmp_path: Path,
                                                  includes: list[str]) -> None:
    summary = backed.restore(tmp_path / "out",
                             includes=[p.replace("SRC", str(backed.src)) for p in includes])
    assert summary.warnings == []


def test_cli_warns_of_patterns_in_another_tools_syntax(
    backed: Backed, tmp_path: Path, fogvault: Callable[..., Any]
) -> None:
    """borg's 'sh:' style is matched literally: said once as such, and, as it then includes
    nothing, once more as an include that matched nothing (exit 3)."""
    done = fogvault("-r", backed.repo.targets.urls[0], "restore", "latest", "-t",
                    str(tmp_path / "out"), "--include", "sh:**/*.txt", "--exclude", "./img")
    assert done.returncode == 3, done.stderr.decode()
    stderr = done.stderr.decode()
    assert "warning: pattern 'sh:**/*.txt' is matched literally" in stderr
    assert "warning: pattern './img' is matched literally" in stderr
    assert "warning: --include 'sh:**/*.txt' matches nothing in snapshot" in stderr



# ---- overwrite ----------------------------------------------------------------------------


def _prepare_existing(root: Path) -> None:
    """Change a full restore at ``root`` in every way overwrite modes distinguish."""
    # Same size, same mtime, other content: "if-changed" trusts size and mtime, keeps it.
    (root / "docs/a.txt").write_bytes(b"ALPHA\n")
    os.utime(root / "docs/a.txt", ns=(MTIME_NS, MTIME_NS))
    # Same size, other mtime.
    (root / "docs/b.md").write_bytes(b"# BRAVO\n")
    # Other size, same mtime.
    (root / "notes.txt").write_bytes(b"much longer notes\n")
    os.utime(root / "notes.txt", ns=(MTIME_NS, MTIME_NS))
    # Gone.
    (root / "docs/sub/c.txt").unlink()
    # A symlink pointing elsewhere, and a folder where a file was.
    (root / "link-to-a").unlink()
    os.symlink("elsewhere", root / "link-to-a")
    (root / "img/x.png").unlink()
    (root / "img/x.png").mkdir()
    # Not in the snapshot at all: every mode leaves it alone.
    (root / "docs/extra").write_bytes(b"mine")


@pytest.mark.parametrize(("mode", "kept", "skipped"), [
    ("always", set(), 0),
    # d.log was never touched: same size and mtime, so skipped too (and still correct).
    ("if-changed", {"docs/a.txt"}, 2),
    ("never", {"docs/a.txt", "docs/b.md", "notes.txt", "link-to-a", "img/x.png",
               "docs/sub/deeper/d.log"}, 6),
])
def test_overwrite_modes(
    backed: Backed, tmp_path: Path, mode: str, kept: set[str], skipped: int
) -> None:
    target = tmp_path / "out"
    backed.restore(target)
    root = backed.restored(target)
    _prepare_existing(root)
    before = listing(root)
    summary = backed.restore(target, overwrite=mode)
    after = listing(root)
    assert after["docs/extra"] == b"mine"
    assert summary.skipped == skipped
    for rel, value in ALL.items():
        if value is None:
            continue
        if rel in kept:
            assert after[rel] == before[rel], f"{rel} was replaced"
        else:
            assert after[rel] == value, f"{rel} was not restored"
    # Restored files got their mtimes back; kept ones are untouched.
    assert (root / "docs/sub/c.txt").stat().st_mtime_ns == MTIME_NS
    if "docs/b.md" not in kept:
        assert (root / "docs/b.md").stat().st_mtime_ns == MTIME_NS


@pytest.mark.parametrize(("mode", "removed", "skipped"), [
    ("if-changed", "b", 1), ("never", "b", 1), ("if-changed", "a", 0), ("if-changed", None, 2)])
def test_kept_names_keep_their_hardlinks(
    make_repo: Callable[..., Repository], tmp_path: Path, mode: str, removed: str | None,
    skipped: int,
) -> None:
    """A restore over an earlier one that lost a name of a hardlinked file: a kept, unchanged
    first name (a) stands for the file, and the lost later name is linked to it, not restored
    as a copy. With if-changed, a kept later name (b) not linked to the first name restored
    anew is replaced by a link to it; one that is linked already is kept."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"shared content")
    os.link(src / "a", src / "b")
    snapshot = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    target = tmp_path / "out"
    Restorer(repo, snapshot, RestoreOptions(target=str(target))).run()
    root = target / str(src).lstrip("/")
    inode = (root / "a").stat().st_ino
    if removed:
        (root / removed).unlink()
    summary = Restorer(repo, snapshot, RestoreOptions(target=str(target), overwrite=mode)).run()
    assert summary.skipped == skipped
    assert (root / "a").stat().st_ino == (root / "b").stat().st_ino
    assert (root / "a").read_bytes() == (root / "b").read_bytes() == b"shared content"
    if removed is None:
        assert (root / "a").stat().st_ino == inode


def test_overwrite_if_changed_keeps_unchanged_files_untouched(
    backed: Backed, tmp_path: Path
) -> None:
    """A second restore with if-changed over an intact restore rewrites nothing: the same
    inodes, no bytes written."""
    target = tmp_path / "out"
    backed.restore(target)
    root = backed.restored(target)
    inodes = {rel: (root / rel).stat().st_ino for rel in FILES}
    summary = backed.restore(target, overwrite="if-changed")
    assert summary.skipped == len(FILES)  # symlinks are simply made again
    assert summary.bytes_written == 0
    assert {rel: (root / rel).stat().st_ino for rel in FILES} == inodes
    assert listing(root) == ALL


def test_unknown_overwrite_mode_is_a_usage_error(backed: Backed, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        backed.restore(tmp_path / "out", overwrite="sometimes")
    assert not (tmp_path / "out").exists()


# ---- dry run and verify -------------------------------------------------------------------


def test_dry_run_writes_nothing(backed: Backed, tmp_path: Path) -> None:
    target = tmp_path / "out"
    summary = backed.restore(target, dry_run=True)
    assert not target.exists()
    assert summary.files == len(FILES)
    assert summary.links == len(LINKS)
    assert summary.total_bytes == sum(map(len, FILES.values()))
    assert summary.bytes_written == 0
    # Over an existing, changed restore: still nothing touched.
    backed.restore(target)
    root = backed.restored(target)
    _prepare_existing(root)
    stats = _stats(root)
    before = listing(root)
    backed.restore(target, dry_run=True, overwrite="always")
    assert _stats(root) == stats
    assert listing(root) == before


def _stats(root: Path) -> dict[Path, tuple[int, ...]]:
    """Everything but the access time, which reading the files may change."""
    return {p: (st.st_mode, st.st_ino, st.st_nlink, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            for p in [root, *root.rglob("*")] for st in [os.lstat(p)]}


def test_verify_checks_every_restored_file(backed: Backed, tmp_path: Path) -> None:
    summary = backed.restore(tmp_path / "out", verify=True)
    assert summary.verified == len(FILES)
    assert summary.warnings == []
    plain = backed.restore(tmp_path / "out2")
    assert plain.verified == 0


# ---- a target that already holds a symlinked folder ----------------------------------------


@pytest.mark.parametrize("overwrite", ["always", "if-changed", "never"])
def test_symlinked_folder_in_target_is_not_followed(
    backed: Backed, tmp_path: Path, overwrite: str
) -> None:
    """The target already has the source's top folder as a symlink to a folder elsewhere
    (``<target>/tmp -> elsewhere``): restore replaces the link or refuses; the folder it
    points at stays empty."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = tmp_path / "out"
    top = str(backed.src).lstrip("/").split("/")[0]
    target.mkdir()
    os.symlink(elsewhere, target / top)
    if overwrite == "always":
        backed.restore(target, overwrite=overwrite)
        assert not (target / top).is_symlink()
        assert listing(backed.restored(target)) == ALL
    else:
        with pytest.raises(UnsafePath):
            backed.restore(target, overwrite=overwrite)
        assert (target / top).is_symlink()
    assert list(elsewhere.iterdir()) == []


# ---- through the CLI ----------------------------------------------------------------------


def _summary(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr.decode()
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return next(doc for doc in lines if doc.get("message_type") == "summary")


def test_cli_restore_latest_with_options(
    backed: Backed, tmp_path: Path, fogvault: Callable[..., Any]
) -> None:
    repo = backed.repo.targets.urls[0]
    (backed.src / "notes.txt").write_bytes(b"second version\n")
    second = fogvault("-r", repo, "backup", str(backed.src), "--json")
    assert second.returncode == 0, second.stderr.decode()
    second_uid = backed.repo.resolve_snapshot("latest")
    assert second_uid != backed.snapshot.uid

    target = tmp_path / "out"
    latest = fogvault("-r", repo, "--json", "restore", "--version", "latest",
                      "--target", str(target), "--verify")
    doc = _summary(latest)
    assert doc["snapshot"] == second_uid
    assert doc["verified"] == doc["files"] == len(FILES)
    root = backed.restored(target)
    assert (root / "notes.txt").read_bytes() == b"second version\n"

    # The first snapshot by uid prefix given as an argument (restic's way), with include and
    # exclude, over the same target.
    first = fogvault("-r", repo, "restore", backed.snapshot.uid[:8], "-t", str(target),
                     "--include", "*.txt", "--exclude", "sub", "--overwrite", "if-changed")
    assert first.returncode == 0, first.stderr.decode()
    # a.txt is as in the target already (same size and mtime): skipped; notes.txt differs.
    out = first.stdout.decode()
    assert f"restored snapshot {backed.snapshot.uid}: 1 file," in out and "1 skipped" in out
    assert (root / "notes.txt").read_bytes() == FILES["notes.txt"]

    # Dry run: says what it would do, does nothing.
    dry_target = tmp_path / "dry"
    dry = fogvault("-r", repo, "restore", "--version", "latest", "--target", str(dry_target),
                   "--dry-run")
    assert dry.returncode == 0, dry.stderr.decode()
    assert f"would restore snapshot {second_uid}: {len(FILES)} files" in dry.stdout.decode()
    assert not dry_target.exists()

    # The snapshot is given once: as an argument or with --version.
    for twice_or_never in (["latest", "-V", "latest"], []):
        refused = fogvault("-r", repo, "restore", *twice_or_never, "-t", str(dry_target))
        assert refused.returncode == 2
        assert refused.stderr.decode().startswith("error: give the snapshot to restore once")
    empty = fogvault("-r", repo, "restore", "", "-t", str(dry_target))
    assert empty.returncode == 1 and empty.stderr.decode() == "error: no snapshot matches ''\n"


def test_cli_overwrite_never_over_symlinked_folder_fails_cleanly(
    backed: Backed, tmp_path: Path, fogvault: Callable[..., Any]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = tmp_path / "out"
    target.mkdir()
    os.symlink(elsewhere, target / str(backed.src).lstrip("/").split("/")[0])
    result = fogvault("-r", backed.repo.targets.urls[0], "restore", "--version", "latest",
                      "--target", str(target), "--overwrite", "never")
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: "), stderr
    assert list(elsewhere.iterdir()) == []

    bad = fogvault("-r", backed.repo.targets.urls[0], "restore", "--version", "latest",
                   "--target", str(target), "--overwrite", "sometimes")
    assert bad.returncode == 2, bad.stderr.decode()
    assert "Traceback" not in bad.stderr.decode()


# ---- memory: packs are read in bounded spans ----------------------------------------------


def test_data_runs_skip_exactly_the_all_zero_blocks() -> None:
    """Holes are whole zero blocks; a block whose only non-zero byte is first, last or in the
    middle is data (the first/last-byte shortcut must not skip it)."""
    from fogvault.restore.content import HOLE_BLOCK, data_runs

    def block(nonzero_at: int | None, size: int = HOLE_BLOCK) -> bytes:
        data = bytearray(size)
        if nonzero_at is not None:
            data[nonzero_at] = 7
        return bytes(data)

    blocks = [block(None), block(0), block(HOLE_BLOCK // 2), block(HOLE_BLOCK - 1), block(None),
              block(None, 100)]
    data = b"".join(blocks)
    expected = [(HOLE_BLOCK, 4 * HOLE_BLOCK)]  # blocks 1-3 are data, 0, 4 and the tail holes
    assert data_runs(data) == expected
    assert data_runs(block(None, 100)) == []
    assert data_runs(block(99, 100)) == [(0, 100)]
    assert data_runs(b"") == []


def test_restore_reads_packs_in_spans_and_stays_byte_exact(
    backed: Backed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fogvault.restore.content as content_module

    monkeypatch.setattr(content_module, "FETCH_SPAN", 200)  # these packs: under 1 KiB
    calls: list[tuple[bytes, int, int]] = []
    real = backed.repo.read_pack_blobs

    def spy(pack_id: bytes, entries: list[Any], **kw: Any) -> Any:
        start = min(e.offset for e in entries)
        calls.append((pack_id, start, max(e.offset + e.length for e in entries) - start))
        if len(entries) > 1:
            assert calls[-1][2] <= 200
        return real(pack_id, entries, **kw)

    monkeypatch.setattr(backed.repo, "read_pack_blobs", spy)
    backed.restore(tmp_path / "out")
    assert listing(backed.restored(tmp_path / "out")) == ALL
    assert len(calls) > len({pack for pack, _, _ in calls})  # some pack took several reads
