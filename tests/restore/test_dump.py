"""``fogvault dump`` through the real CLI: a file as it is, anything else as a tar archive that
GNU tar extracts to the original tree; errors cost the output, never a traceback."""

from __future__ import annotations

import io
import os
import pty
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


@pytest.fixture
def snapshot_of(fogvault, tmp_path):
    """Back up a tree with every kind of entry; returns its path."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "big").write_bytes(os.urandom(3_000_000))  # several chunks
    (src / "sub" / "a").write_bytes(b"hello\n")
    os.link(src / "sub" / "a", src / "sub" / "hardlink")
    os.symlink("a", src / "sub" / "link")
    os.mkfifo(src / "fifo")
    (src / os.fsdecode(b"caf\xe9")).write_bytes(b"latin-1 name")
    (src / "empty").write_bytes(b"")
    os.chmod(src / "sub" / "a", 0o640)
    os.utime(src / "sub", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    done = fogvault("backup", "-r", "repo", "src")
    assert done.returncode == 0, done.stderr
    return src


def _error(done) -> str:
    err = done.stderr.decode()
    assert "Traceback" not in err
    [line] = err.splitlines()
    return line


def test_a_file_is_written_as_it_is(fogvault, snapshot_of):
    done = fogvault("dump", "-r", "repo", "latest", f"{snapshot_of}/big")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (snapshot_of / "big").read_bytes()
    empty = fogvault("dump", "-r", "repo", "latest", f"{snapshot_of}/empty")
    assert (empty.returncode, empty.stdout) == (0, b"")


def test_a_folder_is_a_tar_archive_that_gnu_tar_extracts_to_the_same_tree(
        fogvault, snapshot_of, tmp_path):
    done = fogvault("dump", "-r", "repo", "latest", str(snapshot_of), "-t", "src.tar")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-x", "-f", "src.tar", "-C", str(out)], cwd=tmp_path, check=True)
    copy = out / str(snapshot_of).lstrip("/")
    assert _tree(copy) == _tree(snapshot_of)
    a, hardlink = copy / "sub" / "a", copy / "sub" / "hardlink"
    assert a.stat().st_ino == hardlink.stat().st_ino  # a hard link again, not a copy
    assert os.stat(copy / "sub").st_mtime_ns == 1_600_000_000_123_456_789


def test_the_whole_snapshot_and_a_single_symlink(fogvault, snapshot_of, tmp_path):
    whole = fogvault("dump", "-r", "repo", "latest", "/")
    assert whole.returncode == 0, whole.stderr
    names = subprocess.run(["tar", "-t"], input=whole.stdout, capture_output=True,
                           check=True).stdout.splitlines()
    assert f"{str(snapshot_of).lstrip('/')}/sub/link".encode() in names
    assert names[0] == str(snapshot_of).lstrip("/").split("/")[0].encode() + b"/"
    link = fogvault("dump", "-r", "repo", "latest", f"{snapshot_of}/sub/link")
    listing = subprocess.run(["tar", "-tv"], input=link.stdout, capture_output=True,
                             check=True).stdout.decode()
    assert listing.startswith("lrwxrwxrwx") and listing.rstrip().endswith("sub/link -> a")


def test_a_folder_as_a_zip_archive_holds_its_files_folders_and_symlinks(fogvault, snapshot_of):
    done = fogvault("dump", "-r", "repo", "latest", str(snapshot_of), "--archive", "zip")
    assert done.returncode == 0, done.stderr  # written to a pipe: zip's streamed form
    archive = zipfile.ZipFile(io.BytesIO(done.stdout))
    assert archive.testzip() is None
    prefix = str(snapshot_of).lstrip("/")
    members = {info.filename.removeprefix(prefix): info for info in archive.infolist()}
    assert set(members) == {"/", "/big", "/empty", "/caf\\xe9", "/sub/", "/sub/a",
                            "/sub/hardlink", "/sub/link"}  # no FIFO: zip cannot hold one
    for name in ("/big", "/empty", "/sub/a", "/sub/hardlink"):
        assert archive.read(members[name]) == (snapshot_of / name[1:]).read_bytes()
        st = (snapshot_of / name[1:]).stat()
        assert members[name].external_attr >> 16 == st.st_mode
        assert _zip_mtime(members[name]) == st.st_mtime_ns // 10**9
    assert archive.read(members["/caf\\xe9"]) == b"latin-1 name"
    assert b"is not UTF-8, and is written to the zip archive as" in done.stderr
    assert f"{snapshot_of}/fifo: a fifo has no place in a zip archive".encode() in done.stderr
    link = members["/sub/link"]
    assert stat.S_ISLNK(link.external_attr >> 16) and archive.read(link) == b"a"
    sub = members["/sub/"]
    assert sub.is_dir() and stat.S_ISDIR(sub.external_attr >> 16)
    assert _zip_mtime(sub) == 1_600_000_000


def _zip_mtime(info: zipfile.ZipInfo) -> int:
    """The UTC seconds of a member's extended timestamp field."""
    tag, size, flags, seconds = struct.unpack("<HHBi", info.extra[:9])
    assert (tag, size, flags) == (0x5455, 5, 1)
    return seconds


def test_a_missing_path_and_a_terminal_are_one_line_errors(fogvault, snapshot_of, cli_env,
                                                           tmp_path):
    done = fogvault("dump", "-r", "repo", "latest", "/no/such")
    assert done.returncode == 1
    assert _error(done) == "error: no such path in the snapshot: /no/such"
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "fogvault", "dump", "-r", "repo", "latest",
                               f"{snapshot_of}/big"], env=cli_env, cwd=tmp_path,
                              stdout=terminal, stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 2
    assert _error(done) == "error: stdout is a terminal: redirect it, or give --target FILE"


def test_damaged_data_fails_the_dump_and_leaves_no_partial_file(fogvault, snapshot_of,
                                                               tmp_path):
    for pack in (tmp_path / "repo" / "data").rglob("*"):
        if pack.is_file():
            data = bytearray(pack.read_bytes())
            data[len(data) // 3] ^= 0xFF
            pack.write_bytes(bytes(data))
    done = fogvault("--no-cache", "dump", "-r", "repo", "latest", str(snapshot_of),
                    "-t", "src.tar")
    assert done.returncode == 1
    assert "authentication failed" in _error(done)
    assert not (tmp_path / "src.tar").exists()


def test_a_zip_cut_short_by_damaged_data_does_not_read_as_an_archive(make_repo):
    from crafted import DATA, file_node, save_snapshot, store, store_tree

    from fogvault.errors import FogVaultError
    from fogvault.restore.dump_zip import dump_zip

    repo = make_repo()
    whole = store(repo, DATA, b"a whole file")
    lost = bytes(32)  # a chunk id no index lists
    tree = store_tree(repo, [file_node("a", [whole], 12), file_node("b", [whole, lost], 24)])
    out = io.BytesIO()
    with pytest.raises(FogVaultError):
        dump_zip(repo, b"/", None, save_snapshot(repo, tree).tree, out)
    written = out.getvalue()
    assert written.count(b"PK\x03\x04") == 2  # the members up to the damage were begun
    assert b"PK\x05\x06" not in written  # but no central directory: not a whole archive
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(out)


def test_zip_names_that_would_be_one_are_kept_apart(fogvault, tmp_path):
    src = tmp_path / "names"
    src.mkdir()
    (src / "caf\\xe9").write_bytes(b"a backslash in the name")
    (src / os.fsdecode(b"caf\xe9")).write_bytes(b"a latin-1 byte in the name")
    contents, stderr = _zip_of(fogvault, src)
    assert contents == {"/": b"", "/caf\\xe9": b"a backslash in the name",
                        "/caf\\xe9~1": b"a latin-1 byte in the name"}
    assert b"as an entry written before it has its name there" in stderr


def _zip_of(fogvault, src) -> tuple[dict[str, bytes], bytes]:
    """``src`` backed up and dumped as a zip archive: (member name below ``src`` -> contents,
    the dump's stderr)."""
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    assert fogvault("backup", "-r", "repo", str(src)).returncode == 0
    done = fogvault("dump", "-r", "repo", "latest", str(src), "--archive", "zip")
    assert done.returncode == 0, done.stderr
    archive = zipfile.ZipFile(io.BytesIO(done.stdout))
    prefix = str(src).lstrip("/")
    return ({i.filename.removeprefix(prefix): archive.read(i) for i in archive.infolist()},
            done.stderr)


def test_a_zip_folder_renamed_apart_keeps_its_contents_and_a_file_never_shares_a_folder_s_name(
        fogvault, tmp_path):
    """Two folders whose names escaping makes one, and a file named as a third folder is:
    the renamed folder's file is named below its new name (it was put in the other folder),
    and the file and the folder get two names (both were written, and unzip kept one)."""
    src = tmp_path / "names"
    folders = [b"caf\\xe9", b"caf\xe9", b"x\xff"]  # in the order the snapshot has them
    for folder in folders:
        (src / os.fsdecode(folder)).mkdir(parents=True)
        (src / os.fsdecode(folder) / "inside").write_bytes(folder)
    (src / "x\\xff").write_bytes(b"a file")  # sorted before the folder x\xff
    contents, stderr = _zip_of(fogvault, src)
    assert contents == {"/": b"", "/x\\xff": b"a file",
                        "/caf\\xe9/": b"", "/caf\\xe9/inside": folders[0],
                        "/caf\\xe9~1/": b"", "/caf\\xe9~1/inside": folders[1],
                        "/x\\xff~1/": b"", "/x\\xff~1/inside": folders[2]}
    # each name that is not UTF-8 is warned about once, not again for the file inside it
    assert stderr.count(b"is not UTF-8") == 2, stderr
    assert stderr.count(b"as an entry written before it has its name there") == 2


def test_chunks_beyond_a_file_s_recorded_size_stop_the_archive(make_repo):
    from crafted import DATA, file_node, save_snapshot, store, store_tree

    from fogvault.errors import IntegrityError
    from fogvault.restore.dump import dump_tar
    from fogvault.restore.dump_zip import dump_zip

    repo = make_repo()
    chunk = store(repo, DATA, b"twelve bytes")
    snapshot = save_snapshot(repo, store_tree(repo, [file_node("f", [chunk], 5)]))
    for dump_archive in (dump_zip, dump_tar):
        with pytest.raises(IntegrityError, match="hold more than its recorded size"):
            dump_archive(repo, b"/", None, snapshot.tree, io.BytesIO())


def _tree(root: Path) -> dict[str, tuple]:
    """Every entry below ``root``: type and mode, content and mtime (files) or link target."""
    entries = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            what: object = os.readlink(path)
        elif path.is_file():
            what = (path.read_bytes(), st.st_mtime_ns)
        else:
            what = None
        entries[os.fsdecode(path.relative_to(root))] = (st.st_mode, what)
    return entries


def test_a_path_below_a_file_is_not_found(fogvault, snapshot_of):
    """'big/sub/a' must not find 'sub/a' by looking among big's siblings."""
    for path in (f"{snapshot_of}/big/sub/a", f"{snapshot_of}/big/empty"):
        done = fogvault("dump", "-r", "repo", "latest", path)
        assert (done.returncode, done.stdout) == (1, b"")
        assert _error(done) == f"error: no such path in the snapshot: {path}"
        assert fogvault("ls", "-r", "repo", "latest", path).returncode == 1


def test_a_failed_dump_leaves_an_existing_target_file_as_it_was(fogvault, snapshot_of, tmp_path):
    (tmp_path / "notes.txt").write_text("my precious notes")
    for pack in (tmp_path / "repo" / "data").rglob("*"):
        if pack.is_file():
            pack.write_bytes(bytes(len(pack.read_bytes())))
    done = fogvault("--no-cache", "dump", "-r", "repo", "latest", str(snapshot_of),
                    "-t", "notes.txt")
    assert done.returncode == 1
    assert (tmp_path / "notes.txt").read_text() == "my precious notes"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_file_whose_bytes_are_a_stored_tree_dumps(make_repo, tmp_path):
    """Data and tree blobs share one id space: a file holding exactly an empty folder's
    encoding, backed up after that folder, has the folder's tree blob as its chunk."""
    from fogvault.backup.archiver import Archiver, BackupOptions
    from fogvault.repo.tree import Tree
    from fogvault.restore.dump import dump_file
    from fogvault.treewalk import lookup

    repo = make_repo()
    (tmp_path / "empty").mkdir()
    Archiver(repo, BackupOptions()).run([str(tmp_path / "empty")])
    (tmp_path / "tree.json").write_bytes(Tree().encode())
    snapshot = Archiver(repo, BackupOptions()).run([str(tmp_path / "tree.json")]).snapshot
    node, _ = lookup(repo, snapshot.tree, os.fsencode(tmp_path / "tree.json"))
    assert repo.index.get(node.content[0]).blob_type.name == "TREE"
    out = io.BytesIO()
    dump_file(repo, node, out)
    assert out.getvalue() == Tree().encode()


def test_a_target_that_is_not_a_file_is_written_into_and_a_symlink_followed(
        fogvault, snapshot_of, tmp_path):
    """-t names a fifo, a device or a symlink: the dump goes where a shell's > would send it.
    They were replaced by a regular file (even /dev/null, run as root)."""
    a = f"{snapshot_of}/sub/a"
    os.mkfifo(tmp_path / "pipe")
    reader = subprocess.Popen(["cat", str(tmp_path / "pipe")], stdout=subprocess.PIPE)
    done = fogvault("dump", "-r", "repo", "latest", a, "-t", "pipe")
    assert done.returncode == 0, done.stderr
    assert reader.communicate(timeout=60)[0] == b"hello\n"
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)
    os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    assert fogvault("dump", "-r", "repo", "latest", a, "-t", "null").returncode == 0
    assert stat.S_ISCHR(os.lstat(tmp_path / "null").st_mode)
    (tmp_path / "real").write_bytes(b"old")
    os.symlink("real", tmp_path / "link")
    assert fogvault("dump", "-r", "repo", "latest", a, "-t", "link").returncode == 0
    assert os.readlink(tmp_path / "link") == "real"
    assert (tmp_path / "real").read_bytes() == b"hello\n"
