"""``repair`` takes a tree pack that no target holds intact from the local cache, whose copy is
verified against the pack's name as a target's would be; a copy that is not the pack is no
source."""

from __future__ import annotations

from pathlib import Path

import pytest

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.maintenance.check import CheckOptions, check
from fogvault.maintenance.repair import RepairOptions, repair
from fogvault.repo.format import BlobType, pack_name
from fogvault.repo.repository import Repository


def _tree_pack(repo: Repository, tmp_path: Path) -> tuple[str, bytes]:
    """A repository on targets 'a' and 'b' with one snapshot: its tree pack's name and bytes."""
    source = tmp_path / "src"
    for i in range(10):
        (source / f"d{i}").mkdir(parents=True)
        (source / f"d{i}" / "f").write_text(str(i))
    Archiver(repo, BackupOptions()).run([str(source)])
    [pack_id] = {e.pack_id for e in repo.index if e.blob_type is BlobType.TREE}
    name = pack_name(pack_id)
    return name, (tmp_path / "a" / name).read_bytes()


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(data)


@pytest.mark.parametrize("loss", ["damaged", "missing"])
def test_a_tree_pack_lost_on_every_target_is_repaired_from_the_cache(make_repo, tmp_path,
                                                                     cache_dir, loss):
    repo = make_repo("a", "b")
    name, intact = _tree_pack(repo, tmp_path)
    assert (cache_dir / repo.config.repo_id / name.replace("/", "_")).read_bytes() == intact
    for target in ("a", "b"):
        if loss == "damaged":
            _damage(tmp_path / target / name)
        else:
            (tmp_path / target / name).unlink()

    result = repair(repo, RepairOptions(read_data=True))
    assert result.ok and not result.unrecoverable
    for report in result.targets:
        assert (report.replaced if loss == "damaged" else report.copied) == [name]
    for target in ("a", "b"):
        assert (tmp_path / target / name).read_bytes() == intact
    assert check(repo, CheckOptions(read_data=True)).ok


def test_a_cached_copy_that_is_not_the_pack_is_no_source(make_repo, tmp_path, cache_dir):
    repo = make_repo("a", "b")
    name, _ = _tree_pack(repo, tmp_path)
    copy = cache_dir / repo.config.repo_id / name.replace("/", "_")
    for path in (tmp_path / "a" / name, tmp_path / "b" / name, copy):
        _damage(path)

    result = repair(repo, RepairOptions(read_data=True))
    [lost] = result.unrecoverable
    assert lost.startswith(f"{name}: ")
    assert not copy.exists()  # removed: it failed its hash
