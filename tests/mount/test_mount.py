"""``fogvault mount`` for real: a subprocess serving a real repository through FUSE, read with
ordinary file operations and compared with the backed-up source (contents, modes, owners,
times, links, device numbers, xattrs, names that are not UTF-8), its layout, filters, the lock
it holds, and a damaged chunk."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from conftest import FAST_KDF, PASSWORD, SMALL_CHUNKS
from polling import wait_until

from fogvault.repo.config import RepoConfig
from fogvault.repo.format import pack_name
from fogvault.repo.index import IndexEntry
from fogvault.repo.repository import Repository
from tests.mount.mounting import (
    MountProcess,
    OpenCounter,
    flip_a_byte,
    force_unmount,
)

LATIN1 = os.fsdecode(b"caf\xe9")
BIG = 4 * 1024 * 1024  # about 60 chunks of the tests' chunker


@dataclass
class Served:
    root: Path  # the repository is root/repo
    env: dict[str, str]
    src: Path
    mnt: Path
    snapshots: list[dict]  # snapshots --json, oldest first

    def fogvault(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fogvault", *args], env=self.env,
                              cwd=self.root, capture_output=True, timeout=300, check=False)


def _source(src: Path) -> None:
    rng = random.Random(11)
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "big").write_bytes(rng.randbytes(BIG))
    (src / "sub" / "a").write_bytes(b"hello\n")
    os.link(src / "sub" / "a", src / "sub" / "hardlink")
    os.symlink("a", src / "sub" / "link")
    os.symlink("/nowhere/at/all", src / "dangling")
    os.mkfifo(src / "fifo")
    (src / LATIN1).write_bytes(b"latin-1 name")
    (src / "empty").write_bytes(b"")
    (src / "sub" / "deeper" / "owned").write_bytes(b"not mine")
    os.setxattr(src / "sub" / "a", "user.note", b"\x00binary\xff")
    os.setxattr(src / "sub", "user.folder", b"on a folder")
    os.chmod(src / "sub" / "a", 0o640)
    if os.geteuid() == 0:
        os.chown(src / "sub" / "deeper" / "owned", 1234, 5678)
        os.mknod(src / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        os.mknod(src / "bigminor", stat.S_IFBLK | 0o600, os.makedev(259, 70000))
    for path in (src / "sub" / "deeper", src / "empty"):
        os.utime(path, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))


@pytest.fixture(scope="module")
def served(fuse: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Two snapshots of one source (the second of another host, with a marker file changed
    between them) in a repository with small chunks, mounted."""
    root = tmp_path_factory.mktemp("served")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOGVAULT_")}
    env.update(FOGVAULT_PASSWORD=PASSWORD.decode(), XDG_CACHE_HOME=str(root / "cache"),
               XDG_CONFIG_HOME=str(root / "config"), XDG_STATE_HOME=str(root / "state"))
    Repository.init([str(root / "repo")], PASSWORD, config=RepoConfig(chunker=SMALL_CHUNKS),
                    kdf=FAST_KDF).close()
    src = root / "src"
    _source(src)
    served = Served(root, env, src, root / "mnt", [])
    for generation, options in ((1, ["--tag", "daily"]),
                                (2, ["--host", "other", "--tag", "weekly", "--tag", "a/b"])):
        (src / "generation").write_text(str(generation))
        done = served.fogvault("backup", "-r", "repo", str(src), *options)
        assert done.returncode == 0, done.stderr
    served.snapshots = json.loads(served.fogvault("snapshots", "-r", "repo", "--json").stdout)
    served.mnt.mkdir()
    mount = MountProcess(served.mnt, ["-r", "repo"], env, root)
    try:
        mount.wait_mounted()
        yield served
    finally:
        mount.clean_up()


def _entries(root: bytes) -> dict[bytes, tuple]:
    """Every entry below ``root`` with what ``lstat`` and friends show of it (not a folder's
    link count, which the mount does not show)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            shown: tuple = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_ctime_ns)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    shown += (st.st_nlink, st.st_size, f.read())
            elif stat.S_ISLNK(st.st_mode):
                shown += (os.readlink(path), st.st_size)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                shown += (os.major(st.st_rdev), os.minor(st.st_rdev))
            if not stat.S_ISLNK(st.st_mode):
                shown += (sorted((key, os.getxattr(path, key)) for key in os.listxattr(path)),)
            found[os.path.relpath(path, root)] = shown
    return found


def _snapshot_root(served: Served, uid: str) -> Path:
    return served.mnt / "ids" / uid / str(served.src).lstrip("/")


def test_the_files_are_the_source_byte_for_byte_with_their_metadata(served: Served) -> None:
    copy = _snapshot_root(served, served.snapshots[-1]["uid"])
    assert _entries(os.fsencode(copy)) == _entries(os.fsencode(served.src))
    assert (copy / "sub" / "a").stat().st_ino == (copy / "sub" / "hardlink").stat().st_ino
    assert (copy / LATIN1).read_bytes() == b"latin-1 name"
    assert os.getxattr(copy / "sub" / "a", "user.note") == b"\x00binary\xff"
    with pytest.raises(OSError) as missing:
        os.getxattr(copy / "sub" / "a", "user.none")
    assert missing.value.errno == errno.ENODATA
    with pytest.raises(OSError) as read_only:
        (copy / "new").write_bytes(b"x")
    assert read_only.value.errno == errno.EROFS


def test_reads_at_random_offsets_and_sizes(served: Served) -> None:
    data = (served.src / "big").read_bytes()
    fd = os.open(_snapshot_root(served, served.snapshots[-1]["uid"]) / "big", os.O_RDONLY)
    try:
        rng = random.Random(5)
        for _ in range(100):
            offset = rng.randrange(BIG + 100)
            size = rng.choice([1, 4095, 65536, rng.randrange(1, 3 * 1024 * 1024)])
            assert os.pread(fd, size, offset) == data[offset:offset + size], (offset, size)
    finally:
        os.close(fd)


def _generation(folder: Path, served: Served) -> str:
    return (folder / str(served.src).lstrip("/") / "generation").read_text()


def test_ids_snapshots_hosts_tags_and_latest(served: Served) -> None:
    first, second = served.snapshots
    mnt = served.mnt
    assert sorted(os.listdir(mnt)) == ["hosts", "ids", "snapshots", "tags"]
    assert sorted(os.listdir(mnt / "ids")) == sorted([first["uid"], second["uid"]])
    by_time = os.listdir(mnt / "snapshots")
    assert len(by_time) == 3 and "latest" in by_time
    bases = {re.fullmatch(r"(.*?)(-\d+)?", name).group(1) for name in by_time if name != "latest"}
    assert bases == {datetime.fromisoformat(s["time"]).astimezone().isoformat(timespec="seconds")
                     for s in served.snapshots}
    assert _generation(mnt / "snapshots" / "latest", served) == "2"
    assert sorted(os.listdir(mnt / "hosts")) == sorted([first["host"], "other"])
    assert _generation(mnt / "hosts" / first["host"] / "latest", served) == "1"
    assert _generation(mnt / "hosts" / "other" / "latest", served) == "2"
    assert sorted(os.listdir(mnt / "tags")) == ["a_b", "daily", "weekly"]
    assert _generation(mnt / "tags" / "daily" / "latest", served) == "1"
    root = os.stat(mnt / "ids" / first["uid"])
    assert stat.filemode(root.st_mode) == "dr-xr-xr-x"
    assert root.st_mtime_ns // 1000 == datetime.fromisoformat(first["time"]).timestamp() * 10**6


def test_a_prune_waits_for_the_mount_and_others_may_read(served: Served) -> None:
    prune = served.fogvault("prune", "-r", "repo")
    assert prune.returncode == 11, prune.stderr
    assert "repository is locked: shared lock" in prune.stderr.decode()
    restore = served.fogvault("restore", "-r", "repo", "latest", "-t", "restored")
    assert restore.returncode == 0, restore.stderr


def _packs_bytes(repo: Path) -> int:
    return sum(pack.stat().st_size for pack in (repo / "data").rglob("*") if pack.is_file())


def _layout_names(mnt: Path) -> int:
    """The names of the mount's own folders (its root, the top folders, each host's and
    tag's), and the root itself: all that is not in a snapshot."""
    folders = [mnt, *(mnt / top for top in os.listdir(mnt))]
    folders += [folder / name for folder in (mnt / "hosts", mnt / "tags")
                for name in os.listdir(folder)]
    return 1 + sum(len(os.listdir(folder)) for folder in folders)


def _files_and_folders(folder: Path) -> int:
    """The files and folders below ``folder`` (not its links, fifos or devices)."""
    return sum(1 for below, dirs, files in os.walk(folder) for name in dirs + files
               if stat.S_ISREG(mode := os.lstat(os.path.join(below, name)).st_mode)
               or stat.S_ISDIR(mode))


def test_df_shows_the_repository_as_a_read_only_image(served: Served) -> None:
    """As large as its packs, all used, none free; as inodes, none free, the names of the
    layout and each snapshot's files and folders once (with the folders above its path: the
    summaries count all but those)."""
    st = os.statvfs(served.mnt)
    assert (st.f_bsize, st.f_frsize, st.f_namemax) == (4096, 4096, 255)
    assert st.f_blocks == -(-_packs_bytes(served.root / "repo") // 4096) > 0
    assert (st.f_bfree, st.f_bavail, st.f_ffree, st.f_favail) == (0, 0, 0, 0)
    assert st.f_files == _layout_names(served.mnt) + sum(
        _files_and_folders(served.mnt / "ids" / snapshot["uid"])
        for snapshot in served.snapshots)
    assert st.f_flag & os.ST_RDONLY
    df = subprocess.run(["df", "--output=size,used,avail", str(served.mnt)], capture_output=True,
                        text=True, timeout=60, check=False)
    assert df.returncode == 0, df.stderr
    assert df.stdout.split()[-3:] == [str(st.f_blocks * 4), str(st.f_blocks * 4), "0"]  # KiB


def test_df_lists_the_mount_of_an_empty_repository(fogvault, start_mount) -> None:
    """``df`` leaves out file systems of 0 blocks unless asked for them: one block, and the
    root and its four folders as inodes."""
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    mount = start_mount("-r", "repo").wait_mounted()
    st = os.statvfs(mount.point)
    assert (st.f_blocks, st.f_files) == (1, 5)
    df = subprocess.run(["df", "--output=target"], capture_output=True, text=True, timeout=60,
                        check=False)
    assert str(mount.point) in df.stdout.splitlines()


def test_filters_choose_what_a_mount_shows(served: Served, start_mount) -> None:
    other = served.snapshots[-1]
    mount = start_mount("-r", str(served.root / "repo"), "--host", "other", "--tag", "weekly",
                        point=served.root / "filtered").wait_mounted()
    assert os.listdir(mount.point / "ids") == [other["uid"]]
    assert os.listdir(mount.point / "hosts") == ["other"]
    assert sorted(os.listdir(mount.point / "tags")) == ["a_b", "weekly"]
    assert mount.stdout == (f"serving 1 snapshot at {mount.point}; unmount with 'fusermount -u "
                            f"{mount.point}' or stop with Ctrl-C\n")


def _stored_chunks(repo_path: Path, path: Path) -> tuple[list[IndexEntry], set[bytes]]:
    """Where the chunks of the file backed up from ``path`` are stored (latest snapshot), and
    the packs of the repository that hold one blob each."""
    with Repository.open([str(repo_path)], PASSWORD, use_cache=False) as repo:
        tree = repo.load_tree(repo.load_snapshot(repo.resolve_snapshot("latest")).tree)
        for name in str(path).strip("/").split("/"):
            node = tree.find(name.encode())
            tree = repo.load_tree(node.subtree) if node.subtree else tree
        alone = {pack_id for pack_id, first, end in repo.index.packs() if end - first == 1}
        return [repo.index.get(blob_id) for blob_id in node.content], alone


def test_a_damaged_chunk_fails_the_reads_that_reach_it(make_repo, fogvault, tmp_path: Path,
                                                       start_mount) -> None:
    """The kernel reads ahead and in folios of up to 2 MiB: a read fails if what the kernel
    asks for reaches the damaged chunk, so the bytes read intact are 2 MiB away from it."""
    make_repo().close()  # tmp_path/repo, with small chunks
    (tmp_path / "src").mkdir()
    data = random.Random(2).randbytes(3_000_000)
    (tmp_path / "src" / "damaged").write_bytes(data)
    (tmp_path / "src" / "intact").write_bytes(b"intact\n")
    assert fogvault("backup", "-r", "repo", "src").returncode == 0
    chunks, _ = _stored_chunks(tmp_path / "repo", tmp_path / "src" / "damaged")
    start = 0
    for entry in chunks:  # the chunk holding byte 2,600,000: it starts past 2 MiB
        if start + entry.raw_length > 2_600_000:
            break
        start += entry.raw_length
    assert start > 2 * 1024 * 1024
    flip_a_byte(tmp_path / "repo", entry)
    mount = start_mount("-r", "repo").wait_mounted()
    copy = next((mount.point / "snapshots").glob("2*")) / str(tmp_path / "src").lstrip("/")
    with pytest.raises(OSError) as failed:
        (copy / "damaged").read_bytes()
    assert failed.value.errno == errno.EIO
    fd = os.open(copy / "damaged", os.O_RDONLY)
    try:
        assert os.pread(fd, 65536, 0) == data[:65536]
        with pytest.raises(OSError) as again:
            os.pread(fd, 100, start + 10)
        assert again.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert (copy / "intact").read_bytes() == b"intact\n"
    assert mount.process.poll() is None and os.path.ismount(mount.point)
    [warning] = mount.stderr.splitlines()  # once, however often it was asked for
    assert warning.startswith("warning: cannot read /snapshots/2")
    assert f"{tmp_path}/src/damaged: " in warning


def test_a_damaged_chunk_is_read_once_for_a_cat_and_the_kernels_retries(
        make_repo, fogvault, tmp_path: Path, start_mount) -> None:
    """The kernel asks again, page by page, after a failed read: the mount remembers the
    failure, so the chunk is read once (its pack opened once) where it was read 5 times."""
    make_repo(pack_size=64 * 1024).close()  # chunks of 64 KiB or more often have a pack each
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "damaged").write_bytes(random.Random(3).randbytes(2_000_000))
    assert fogvault("backup", "-r", "repo", "src").returncode == 0
    chunks, alone = _stored_chunks(tmp_path / "repo", tmp_path / "src" / "damaged")
    # one that reads in order reach after a few chunks: it is loaded ahead first
    entry = next(entry for entry in chunks[4:] if entry.pack_id in alone)
    flip_a_byte(tmp_path / "repo", entry)
    opens = OpenCounter(tmp_path / "repo" / pack_name(entry.pack_id))
    try:
        mount = start_mount("-r", "repo").wait_mounted()
        copy = next((mount.point / "snapshots").glob("2*")) / str(tmp_path / "src").lstrip("/")
        cat = subprocess.run(["cat", str(copy / "damaged")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, timeout=60, check=False)
        assert cat.returncode == 1 and "Input/output error" in cat.stderr
        assert opens.count() == 1
    finally:
        opens.close()
    [warning] = mount.stderr.splitlines()
    assert f"{tmp_path}/src/damaged: chunk {entry.blob_id.hex()}: " in warning


def test_a_snapshot_made_while_mounted_appears(fogvault, tmp_path: Path, start_mount) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("one")
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    assert fogvault("backup", "-r", "repo", "src").returncode == 0
    mount = start_mount("-r", "repo", "--reload-interval", "0").wait_mounted()
    [first] = os.listdir(mount.point / "ids")
    blocks = os.statvfs(mount.point).f_blocks
    (tmp_path / "src" / "f").write_text("two")
    (tmp_path / "src" / "more").write_bytes(random.Random(4).randbytes(20_000))
    assert fogvault("backup", "-r", "repo", "src").returncode == 0
    wait_until(lambda: len(os.listdir(mount.point / "ids")) == 2, "the new snapshot")
    # df follows: the packs of the new snapshot count
    assert os.statvfs(mount.point).f_blocks == -(-_packs_bytes(tmp_path / "repo") // 4096)
    assert os.statvfs(mount.point).f_blocks >= blocks + 20_000 // 4096
    latest = mount.point / "snapshots" / "latest" / str(tmp_path / "src").lstrip("/") / "f"
    assert latest.read_text() == "two"
    assert (mount.point / "ids" / first / str(tmp_path / "src").lstrip("/") / "f"
            ).read_text() == "one"


def _acl_denying(uid: int) -> bytes:
    """A POSIX access ACL (the kernel's xattr form) of rw-r--r-- that gives ``uid`` nothing."""
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 0, uid), (0x04, 4, 0xFFFFFFFF),
               (0x10, 4, 0xFFFFFFFF), (0x20, 4, 0xFFFFFFFF)]  # owner, user, group, mask, other
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


@pytest.mark.skipif(os.geteuid() != 0, reason="reading as another user needs root")
def test_allow_other_lets_other_users_read_what_the_stored_modes_allow(
        fogvault, start_mount) -> None:
    """Without --allow-other, another user cannot enter the mount at all; with it, the kernel
    checks each entry's stored owner and mode, so a file only its owner may read stays shut."""
    outside = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="fogvault-allow-other-"))
    try:
        os.chmod(outside, 0o755)  # stored in the snapshot: others may pass through it
        src = outside / "src"
        src.mkdir(mode=0o755)
        (src / "public").write_text("for anyone")
        (src / "private").write_text("for root only")
        (src / "acl").write_text("not for nobody")
        os.chmod(src / "public", 0o644)
        os.chmod(src / "private", 0o600)
        os.chmod(src / "acl", 0o644)
        os.setxattr(src / "acl", "system.posix_acl_access", _acl_denying(65534))
        os.setxattr(src / "public", "trusted.secret", b"root's")
        assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
        assert fogvault("backup", "-r", "repo", str(src)).returncode == 0
        # the mount points where the other user may reach them (not below tmp_path, 0700)
        shut = start_mount("-r", "repo", point=outside / "shut").wait_mounted()
        open_ = start_mount("-r", "repo", "--allow-other", point=outside / "open").wait_mounted()
        shown = Path("snapshots", "latest", str(src).lstrip("/"))

        def cat_as_nobody(path: Path) -> subprocess.CompletedProcess:
            return subprocess.run(["cat", str(path)], user=65534, group=65534, extra_groups=[],
                                  capture_output=True, text=True, timeout=60, check=False)

        assert "Permission denied" in cat_as_nobody(shut.point / shown / "public").stderr
        assert cat_as_nobody(open_.point / shown / "public").stdout == "for anyone"
        denied = cat_as_nobody(open_.point / shown / "private")
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
        assert (open_.point / shown / "private").read_text() == "for root only"  # its owner
        # the kernel applies mode bits only: an entry with an ACL shows its owner's bits alone
        assert "Permission denied" in cat_as_nobody(open_.point / shown / "acl").stderr
        assert (open_.point / shown / "acl").read_text() == "not for nobody"
        names = subprocess.run(["python3", "-c", "import os, sys; print(os.listxattr(sys.argv[1]))",
                                str(open_.point / shown / "public")], user=65534, group=65534,
                               extra_groups=[], capture_output=True, text=True, timeout=60)
        assert names.returncode == 0 and "trusted." not in names.stdout, names
        assert "trusted.secret" in os.listxattr(open_.point / shown / "public")  # root's
    finally:
        for point in (outside / "shut", outside / "open"):
            force_unmount(point)
        shutil.rmtree(outside)



@pytest.mark.parametrize("conf, allowed", [
    ("user_allow_other\n", True), ("# user_allow_other\n", False), ("mount_max = 5\n", False),
    (None, False)])
def test_allow_other_needs_user_allow_other_for_a_user_other_than_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conf: str | None, allowed: bool) -> None:
    """fusermount refuses allow_other to users other than root unless /etc/fuse.conf says
    user_allow_other; FogVault says so in one line before it asks for the password."""
    from fogvault.errors import UsageError
    from fogvault.mount import server

    fuse_conf = tmp_path / "fuse.conf"
    if conf is not None:
        fuse_conf.write_text(conf)
    monkeypatch.setattr(server, "FUSE_CONF", str(fuse_conf))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    if allowed:
        server.check_allow_other()
    else:
        with pytest.raises(UsageError, match="--allow-other needs 'user_allow_other' in "):
            server.check_allow_other()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    server.check_allow_other()  # root may always
