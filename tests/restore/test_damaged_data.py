"""Restore from a repository with damage that no target can make up for: a chunk whose pack is
damaged or missing everywhere costs only the files that use it (written but for that chunk,
left as zeros, without their metadata, named in a warning), a chunk in no index costs its file,
an unreadable folder listing its contents; everything else is restored byte for byte, exit 3."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD
from crafted import DATA, dir_node, file_node, save_snapshot, store_tree

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import MalformedObject, TargetsUnavailable
from fogvault.repo.format import pack_name
from fogvault.repo.index import IndexEntry
from fogvault.repo.pack import seal_blob
from fogvault.repo.packer import PackWriter
from fogvault.repo.repository import Repository
from fogvault.restore import restorer
from fogvault.restore.restorer import RestoreOptions, Restorer, RestoreSummary
from fogvault.storage import StorageError
from tests.restore.test_write_errors import read_tree

CHUNKY = 600_000  # bytes of each "chunky" file: several chunks with the tests' small chunker


def _tree(src: Path, small_files: int) -> dict[str, bytes]:
    rng = random.Random(5)
    contents = {f"chunky{n}": rng.randbytes(CHUNKY) for n in range(3)}
    contents |= {f"d{n % 4}/f{n:05d}": rng.randbytes(100 + n % 3000) for n in range(small_files)}
    for rel, data in contents.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    return contents


def _fresh(repo: Repository) -> Repository:
    """The repository opened again, without a cache: every object is read from the targets."""
    return Repository.open(repo.targets.urls, PASSWORD, use_cache=False)


def _restore(repo: Repository, target: Path, **options: Any) -> RestoreSummary:
    with _fresh(repo) as fresh:
        snapshot = fresh.load_snapshot(fresh.resolve_snapshot("latest"))
        return Restorer(fresh, snapshot, RestoreOptions(target=str(target), **options)).run()


def _chunks(repo: Repository, src: Path, rel: str) -> list[IndexEntry]:
    """Where each chunk of the file ``src/rel`` of the latest snapshot is stored, in order."""
    tree = repo.load_tree(repo.load_snapshot(repo.resolve_snapshot("latest")).tree)
    for name in [*str(src).strip("/").split("/"), *rel.split("/")]:
        node = next(n for n in tree.nodes if n.name == name.encode())
        if node.subtree:
            tree = repo.load_tree(node.subtree)
    entries = [repo.index.get(blob_id) for blob_id in node.content]
    assert None not in entries
    return entries  # type: ignore[return-value]


def _with_zeros(repo: Repository, src: Path, rel: str, data: bytes, lost: set[bytes]) -> bytes:
    """``data`` of ``src/rel`` with the chunks stored in the packs ``lost`` turned to zeros."""
    out, offset = bytearray(data), 0
    for entry in _chunks(repo, src, rel):
        if entry.pack_id in lost:
            out[offset:offset + entry.raw_length] = bytes(entry.raw_length)
        offset += entry.raw_length
    return bytes(out)


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("small_files", [20, restorer.PROCESS_MIN_FILES + 20],
                         ids=["this process", "worker processes"])
def test_a_damaged_chunk_costs_only_the_files_that_use_it(
        make_repo: Callable[..., Repository], tmp_path: Path, small_files: int) -> None:
    repo = make_repo()
    src = tmp_path / "src"
    contents = _tree(src, small_files)
    Archiver(repo, BackupOptions()).run([str(src)])
    chunks = _chunks(repo, src, "chunky1")
    entry = chunks[1]
    start = chunks[0].raw_length
    end = start + entry.raw_length
    _flip(tmp_path / "repo" / pack_name(entry.pack_id), entry.offset + entry.length // 2)

    summary = _restore(repo, tmp_path / "out", processes=small_files > 100, verify=True)

    out = tmp_path / "out" / str(src).lstrip("/")
    [warning] = summary.warnings
    assert warning.startswith(f"{out}/chunky1: not restored in full: "
                              f"bytes {start}-{end} ")
    assert entry.pack_id.hex()[:16] in warning and entry.blob_id.hex()[:16] in warning
    restored = read_tree(out)
    damaged = restored.pop("chunky1")
    expected = contents.pop("chunky1")
    assert damaged == expected[:start] + bytes(end - start) + expected[end:]
    assert restored == contents  # every other file, the damaged pack's other chunks included
    assert (out / "chunky1").stat().st_mtime_ns != (src / "chunky1").stat().st_mtime_ns
    assert (out / "chunky0").stat().st_mtime_ns == (src / "chunky0").stat().st_mtime_ns
    assert summary.verified == len(contents)  # the damaged file is not verified (warned once)


def test_a_pack_missing_everywhere_costs_its_chunks_and_the_cli_exits_3(
        fogvault: Callable[..., Any], make_repo: Callable[..., Repository],
        tmp_path: Path) -> None:
    repo = make_repo("a", "b")
    src = tmp_path / "src"
    contents = _tree(src, 10)
    Archiver(repo, BackupOptions()).run([str(src)])
    lost = _chunks(repo, src, "chunky2")[0].pack_id
    for target in ("a", "b"):
        (tmp_path / target / pack_name(lost)).unlink()

    done = fogvault("-r", "a", "-r", "b", "--no-cache", "restore", "-V", "latest", "-t", "out")

    assert done.returncode == 3, done.stderr
    assert b"Traceback" not in done.stderr
    assert f"warning: {tmp_path}/out{src}/chunky2: not restored in full: ".encode() in done.stderr
    # The missing pack is not asked for again blob by blob, nor told of again: one line.
    assert done.stderr.count(b"is missing; reading it from another target") == 1
    restored = read_tree(tmp_path / "out" / str(src).lstrip("/"))
    assert restored == {name: _with_zeros(repo, src, name, data, {lost})
                        for name, data in contents.items()}


def test_a_chunk_in_no_index_costs_its_file(make_repo: Callable[..., Repository],
                                            tmp_path: Path) -> None:
    repo = make_repo()
    src = tmp_path / "src"
    (src / "old").mkdir(parents=True)
    (src / "old" / "file").write_bytes(random.Random(1).randbytes(200_000))
    Archiver(repo, BackupOptions()).run([str(src)])
    first_index = set((tmp_path / "repo" / "index").iterdir())
    (src / "old" / "new").write_bytes(b"written after the first backup\n")  # old's tree is new
    Archiver(repo, BackupOptions()).run([str(src)])
    for path in first_index:  # the first backup's file is in no index now, the trees are
        path.unlink()

    summary = _restore(repo, tmp_path / "out")

    out = tmp_path / "out" / str(src).lstrip("/")
    assert (out / "old" / "new").read_bytes() == (src / "old" / "new").read_bytes()
    assert len(summary.warnings) == 1
    assert [w for w in summary.warnings if "old/file: not restored: its blob" in w]


def test_a_folder_whose_listing_is_damaged_costs_its_contents(
        make_repo: Callable[..., Repository], tmp_path: Path) -> None:
    repo = make_repo()
    src = tmp_path / "src"
    for folder in ("lost", "kept"):
        (src / folder).mkdir(parents=True)
        (src / folder / "file").write_bytes(folder.encode() * 1000)
    snapshot = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    tree = repo.load_tree(snapshot.tree)
    for name in str(src).strip("/").split("/"):
        tree = repo.load_tree(next(n for n in tree.nodes if n.name == name.encode()).subtree)
    lost = next(n for n in tree.nodes if n.name == b"lost").subtree
    entry = repo.index.get(lost)
    _flip(tmp_path / "repo" / pack_name(entry.pack_id), entry.offset + entry.length // 2)

    summary = _restore(repo, tmp_path / "out")

    out = tmp_path / "out" / str(src).lstrip("/")
    assert (out / "kept" / "file").read_bytes() == b"kept" * 1000
    assert (out / "lost").is_dir() and not list((out / "lost").iterdir())
    assert [w for w in summary.warnings if "lost: its contents cannot be restored" in w]


@pytest.mark.parametrize("corrupt_on", ["a", "b"])
def test_a_copy_that_cannot_be_read_is_not_taken_for_damage(
        make_repo: Callable[..., Repository], tmp_path: Path, corrupt_on: str) -> None:
    """One copy of a pack corrupt, the other intact but unreadable (a symlink loop: an I/O
    error, not 'missing'): the good copy may be there, so the restore stops, whichever target
    is read first, instead of writing zeros."""
    repo = make_repo("a", "b")
    src = tmp_path / "src"
    _tree(src, 3)
    Archiver(repo, BackupOptions()).run([str(src)])
    entry = _chunks(repo, src, "chunky1")[1]
    name = pack_name(entry.pack_id)
    other = "b" if corrupt_on == "a" else "a"
    _flip(tmp_path / corrupt_on / name, entry.offset + entry.length // 2)
    (tmp_path / other / name).unlink()
    (tmp_path / other / name).symlink_to((tmp_path / other / name).name)

    with pytest.raises(StorageError):
        _restore(repo, tmp_path / "out")


def test_a_dropped_target_keeps_damage_elsewhere_from_being_taken_as_loss(
        make_repo: Callable[..., Repository], tmp_path: Path) -> None:
    """A target that cannot be opened is dropped; a chunk damaged on the other one may be
    intact there, so the restore stops and says which target was not read."""
    repo = make_repo("a", "b")
    src = tmp_path / "src"
    _tree(src, 3)
    Archiver(repo, BackupOptions()).run([str(src)])
    entry = _chunks(repo, src, "chunky1")[1]
    _flip(tmp_path / "a" / pack_name(entry.pack_id), entry.offset + entry.length // 2)
    config = tmp_path / "b" / "config"
    config.unlink()
    config.symlink_to(config.name)  # b's config cannot be read (ELOOP): b is dropped at open

    with pytest.raises(TargetsUnavailable, match=r"not read from .*/b"):
        _restore(repo, tmp_path / "out")


def test_an_authentic_blob_that_is_not_what_its_id_says_stops_the_restore(
        make_repo: Callable[..., Repository], tmp_path: Path) -> None:
    """A blob sealed under an id its plaintext does not hash to authenticates: a writer that had
    the key made it. That is a malformed repository, not damage: the restore stops."""
    repo = make_repo()
    forged = bytes(range(32))
    writer = PackWriter(repo)
    try:
        assert writer.reserve(forged)
        writer.add(DATA, forged, seal_blob(repo.master.encryption, DATA, forged,
                                           b"not what the id says" * 50, 3), 1000)
        writer.flush()
    finally:
        writer.close()
    home = store_tree(repo, [file_node("a", [forged], 1000)])
    snapshot = save_snapshot(repo, store_tree(repo, [dir_node("home", home)]))

    with pytest.raises(MalformedObject, match="does not match its id"):
        Restorer(repo, snapshot, RestoreOptions(target=str(tmp_path / "out"))).run()
