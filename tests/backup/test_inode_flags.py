"""Inode flags (``chattr``'s) backed up: the stored bits of files and folders, none of links
and fifos; ``--no-flags`` (and the job key ``no_flags``) writing what writers before flags
wrote; a flags-only change stored by the next backup and shown by ``diff``; unchanged entries
taking the parent's flags without being opened, but only from a parent that read them; the
tree codec's ``flags`` in both parsers; the second reader (docs/format.md alone) reading and
setting them. Real files, ``chattr`` as the user runs it; i and a lifted at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PASSWORD

from fogvault.backup import archiver
from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import MalformedObject
from fogvault.jobs.config import ConfigError, parse_config
from fogvault.jobs.runner import run_job
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot
from fogvault.repo.tree import FILE, Node, Tree, _json_nodes
from fogvault.repo.tree_typed import typed_nodes
from fogvault.treewalk import diff, diff_snapshots, walk
from tests.restore.test_inode_flags import chattr, unlocked  # noqa: F401 (unlocked: autouse)

sys.path.insert(0, str(Path(__file__).parents[1] / "format"))
import second_reader as sr  # docs/format.md's second implementation

BITS = {"s": 0x1, "u": 0x2, "c": 0x4, "S": 0x8, "i": 0x10, "a": 0x20, "d": 0x40, "A": 0x80,
        "t": 0x8000, "D": 0x10000, "T": 0x20000}  # format.md, section 13.6


def bits(letters: str) -> int:
    return sum(BITS[x] for x in letters)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """Files and folders with flags, a symlink, a fifo and a plain file."""
    root = tmp_path / "src"
    (root / "dir").mkdir(parents=True)
    for name in ("plain", "nodump", "locked", "log", "dir/inner"):
        (root / name).write_bytes(name.encode() * 100)
    os.symlink("plain", root / "link")
    os.mkfifo(root / "fifo")
    chattr(root / "nodump", "+d", "+A")
    chattr(root / "locked", "+i")
    chattr(root / "log", "+a", "+s", "+u", "+c", "+S", "+t")
    chattr(root / "dir/inner", "+d")
    chattr(root / "dir", "+D", "+T", "+d")
    return root


def _backup(repo: Repository, paths: list[Path], **options: object) -> Snapshot:
    result = Archiver(repo, BackupOptions(**options)).run(  # type: ignore[arg-type]
        [str(p) for p in paths])
    assert result.warnings == []
    return result.snapshot


def _nodes(repo: Repository, snapshot: Snapshot, src: Path) -> dict[str, Node]:
    """The snapshot's entries below ``src`` (and ``src`` itself as "."), by relative path."""
    prefix = os.fsencode(src)
    found = {}
    for path, node in walk(repo, snapshot.tree):
        if path == prefix or path.startswith(prefix + b"/"):
            found[os.fsdecode(os.path.relpath(path, prefix))] = node
    return found


def _flags(repo: Repository, snapshot: Snapshot, src: Path) -> dict[str, int]:
    return {rel: node.flags for rel, node in _nodes(repo, snapshot, src).items()}


EXPECTED = {".": 0, "plain": 0, "nodump": bits("dA"), "locked": bits("i"), "log": bits("asucSt"),
            "dir": bits("DTd"), "dir/inner": bits("d"), "link": 0, "fifo": 0}


def test_the_stored_bits_of_files_and_folders_are_stored(
        make_repo: Callable[..., Repository], src: Path) -> None:
    """Not ext4's own e (extents), which every file and folder here has, nor anything for a
    symlink or a fifo; the snapshot says its backup read them."""
    repo = make_repo()
    snapshot = _backup(repo, [src])
    assert _flags(repo, snapshot, src) == EXPECTED
    assert snapshot.flags_read and json.loads(snapshot.encode())["flags_read"] is True
    tree = Tree([_nodes(repo, snapshot, src)["plain"]]).encode()
    assert b'"flags"' not in tree  # omitted when 0: byte for byte what came before


def test_ls_json_shows_the_flags_of_entries_that_have_some(
        make_repo: Callable[..., Repository], src: Path,
        fogvault: Callable[..., subprocess.CompletedProcess[bytes]]) -> None:
    snapshot = _backup(make_repo(), [src])
    done = fogvault("ls", "-r", "repo", "--json", "-R", snapshot.uid, str(src))
    assert done.returncode == 0, done.stderr
    shown = {entry["name"]: entry.get("flags") for entry in json.loads(done.stdout)}
    assert shown == {"plain": None, "nodump": "dA", "locked": "i", "log": "sucSat",
                     "dir": "dDT", "inner": "d", "link": None, "fifo": None}  # in bit order


def test_no_flags_writes_what_writers_before_flags_wrote(
        make_repo: Callable[..., Repository], src: Path) -> None:
    repo = make_repo()
    snapshot = _backup(repo, [src], inode_flags=False)
    assert set(_flags(repo, snapshot, src).values()) == {0}
    assert "flags_read" not in json.loads(snapshot.encode())
    loaded = repo.load_snapshot(snapshot.uid)
    assert not loaded.flags_read


def test_a_flags_only_change_is_stored_and_diff_shows_it(
        make_repo: Callable[..., Repository], src: Path, trust_recent_entries: None) -> None:
    """chattr changes the ctime and not the mtime: the file is read again (as any status
    change makes it: its content is deduplicated) and its new flags stored; diff says U."""
    repo = make_repo()
    first = _backup(repo, [src])
    mtime = os.lstat(src / "plain").st_mtime_ns
    chattr(src / "plain", "+d")
    chattr(src / "nodump", "-A")
    second = _backup(repo, [src])
    assert os.lstat(src / "plain").st_mtime_ns == mtime
    assert _flags(repo, second, src) == {**EXPECTED, "plain": bits("d"), "nodump": bits("d")}
    assert (second.summary.files_changed, second.summary.data_blobs_added) == (2, 0)
    changes = {(c.kind, os.fsdecode(c.path)) for c in diff(repo, first.tree, second.tree)}
    assert changes >= {("U", f"{src}/plain"), ("U", f"{src}/nodump")}
    assert {kind for kind, path in changes if path.startswith(f"{src}/")} == {"U"}


def test_diff_compares_flags_only_where_both_snapshots_read_them(
        make_repo: Callable[..., Repository], src: Path, trust_recent_entries: None,
        fogvault: Callable[..., subprocess.CompletedProcess[bytes]]) -> None:
    """A --no-flags snapshot says nothing of the flags: diff against it shows no flagged
    entry as changed (each was U); between two that read them, a flags-only change is U."""
    repo = make_repo()
    without = _backup(repo, [src], inode_flags=False)
    first = _backup(repo, [src])
    below = os.fsencode(src) + b"/"

    def changes(old: Snapshot, new: Snapshot) -> set[tuple[str, str]]:
        return {(c.kind, os.fsdecode(c.path)) for c in diff_snapshots(repo, old, new)
                if c.path.startswith(below)}

    assert changes(without, first) == changes(first, without) == set()
    assert {c.kind for c in diff(repo, without.tree, first.tree)
            if c.path.startswith(below)} == {"U"}  # the trees alone cannot tell
    chattr(src / "plain", "+d")
    second = _backup(repo, [src])
    assert changes(first, second) == {("U", f"{src}/plain")}
    assert changes(without, second) == set()
    # and so does the command
    for old, new, shown in ((without, second, b""), (first, second, b"U    %s/plain\n")):
        done = fogvault("diff", "-r", "repo", old.uid, new.uid)
        assert done.returncode == 0, done.stderr
        assert b"".join(line + b"\n" for line in done.stdout.splitlines()
                        if line.startswith(b"U ")) == shown.replace(b"%s", os.fsencode(src))


def test_unchanged_entries_take_the_parents_flags_only_if_it_read_them(
        make_repo: Callable[..., Repository], src: Path, trust_recent_entries: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unchanged backup opens nothing for flags; after a parent that did not read them (a
    --no-flags run, or any backup before flags were stored), every file and folder is read
    once, the unchanged ones too."""
    opened = _count_flag_reads(monkeypatch)
    repo = make_repo()
    without = _backup(repo, [src], inode_flags=False)
    assert opened == []
    after_without = _backup(repo, [src])
    assert after_without.summary.files_unchanged == 5
    assert _flags(repo, after_without, src) == EXPECTED
    assert len(opened) == 7 + len(src.parents) - 1  # files, ., dir and the folders above
    opened.clear()
    again = _backup(repo, [src])
    assert (opened, again.summary.files_unchanged) == ([], 5)
    assert _flags(repo, again, src) == EXPECTED
    assert without.tree != again.tree


def test_skip_if_unchanged_saves_once_after_a_parent_without_flags(
        make_repo: Callable[..., Repository], tmp_path: Path, trust_recent_entries: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing changed since a --no-flags parent (no entry has flags, so the trees are the
    same), but it did not read them: the first run with flags saves a snapshot that did, so
    that the next finds them there and opens nothing (else each run opened every file and
    folder, and saved nothing)."""
    src = tmp_path / "plain"
    (src / "dir").mkdir(parents=True)
    for name in ("a", "b", "dir/c"):
        (src / name).write_bytes(name.encode())
    opened = _count_flag_reads(monkeypatch)
    repo = make_repo()
    without = _backup(repo, [src], inode_flags=False)
    first = Archiver(repo, BackupOptions(skip_if_unchanged=True)).run([str(src)])
    assert first.unchanged_since is None and first.snapshot.flags_read
    assert first.snapshot.tree == without.tree
    opened.clear()
    second = Archiver(repo, BackupOptions(skip_if_unchanged=True)).run([str(src)])
    assert (second.unchanged_since, opened) == (first.snapshot.uid, [])
    assert len(list(repo.snapshots())) == 2


def _count_flag_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The descriptors the archiver reads inode flags through, from now on."""
    opened: list[int] = []
    read_flags = archiver.read_flags

    def counted(fd: int) -> int:
        opened.append(fd)
        return read_flags(fd)

    monkeypatch.setattr(archiver, "read_flags", counted)
    return opened


def test_the_flags_field_in_both_tree_parsers() -> None:
    """The standard parser and msgspec's read ``flags`` alike, as an unsigned integer on any
    node type; anything else is malformed in both."""
    node = Node(name=b"f", type=FILE, flags=bits("ia") | 0x40000000)  # a bit not stored: kept
    data = Tree([node]).encode()
    assert b'"flags":1073741872' in data
    assert Tree.decode(data).nodes == typed_nodes(data) == _json_nodes(data) == [node]
    for bad in (-1, True, 1.0, "16", None):
        doc = json.dumps({"version": 1, "nodes": [{"type": "file", "name": "f", "flags": bad}]})
        with pytest.raises(MalformedObject, match="bad flags"):
            Tree.decode(doc.encode())


def test_the_second_reader_reads_and_sets_flags(
        make_repo: Callable[..., Repository], src: Path, tmp_path: Path) -> None:
    """docs/format.md's second implementation decodes ``flags`` and extracts with them: set
    last, a folder's after its contents (the immutable file and folder are still filled)."""
    repo = make_repo()
    snapshot = _backup(repo, [src])
    reader = sr.Repository(repo.targets.urls[0], PASSWORD)
    walked = {os.fsdecode(path): node.flags for path, node in reader.walk(snapshot.tree.hex())}
    assert {rel: walked[os.path.normpath(f"{src}/{rel}")] for rel in EXPECTED} == EXPECTED
    out = tmp_path / "extracted"
    reader.extract(snapshot.uid, out)
    assert reader.warnings == []
    placed = out / str(src).lstrip("/")
    assert (placed / "locked").read_bytes() == b"locked" * 100
    assert _lsattr(placed / "locked") == {"i"} and _lsattr(placed / "dir") == {"D", "T", "d"}


def _lsattr(path: Path) -> set[str]:
    out = subprocess.run(["lsattr", "-d", str(path)], check=True, capture_output=True).stdout
    return set(out.split()[0].decode()) - {"-", "e"}


def test_job_key_no_flags(make_repo: Callable[..., Repository], src: Path, tmp_path: Path,
                          local_job_text: Callable[[Path], str]) -> None:
    """``no_flags = true`` is backup --no-flags; not a boolean is a config error."""
    repo = make_repo("repo")
    text = local_job_text(src)
    for value, flags in (("false", EXPECTED), ("true", dict.fromkeys(EXPECTED, 0))):
        config = parse_config(text + f"no_flags = {value}\n", tmp_path / "config.toml")
        assert config.job("home").no_flags is (value == "true")
        record = run_job(config, "home")
        assert record.exit_code == 0, record.error
        fresh = Repository.open(repo.targets.urls, PASSWORD, use_cache=False)
        assert _flags(fresh, fresh.load_snapshot(record.snapshot), src) == flags
        fresh.close()
    with pytest.raises(ConfigError, match="no_flags"):
        parse_config(text + 'no_flags = "yes"\n', tmp_path / "config.toml")
