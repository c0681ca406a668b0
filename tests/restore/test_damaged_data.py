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

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.repo.format import pack_name
from fogvault.repo.index import IndexEntry
from fogvault.repo.repository import Repository
from fogvault.restore import restorer
from fogvault.restore.restorer import RestoreOptions, Restorer, RestoreSummary

CHUNKY = 600_000  # bytes of each "chunky" file: several chunks with the tests' small chunker


def _tree(src: Path, small_files: int) -> dict[str, bytes]:
    rng = random.Random(5)
    contents = {f"chunky{n}": rng.randbytes(CHUNKY) for n in range(3)}
    contents |= {f"d{n % 4}/f{n:05d}": rng.randbytes(100 + n % 3000) for n in range(small_files)}
    for rel, data in contents.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    return contents


def _read(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _fresh(repo: Repository) -> Repository:
    """The repository opened again, without a cache: every object is read from the targets."""
    return Repository.open(repo.targets.urls, PASSWORD, use_cache=False)


def _restore(repo: Repository, target: Path, **options: Any) -> RestoreSummary:
    with _fresh(repo) as fresh:
        snapshot = fresh.load_snapshot(fresh.resolve_snapshot("latest"))
        return Restorer(fresh, snapshot, RestoreOptions(target=str(target), **options)).run()


def _entry(repo: Repository, src: Path, rel: str, chunk: int) -> IndexEntry:
    """Where chunk number ``chunk`` of ``src/rel`` is stored."""
    tree = repo.load_tree(repo.load_snapshot(repo.resolve_snapshot("latest")).tree)
    for name in [*str(src).strip("/").split("/"), *rel.split("/")]:
        node = next(n for n in tree.nodes if n.name == name.encode())
        if node.subtree:
            tree = repo.load_tree(node.subtree)
    entry = repo.index.get(node.content[chunk])
    assert entry is not None
    return entry


def _chunk_range(repo: Repository, src: Path, rel: str, chunk: int) -> tuple[int, int]:
    """The byte range of chunk number ``chunk`` in the file ``src/rel``."""
    start = 0
    for number in range(chunk):
        start += _entry(repo, src, rel, number).raw_length
    return start, start + _entry(repo, src, rel, chunk).raw_length


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
    entry = _entry(repo, src, "chunky1", 1)
    start, end = _chunk_range(repo, src, "chunky1", 1)
    _flip(tmp_path / "repo" / pack_name(entry.pack_id), entry.offset + entry.length // 2)

    summary = _restore(repo, tmp_path / "out", processes=small_files > 100, verify=True)

    out = tmp_path / "out" / str(src).lstrip("/")
    [warning] = summary.warnings
    assert warning.startswith(f"{out}/chunky1: not restored in full: bytes {start}-{end} ")
    assert entry.pack_id.hex()[:16] in warning and entry.blob_id.hex()[:16] in warning
    restored = _read(out)
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
    entry = _entry(repo, src, "chunky2", 0)
    for target in ("a", "b"):
        (tmp_path / target / pack_name(entry.pack_id)).unlink()

    done = fogvault("-r", "a", "-r", "b", "--no-cache", "restore", "-V", "latest", "-t", "out")

    assert done.returncode == 3, done.stderr
    assert b"Traceback" not in done.stderr
    out = tmp_path / "out" / str(src).lstrip("/")
    assert f"warning: {out}/chunky2: not restored in full: ".encode() in done.stderr
    restored = _read(out)
    for name, data in contents.items():
        if restored[name] != data:  # only what the missing pack held is zeros
            assert len(restored[name]) == len(data) and restored[name].count(0) > 0
    assert restored["chunky2"] != contents["chunky2"]
    assert sum(restored[n] == contents[n] for n in contents) >= len(contents) - 4


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
