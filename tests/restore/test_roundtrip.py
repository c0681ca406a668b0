"""Backup then restore gives back the same tree: contents, types, modes, times, symlink
targets, hardlinks, sparse holes, fifos and extended attributes.

The property test builds random trees on the real file system (names that are not UTF-8,
deep chains, multi-chunk and empty files, sparse files), backs them up with the Archiver,
restores with the Restorer into a fresh folder and compares every observable attribute.
The incremental tests prove that an unchanged file's content is not read again, by watching
the source with inotify (any open or read of a file is seen), not by trusting the archiver's
own counter alone.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import random
import shutil
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fogvault.backup.archiver import Archiver, BackupOptions, BackupResult
from fogvault.repo.repository import Repository
from fogvault.restore import restorer
from fogvault.restore.restorer import RestoreOptions, Restorer, RestoreSummary

KIB, MIB = 1024, 1024 * 1024
HOLE_BLOCK = 64 * KIB  # restore skips all-zero blocks of this size (content.HOLE_BLOCK)
MIN_CHUNK = 16 * KIB  # conftest.SMALL_CHUNKS


def _xattrs_supported(folder: Path) -> bool:
    probe = folder / "xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.fogvault-probe", b"1")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise
    finally:
        probe.unlink()
    return True


# ---- comparing trees ---------------------------------------------------------------------


def scan(root: bytes) -> dict[bytes, dict[str, Any]]:
    """Every observable attribute of every entry below (and including) ``root``. Works from
    inside ``root`` so that entries deeper than PATH_MAX below ``/`` can still be read."""
    previous = os.open(".", os.O_RDONLY)
    try:
        os.chdir(root)
        return _scan_here()
    finally:
        os.fchdir(previous)
        os.close(previous)


def _scan_here() -> dict[bytes, dict[str, Any]]:
    root = b"."
    out: dict[bytes, dict[str, Any]] = {}
    stack = [root]
    while stack:
        path = stack.pop()
        st_ = os.lstat(path)
        mode = st_.st_mode
        entry: dict[str, Any] = {
            "type": stat.S_IFMT(mode),
            "mode": stat.S_IMODE(mode),
            "mtime_ns": st_.st_mtime_ns,
            "uid": st_.st_uid,
            "gid": st_.st_gid,
            "ino": st_.st_ino,
            "blocks": st_.st_blocks,
        }
        if stat.S_ISREG(mode):
            entry["size"] = st_.st_size
            with open(path, "rb") as f:
                entry["data"] = f.read()
        elif stat.S_ISLNK(mode):
            entry["target"] = os.readlink(path)
        elif stat.S_ISDIR(mode):
            stack += [os.path.join(path, name) for name in os.listdir(path)]
        if not stat.S_ISLNK(mode):
            entry["xattrs"] = sorted(
                (os.fsencode(n), os.getxattr(path, n, follow_symlinks=False))
                for n in os.listxattr(path, follow_symlinks=False)
            )
        out[os.path.relpath(path, root)] = entry
    return out


def hardlink_groups(tree: dict[bytes, dict[str, Any]]) -> set[frozenset[bytes]]:
    by_inode: dict[int, set[bytes]] = {}
    for rel, entry in tree.items():
        if entry["type"] == stat.S_IFREG:
            by_inode.setdefault(entry["ino"], set()).add(rel)
    return {frozenset(group) for group in by_inode.values()}


def assert_same_tree(source: bytes, restored: bytes) -> dict[bytes, dict[str, Any]]:
    want, got = scan(source), scan(restored)
    assert sorted(got) == sorted(want)
    for rel in want:
        a = {k: v for k, v in want[rel].items() if k not in ("ino", "blocks")}
        b = {k: v for k, v in got[rel].items() if k not in ("ino", "blocks")}
        assert b == a, f"{rel!r} differs"
    assert hardlink_groups(got) == hardlink_groups(want)
    return got


def restored_root(target: Path, source: bytes) -> bytes:
    return os.path.join(os.fsencode(target), source.lstrip(b"/"))


# ---- building random trees ---------------------------------------------------------------


@dataclass
class FileSpec:
    content: tuple[Any, ...]
    mode: int
    mtime_ns: int
    xattrs: dict[bytes, bytes]


@dataclass
class LinkSpec:
    target: bytes
    mtime_ns: int


@dataclass
class FifoSpec:
    mode: int
    mtime_ns: int


@dataclass
class HardlinkSpec:
    pick: int  # which earlier file to link to (modulo the files made so far)


@dataclass
class DirSpec:
    children: dict[bytes, Any]
    mode: int
    mtime_ns: int
    xattrs: dict[bytes, bytes] = field(default_factory=dict)


def file_bytes(content: tuple[Any, ...]) -> tuple[bytes | None, int]:
    """(data, size); data is None for sparse files (written by ``write_sparse``)."""
    kind = content[0]
    if kind == "empty":
        return b"", 0
    if kind == "random":
        return random.Random(content[1]).randbytes(content[2]), content[2]
    if kind == "repeat":
        return bytes([content[1]]) * content[2], content[2]
    return None, content[3]  # sparse


def write_sparse(path: bytes, content: tuple[Any, ...]) -> None:
    _, seed, segments, size = content
    rng = random.Random(seed)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        for offset, length in segments:
            os.pwrite(fd, rng.randbytes(length), offset)
    finally:
        os.close(fd)


def sparse_bound(content: tuple[Any, ...]) -> int:
    """The most a faithful restore may allocate for a sparse file: each data segment, plus
    for every chunk it spans one all-or-nothing HOLE_BLOCK on either side."""
    bound = HOLE_BLOCK
    for _, length in content[2]:
        chunks_spanned = length // MIN_CHUNK + 2
        bound += length + chunks_spanned * 2 * HOLE_BLOCK
    return bound


@dataclass
class Built:
    files: int = 0  # regular file paths (hardlinks count once per path)
    sparse: dict[bytes, tuple[Any, ...]] = field(default_factory=dict)


def build(root: bytes, spec: DirSpec, xattrs_ok: bool) -> Built:
    """Create ``spec`` at ``root``; metadata last (children before their folders)."""
    built = Built()
    made_files: list[bytes] = []
    hardlinks: list[tuple[bytes, HardlinkSpec]] = []
    meta: list[tuple[bytes, Any]] = []  # in creation order; folders come before children

    def make(path: bytes, node: Any) -> None:
        if isinstance(node, DirSpec):
            os.mkdir(path, 0o700)
            meta.append((path, node))
            for name, child in node.children.items():
                make(os.path.join(path, name), child)
        elif isinstance(node, FileSpec):
            data, _ = file_bytes(node.content)
            if data is None:
                write_sparse(path, node.content)
                built.sparse[path] = node.content
            else:
                with open(path, "xb") as f:
                    f.write(data)
            made_files.append(path)
            built.files += 1
            meta.append((path, node))
        elif isinstance(node, LinkSpec):
            os.symlink(node.target, path)
            meta.append((path, node))
        elif isinstance(node, FifoSpec):
            os.mkfifo(path, 0o600)
            meta.append((path, node))
        else:
            hardlinks.append((path, node))

    make(root, spec)
    for path, link in hardlinks:
        if made_files:
            os.link(made_files[link.pick % len(made_files)], path)
        else:
            open(path, "xb").close()
        built.files += 1
    for path, node in reversed(meta):  # reversed: children before the folder holding them
        if xattrs_ok and isinstance(node, FileSpec | DirSpec):
            for name, value in node.xattrs.items():
                os.setxattr(path, name, value)
        if not isinstance(node, LinkSpec):
            os.chmod(path, node.mode)
        os.utime(path, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)
    return built


def _name_ok(name: bytes) -> bool:
    return name not in (b".", b"..") and b"/" not in name and b"\0" not in name


names = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/\0"),
            min_size=1, max_size=10).map(str.encode),
    st.binary(min_size=1, max_size=10),  # mostly not UTF-8
).filter(_name_ok)
mtimes = st.integers(-2_000_000_000 * 10**9, 4_000_000_000 * 10**9)  # 1906..2096
xattr_maps = st.dictionaries(
    st.binary(min_size=1, max_size=12).filter(lambda n: b"\0" not in n).map(
        lambda n: b"user." + n),
    st.binary(max_size=80),
    max_size=3,
)
contents = st.one_of(
    st.just(("empty",)),
    st.tuples(st.just("random"), st.integers(0, 2**32), st.integers(1, 4 * KIB)),
    st.tuples(st.just("random"), st.integers(0, 2**32), st.integers(100 * KIB, 600 * KIB)),
    st.tuples(st.just("repeat"), st.integers(0, 255), st.integers(1, 300 * KIB)),
    st.tuples(
        st.just("sparse"),
        st.integers(0, 2**32),
        st.lists(st.tuples(st.integers(0, 12 * MIB), st.integers(1, 80 * KIB)), max_size=3),
        st.integers(12 * MIB + 80 * KIB, 16 * MIB),
    ),
)
link_targets = st.one_of(
    st.binary(min_size=1, max_size=30).filter(lambda t: b"\0" not in t),
    st.sampled_from([b"/etc/passwd", b"/", b"..", b"../../x", b"/nonexistent/\xff\xfe"]),
)
leaves = st.one_of(
    st.builds(FileSpec, contents, st.integers(0, 0o7777).map(lambda m: m | 0o400), mtimes,
              xattr_maps),
    st.builds(LinkSpec, link_targets, mtimes),
    st.builds(FifoSpec, st.integers(0, 0o777).map(lambda m: m | 0o400), mtimes),
    st.builds(HardlinkSpec, st.integers(0, 1000)),
)
dir_modes = st.integers(0, 0o7777).map(lambda m: m | 0o700)  # the test must be able to clean up


def dirs(children: st.SearchStrategy[Any]) -> st.SearchStrategy[DirSpec]:
    return st.builds(DirSpec, st.dictionaries(names, children, max_size=5), dir_modes, mtimes,
                     xattr_maps)


def with_deep_chain(spec: DirSpec, depth: int, mtime_ns: int) -> DirSpec:
    """Hang a chain of ``depth`` nested folders with a file at the bottom off ``spec``."""
    node: Any = FileSpec(("random", depth, 1000), 0o640, mtime_ns, {})
    for level in range(depth):
        node = DirSpec({b"f" if level == 0 else b"d%d" % level: node}, 0o755, mtime_ns)
    spec.children[b"deep-chain"] = node
    return spec


trees = st.builds(
    with_deep_chain,
    dirs(st.recursive(leaves, dirs, max_leaves=16)),
    st.integers(1, 40),
    mtimes,
)


# ---- the property --------------------------------------------------------------------------


def backup(repo: Repository, source: bytes | Path, **options: Any) -> BackupResult:
    result = Archiver(repo, BackupOptions(**options)).run([os.fsdecode(source)])
    assert result.warnings == []
    return result


def restore(repo: Repository, result: BackupResult, target: Path, **options: Any) -> RestoreSummary:
    return Restorer(repo, result.snapshot, RestoreOptions(target=str(target), **options)).run()


@pytest.fixture
def shared_repo(make_repo: Callable[..., Repository]) -> Repository:
    return make_repo()


_example = itertools.count()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(spec=trees)
def test_backup_then_restore_gives_back_the_same_tree(
    shared_repo: Repository, tmp_path: Path, spec: DirSpec
) -> None:
    work = tmp_path / f"example-{next(_example)}"
    work.mkdir()
    try:
        xattrs_ok = _xattrs_supported(work)
        source = os.fsencode(work / "src")
        built = build(source, spec, xattrs_ok)
        result = backup(shared_repo, source)
        target = work / "restored"
        summary = restore(shared_repo, result, target, verify=True)
        assert summary.warnings == []
        restored = assert_same_tree(source, restored_root(target, source))
        regular = [e for e in restored.values() if e["type"] == stat.S_IFREG]
        assert summary.files == built.files == len(regular)
        assert summary.verified == len({e["ino"] for e in regular})
        for path, content in built.sparse.items():
            rel = os.path.relpath(path, source)
            allocated = restored[rel]["blocks"] * 512
            assert allocated <= sparse_bound(content), f"{rel!r}: holes were filled"
            assert allocated < content[3] // 2
    finally:
        shutil.rmtree(work)


@pytest.mark.parametrize(("plan_batch", "processes", "segment"),
                         [(None, False, None), (1, False, None), (3, False, None),
                          (None, True, None), (3, True, None), (3, False, 4), (None, True, 4)])
def test_kitchen_sink_round_trip(make_repo: Callable[..., Repository], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch, plan_batch: int | None,
                                 processes: bool, segment: int | None) -> None:
    """One fixed tree with every kind of entry at once, so each is covered on every run
    whatever the property test draws. Also restored in batches of 1 and 3 files (the plan's
    memory bound): hardlinks to a file of an earlier batch, content shared across batches;
    with the contents written by worker processes, in one batch and in several; and with the
    files of more than 4 chunks written 4 chunks at a time, here (the large-file bound)."""
    segments: list[int] = []  # chunks of each in-process write of a file written in segments
    if segment is not None:
        monkeypatch.setattr(restorer, "SEGMENT_BLOBS", segment)
        real_write = restorer.ContentWriter.write

        def write(self: Any, jobs: list[Any], locations: list[Any], starts: Any = None) -> None:
            if starts is not None:
                segments.extend(len(entries) for entries in locations)
            real_write(self, jobs, locations, starts)

        monkeypatch.setattr(restorer.ContentWriter, "write", write)
    batches: list[int] = []
    if plan_batch is not None:
        monkeypatch.setattr(restorer, "PLAN_BATCH_FILES", plan_batch)
        real = restorer.Restorer._write_contents

        def counted(self: Restorer, root) -> None:
            batches.append(len(self._files))
            real(self, root)

        monkeypatch.setattr(restorer.Restorer, "_write_contents", counted)
    tasks: list[int] = []  # files per task sent to a worker process
    real_submit = restorer.WriterProcesses.submit

    def submit(self: Any, jobs: list[Any], locations: list[Any]) -> None:
        tasks.append(len(jobs))
        real_submit(self, jobs, locations)

    monkeypatch.setattr(restorer.WriterProcesses, "submit", submit)
    repo = make_repo()
    xattrs_ok = _xattrs_supported(tmp_path)
    big = ("random", 7, 1_500_000)  # ~23 chunks of 64 KiB average
    sparse = ("sparse", 3, [(0, 5000), (3 * MIB + 17, 70_000), (9 * MIB, 1)], 10 * MIB)
    spec = DirSpec({
        b"empty": FileSpec(("empty",), 0o600, 1, {}),
        b"big": FileSpec(big, 0o4755, 1_234_567_891_234_567_891, {b"user.k": b"v"}),
        b"zeros": FileSpec(("repeat", 0, 300_000), 0o644, 10**18, {}),
        b"sparse": FileSpec(sparse, 0o640, 987_654_321, {b"user.\xff": b""}),
        b"same-as-big": FileSpec(big, 0o600, 12, {}),
        b"\xff\xfe-not-utf8": FileSpec(("random", 1, 10), 0o444, 5, {}),
        "ünïcödé".encode(): FifoSpec(0o620, 42),
        b"abs-link": LinkSpec(b"/etc/passwd", 3 * 10**18),
        b"rel-link": LinkSpec(b"../src/\xfe", 77),
        b"sub": DirSpec({
            b"hl-1": HardlinkSpec(1),
            b"hl-2": HardlinkSpec(1),
            b"private": DirSpec({}, 0o700, 123),
            b"sticky": DirSpec({b"x": FifoSpec(0o600, 9)}, 0o1777, 3, {b"user.dir": b"d"}),
        }, 0o2750, 999_999_999_999),
    }, 0o755, 1_700_000_000_123_456_789)
    spec = with_deep_chain(spec, 60, 5)
    source = os.fsencode(tmp_path / "src")
    built = build(source, spec, xattrs_ok)
    result = backup(repo, source)
    summary = restore(repo, result, tmp_path / "restored", verify=True, processes=processes)
    assert summary.warnings == []
    restored = assert_same_tree(source, restored_root(tmp_path / "restored", source))
    assert restored[b"sub/hl-1"]["ino"] == restored[b"sub/hl-2"]["ino"] == restored[b"big"]["ino"]
    assert summary.verified == built.files - 2  # the two extra links are not separate files
    assert restored[b"sparse"]["blocks"] * 512 <= sparse_bound(sparse)
    if plan_batch is not None:  # the root folder alone holds more files than one batch
        assert max(batches) == plan_batch and sum(batches) == summary.verified
    if segment is None:
        assert (sum(tasks) == summary.verified) if processes else not tasks
    else:  # big (twice: a copy shares its chunks, not its node) and sparse, in segments
        assert max(segments) == segment and sum(segments) > 3 * segment
        assert sum(tasks) == (summary.verified - 3 if processes else 0)
    link = restored_root(tmp_path / "restored", source) + b"/rel-link"
    assert os.readlink(link) == b"../src/\xfe"
    if xattrs_ok:
        assert restored[b"sparse"]["xattrs"] == [(b"user.\xff", b"")]


# ---- incremental backups read nothing unchanged --------------------------------------------


class OpenWatcher:
    """Records every open and read of a regular file in the watched folders (inotify)."""

    IN_ACCESS, IN_OPEN, IN_Q_OVERFLOW, IN_ISDIR = 0x1, 0x20, 0x4000, 0x40000000

    def __init__(self, folders: list[bytes]) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "inotify_init1"):
            pytest.skip("no inotify on this platform")
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.folders: dict[int, bytes] = {}
        for folder in folders:
            wd = libc.inotify_add_watch(self.fd, folder, self.IN_ACCESS | self.IN_OPEN)
            if wd < 0:
                raise OSError(ctypes.get_errno(), "inotify_add_watch", folder)
            self.folders[wd] = folder

    def opened_files(self) -> set[bytes]:
        """Files opened or read since the last call (events are queued synchronously by the
        system calls themselves, so no waiting is needed)."""
        seen: set[bytes] = set()
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return seen
            pos = 0
            while pos < len(buf):
                wd, mask, _cookie, length = struct.unpack_from("iIII", buf, pos)
                name = buf[pos + 16 : pos + 16 + length].rstrip(b"\0")
                pos += 16 + length
                assert not mask & self.IN_Q_OVERFLOW, "inotify queue overflowed"
                if name and not mask & self.IN_ISDIR:
                    seen.add(os.path.join(self.folders[wd], name))

    def close(self) -> None:
        os.close(self.fd)


def _folders(root: bytes) -> list[bytes]:
    return [os.fsencode(d) for d, _, _ in os.walk(root)]


def test_unchanged_files_are_not_opened_again(
    make_repo: Callable[..., Repository], tmp_path: Path, trust_recent_entries: None
) -> None:
    repo = make_repo()
    spec = DirSpec({
        b"big": FileSpec(("random", 11, 900_000), 0o644, 10**18, {}),
        b"small": FileSpec(("random", 12, 100), 0o600, 2 * 10**18, {}),
        b"empty": FileSpec(("empty",), 0o600, 3, {}),
        b"sparse": FileSpec(("sparse", 1, [(MIB, 1000)], 4 * MIB), 0o600, 4, {}),
        b"\xfflink": LinkSpec(b"big", 5),
        b"fifo": FifoSpec(0o600, 6),
        b"sub": DirSpec({b"hardlink": HardlinkSpec(0),
                         b"inner": FileSpec(("repeat", 1, 70_000), 0o600, 7, {})}, 0o755, 8),
    }, 0o755, 9)
    source = os.fsencode(tmp_path / "src")
    built = build(source, spec, xattrs_ok=False)
    regular = {os.path.join(d, n) for d, _, ns in os.walk(source) for n in ns
               if stat.S_ISREG(os.lstat(os.path.join(d, n)).st_mode)}
    assert len(regular) == built.files == 6
    first = backup(repo, source)
    assert first.snapshot.summary.bytes_read == sum(
        os.lstat(p).st_size for p in regular if not p.endswith(b"hardlink"))

    watcher = OpenWatcher(_folders(source))
    try:
        second = backup(repo, source)
        assert watcher.opened_files() == set()
        summary = second.snapshot.summary
        assert summary.bytes_read == 0
        assert summary.files_unchanged == built.files
        assert summary.files_new == summary.files_changed == summary.data_blobs_added == 0
        assert second.snapshot.parent == first.snapshot.uid

        # The instrument works: a forced backup opens every file (but the second name of a
        # hardlinked file, whose content is known by then).
        forced = backup(repo, source, force=True)
        assert forced.snapshot.summary.bytes_read == first.snapshot.summary.bytes_read
        opened = watcher.opened_files()
        assert len(opened) == built.files - 1 and opened <= regular
    finally:
        watcher.close()

    # What the unchanged snapshot points at is the right content.
    summary2 = restore(repo, second, tmp_path / "restored", verify=True)
    assert summary2.warnings == [] and summary2.verified == built.files - 1
    assert_same_tree(source, restored_root(tmp_path / "restored", source))


def test_same_size_and_mtime_but_new_content_is_read_again(
    make_repo: Callable[..., Repository], tmp_path: Path, trust_recent_entries: None
) -> None:
    """Size and mtime are easy to preserve while changing a file (``touch -r``, ``rsync
    -t``...); its ctime and inode are not. The backup must notice and read it."""
    repo = make_repo()
    source = tmp_path / "src"
    source.mkdir()
    same_inode = source / "same-inode"
    replaced = source / "replaced"
    untouched = source / "untouched"
    for path, seed in [(same_inode, 1), (replaced, 2), (untouched, 3)]:
        path.write_bytes(random.Random(seed).randbytes(200_000))
    first = backup(repo, source)
    old = {p: os.lstat(p) for p in (same_inode, replaced)}

    # In place: same inode, same size, old mtime put back; only the ctime moves.
    with open(same_inode, "r+b") as f:
        f.seek(100_000)
        f.write(b"CHANGED")
    os.utime(same_inode, ns=(old[same_inode].st_atime_ns, old[same_inode].st_mtime_ns))
    # Replaced by a new file (new inode) with the same size and mtime.
    new_content = random.Random(4).randbytes(200_000)
    (source / "tmp").write_bytes(new_content)
    os.utime(source / "tmp", ns=(old[replaced].st_atime_ns, old[replaced].st_mtime_ns))
    os.rename(source / "tmp", replaced)
    for path in (same_inode, replaced):
        st_ = os.lstat(path)
        assert (st_.st_size, st_.st_mtime_ns) == (old[path].st_size, old[path].st_mtime_ns)

    second = backup(repo, source)
    summary = second.snapshot.summary
    assert summary.files_changed == 2
    assert summary.files_unchanged == 1
    assert summary.bytes_read == 400_000
    assert_restores_to(repo, second, tmp_path / "restored-2", source)
    restored = restored_root(tmp_path / "restored-1", os.fsencode(source))
    restore(repo, first, tmp_path / "restored-1")
    with open(os.path.join(restored, b"same-inode"), "rb") as f:
        assert b"CHANGED" not in f.read()


def assert_restores_to(repo: Repository, result: BackupResult, target: Path,
                       source: Path) -> None:
    summary = restore(repo, result, target, verify=True)
    assert summary.warnings == []
    assert_same_tree(os.fsencode(source), restored_root(target, os.fsencode(source)))


# ---- edge cases and known limitations ---------------------------------------------------------


def test_files_dated_before_1970_round_trip(
    make_repo: Callable[..., Repository], tmp_path: Path
) -> None:
    """Times before 1970 are negative; the tree format must accept what the backup stores
    (this once backed up without a warning and then could not be restored)."""
    repo = make_repo()
    source = tmp_path / "src"
    source.mkdir()
    (source / "old").write_bytes(b"from the sixties")
    os.utime(source / "old", ns=(-10**18, -(10**18) - 1))
    result = backup(repo, source)
    assert_restores_to(repo, result, tmp_path / "restored", source)


def test_metadata_restored_below_a_deep_target(
    make_repo: Callable[..., Repository], tmp_path: Path
) -> None:
    repo = make_repo()
    source = tmp_path / "src"
    deep = source.joinpath(*["d" * 100] * 35)  # ~3.5 KiB below src: backs up fine
    deep.mkdir(parents=True)
    (deep / "f").write_bytes(b"deep")
    os.utime(deep / "f", ns=(5, 5))
    result = backup(repo, source)
    target = tmp_path / ("t" * 250) / ("t" * 250) / ("t" * 250)  # restored path > 4 KiB
    assert_restores_to(repo, result, target, source)
