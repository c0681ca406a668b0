"""``repair --index``: packs no index lists are listed again from their own headers, so that a
repository whose index files were lost on every target is whole again."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import PASSWORD

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.maintenance import reindex
from fogvault.maintenance.check import CheckOptions, check
from fogvault.maintenance.forget import forget
from fogvault.maintenance.prune import PruneOptions, prune
from fogvault.maintenance.reindex import MovedPack
from fogvault.maintenance.repair import RepairOptions, repair
from fogvault.repo.repository import Repository
from fogvault.restore.restorer import RestoreOptions, Restorer


def backed_up(repo, tmp_path: Path) -> dict[str, bytes]:
    src = tmp_path / "src"
    src.mkdir()
    contents = {f"f{i}": random.Random(i).randbytes(150_000) for i in range(4)}
    for name, data in contents.items():
        (src / name).write_bytes(data)
    Archiver(repo, BackupOptions()).run([str(src)])
    return contents


def lose_index(repo, root: Path) -> None:
    for index in (root / "index").iterdir():
        index.unlink()
    repo.cache = None


def packs(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "data").rglob("*") if p.is_file()}


def restored(repo, tmp_path: Path) -> dict[str, bytes]:
    [snapshot] = repo.snapshots()
    Restorer(repo, snapshot, RestoreOptions(target=str(tmp_path / "out"))).run()
    base = tmp_path / "out" / str(tmp_path / "src").lstrip("/")
    return {p.name: p.read_bytes() for p in base.iterdir()}


def test_lost_index_files_are_rebuilt_from_the_packs(make_repo, tmp_path):
    repo = make_repo(pack_size=128 * 1024)
    contents = backed_up(repo, tmp_path)
    root = Path(repo.targets.urls[0])
    lose_index(repo, root)
    assert not check(repo).ok
    planned = repair(repo, RepairOptions(index=True, dry_run=True))
    assert sorted(planned.indexed) == sorted(packs(root))
    assert not any((root / "index").iterdir())  # a dry run writes nothing
    done = repair(repo, RepairOptions(index=True))
    assert sorted(done.indexed) == sorted(packs(root)) and done.ok
    assert check(repo, CheckOptions(read_data=True)).ok
    assert restored(repo, tmp_path) == contents
    assert repair(repo, RepairOptions(index=True)).indexed == []  # nothing left to list


def test_a_pack_that_does_not_verify_is_reported_not_listed(make_repo, tmp_path):
    repo = make_repo(pack_size=128 * 1024)
    backed_up(repo, tmp_path)
    root = Path(repo.targets.urls[0])
    lose_index(repo, root)
    damaged = sorted(packs(root))[0]
    data = bytearray((root / damaged).read_bytes())
    data[10] ^= 1
    (root / damaged).write_bytes(bytes(data))
    result = repair(repo, RepairOptions(index=True))
    assert damaged not in result.indexed and len(result.indexed) == len(packs(root)) - 1
    assert [u for u in result.unrecoverable if u.startswith(damaged)] == [
        f"{damaged}: {root}: pack does not match its name"]
    assert not result.ok


def test_a_new_index_file_goes_only_where_its_packs_are_then_repair_spreads_both(
        make_repo, tmp_path):
    repo = make_repo("one", "two", pack_size=128 * 1024)
    contents = backed_up(repo, tmp_path)
    one, two = (Path(url) for url in repo.targets.urls)
    lose_index(repo, one)
    lose_index(repo, two)
    only_on_one = sorted(packs(one))[0]
    (two / only_on_one).unlink()
    result = repair(repo, RepairOptions(index=True))
    assert result.ok and sorted(result.indexed) == sorted(packs(one))
    assert repo.targets.missed_changes() == {}  # left out on purpose, then copied: not missed
    # the pack held by one target only was listed in an index file of its own, written there
    # first; repair then copied the pack and that index file to the other
    [report_two] = [t for t in result.targets if t.url == str(two)]
    assert only_on_one in report_two.copied
    assert any(name.startswith("index/") for name in report_two.copied)
    assert {p.name for p in (one / "index").iterdir()} == {
        p.name for p in (two / "index").iterdir()}
    assert check(repo, CheckOptions(read_data=True)).ok
    assert restored(repo, tmp_path) == contents


def test_the_command(fogvault, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(random.Random(9).randbytes(200_000))
    assert fogvault("init", "-r", "repo").returncode == 0
    assert fogvault("backup", "-r", "repo", str(src)).returncode == 0
    for index in (tmp_path / "repo" / "index").iterdir():
        index.unlink()
    assert fogvault("--no-cache", "check", "-r", "repo").returncode == 1
    done = fogvault("--no-cache", "repair", "-r", "repo", "--index")
    assert done.returncode == 0, done.stderr
    indexed = [line for line in done.stdout.splitlines() if line.startswith(b"index: data/")]
    assert len(indexed) == len(packs(tmp_path / "repo"))
    assert fogvault("--no-cache", "check", "-r", "repo", "--read-data").returncode == 0


def test_index_files_end_between_packs_at_their_size(make_repo, tmp_path, monkeypatch):
    monkeypatch.setattr(reindex, "INDEX_FILE_BLOBS", 3)
    repo = make_repo(pack_size=128 * 1024)
    contents = backed_up(repo, tmp_path)
    root = Path(repo.targets.urls[0])
    lose_index(repo, root)
    result = repair(repo, RepairOptions(index=True))
    assert result.ok and len(result.indexed) == len(packs(root))
    files = list((root / "index").iterdir())
    assert 1 < len(files) <= len(result.indexed)
    assert check(repo, CheckOptions(read_data=True)).ok
    assert restored(repo, tmp_path) == contents


def old_then_new(repo: Repository, src: Path) -> str:
    """Two backups of ``src``: the first holds only 'old', the second only 'new' (so the
    first's data goes once it is forgotten and pruned). Returns the first's uid."""
    src.mkdir()
    (src / "old").write_bytes(random.Random(1).randbytes(300_000))
    first = Archiver(repo, BackupOptions()).run([str(src)]).snapshot.uid
    (src / "old").unlink()
    (src / "new").write_bytes(random.Random(2).randbytes(300_000))
    Archiver(repo, BackupOptions()).run([str(src)])
    return first


def test_what_a_prune_deleted_while_a_target_was_away_is_not_brought_back(
        make_repo, tmp_path, cache_dir):
    """A snapshot forgotten and pruned on one target while the other was away: its packs and
    the index files the prune replaced are still on the other. --index leaves those packs
    unlisted, so the forgotten snapshot is not spread back either."""
    repo = make_repo("one", "two", pack_size=128 * 1024)
    forgotten = old_then_new(repo, tmp_path / "src")
    one, two = (Path(url) for url in repo.targets.urls)
    alone = Repository.open([str(one)], PASSWORD, cache_dir=cache_dir)
    forget(alone, None, uids=[forgotten])
    prune(alone, PruneOptions())
    alone.close()
    pruned = packs(two) - packs(one)
    assert pruned
    both = Repository.open([str(one), str(two)], PASSWORD, cache_dir=cache_dir)
    result = repair(both, RepairOptions(index=True))
    assert result.indexed == [] and sorted(result.left_out) == sorted(pruned)
    assert packs(one).isdisjoint(pruned)
    assert not (one / "snapshots" / forgotten).exists()
    both.close()


@pytest.mark.parametrize("damaged_on", [0, 1], ids=["first holder", "second holder"])
def test_a_damaged_copy_is_not_a_holder_and_is_replaced(make_repo, tmp_path, damaged_on):
    """A pack held by two targets, damaged on one: every copy is checked (the first in full,
    the other by its hash); the pack is listed from the good copy, its index file goes to the
    good target only, and the copy phase replaces the damaged one."""
    repo = make_repo("one", "two", pack_size=128 * 1024)
    contents = backed_up(repo, tmp_path)
    roots = [Path(url) for url in repo.targets.urls]
    for root in roots:
        lose_index(repo, root)
    bad = roots[damaged_on]
    damaged = sorted(packs(bad))[0]
    data = bytearray((bad / damaged).read_bytes())
    data[10] ^= 1
    (bad / damaged).write_bytes(bytes(data))
    result = repair(repo, RepairOptions(index=True))
    assert result.ok and damaged in result.indexed
    [report] = [t for t in result.targets if t.url == str(bad)]
    assert damaged in report.replaced
    assert (roots[0] / damaged).read_bytes() == (roots[1] / damaged).read_bytes()
    assert check(repo, CheckOptions(read_data=True)).ok
    assert restored(repo, tmp_path) == contents


def _damage_index_file(root: Path) -> str:
    """Flip a byte of the repository's one index file (on this target); its name. The
    repository is to be opened again, without a cache (which would hold a good copy)."""
    [index_file] = (root / "index").iterdir()
    data = bytearray(index_file.read_bytes())
    data[40] ^= 0xFF
    index_file.write_bytes(bytes(data))
    return f"index/{index_file.name}"


def test_an_index_file_damaged_everywhere_is_damage_until_repair_index_retires_it(
        make_repo, tmp_path, caplog):
    """An index file with no good copy anywhere is skipped when the index loads. Once
    'repair --index' has listed its packs again, check must not call the repository clean
    while the file is still there (every command warns about it): it is reported as corrupt
    until repair --index, which relists its packs, deletes it."""
    repo = make_repo(pack_size=128 * 1024)
    contents = backed_up(repo, tmp_path)
    root = Path(repo.targets.urls[0])
    name = _damage_index_file(root)
    repo = Repository.open([str(root)], PASSWORD, use_cache=False)
    found = check(repo)
    assert not found.ok and found.targets[0].corrupt == [name]
    assert any(f"index file {name} is damaged on every target" in p and "repair --index" in p
               for p in found.problems)
    plain = repair(repo, RepairOptions())  # no good copy to copy: it says what will do
    assert not plain.ok and any(u.startswith(f"{name}: damaged on every target")
                                for u in plain.unrecoverable)
    relisted = repair(repo, RepairOptions(index=True, dry_run=True))
    assert relisted.retired == [name] and (root / name).exists()
    done = repair(repo, RepairOptions(index=True))
    assert done.ok and done.retired == [name] and sorted(done.indexed) == sorted(packs(root))
    assert not (root / name).exists()
    caplog.clear()
    clean = check(repo, CheckOptions(read_data=True))
    assert clean.ok and clean.targets[0].corrupt == []
    assert "skipping index file" not in caplog.text
    assert restored(repo, tmp_path) == contents
    repo.close()


def test_an_index_file_damaged_everywhere_stays_while_a_pack_it_may_list_is_unlisted(
        make_repo, tmp_path):
    """Never delete the only copy of an index file that may list a pack no other index file
    lists: here a pack that does not verify (so --index cannot list it again) keeps it."""
    repo = make_repo(pack_size=128 * 1024)
    backed_up(repo, tmp_path)
    root = Path(repo.targets.urls[0])
    name = _damage_index_file(root)
    broken = root / sorted(packs(root))[0]
    broken.write_bytes(broken.read_bytes()[:-5])
    repo = Repository.open([str(root)], PASSWORD, use_cache=False)
    result = repair(repo, RepairOptions(index=True))
    assert result.retired == [] and (root / name).exists()
    assert any(u.startswith(f"{name}: damaged on every target") and "1 pack no index lists"
               in u for u in result.unrecoverable)
    assert check(repo).targets[0].corrupt == [name]  # still reported
    repo.close()


def test_an_index_file_damaged_on_one_target_is_replaced_from_the_other(make_repo, tmp_path):
    """With a good copy elsewhere, the damaged one is an ordinary damaged copy: check names it
    on that target, repair replaces it, nothing is listed anew or deleted."""
    repo = make_repo("one", "two", pack_size=128 * 1024)
    backed_up(repo, tmp_path)
    one, two = (Path(url) for url in repo.targets.urls)
    name = _damage_index_file(two)
    repo = Repository.open([str(one), str(two)], PASSWORD, use_cache=False)
    found = check(repo)
    assert [t.corrupt for t in found.targets] == [[], [name]]
    result = repair(repo, RepairOptions(index=True))
    assert result.ok and result.retired == [] and result.indexed == []
    assert (one / name).read_bytes() == (two / name).read_bytes()
    assert check(repo).ok
    repo.close()


def _move_out(root: Path, name: str, folder: str) -> str:
    """Move the pack ``name`` (data/<id[0:2]>/<id>) to ``folder`` (not its own); its new name."""
    moved = root / folder / Path(name).name
    moved.parent.mkdir(exist_ok=True)
    (root / name).rename(moved)
    return str(moved.relative_to(root))


@pytest.mark.parametrize("folder", ["data/zz", "data"])
def test_a_pack_outside_its_folder_is_moved_into_it_and_listed(make_repo, tmp_path, caplog,
                                                              folder):
    """check says that packs no index lists may hold the missing data and that 'repair
    --index' lists them again: so it does for one outside its folder (it listed only those in
    their own). Readers find a pack by its id, so the pack goes into its folder first, on the
    target that holds it; repair then copies it to the other."""
    repo = make_repo("one", "two", pack_size=128 * 1024)
    contents = backed_up(repo, tmp_path)
    one, two = (Path(url) for url in repo.targets.urls)
    lose_index(repo, one)
    lose_index(repo, two)
    name = sorted(packs(one))[0]
    outside = _move_out(one, name, folder)
    (two / name).unlink()
    assert not check(repo).ok
    planned = repair(repo, RepairOptions(index=True, dry_run=True))
    assert name in planned.indexed and planned.moved == [MovedPack(str(one), outside, name)]
    assert (one / outside).exists() and not (one / name).exists()  # a dry run moves nothing
    done = repair(repo, RepairOptions(index=True))
    assert done.ok and sorted(done.indexed) == sorted(packs(two) | {name})
    assert done.moved == planned.moved
    assert f"{one}: {outside} is outside its folder: moved it to {name}" in caplog.text
    assert not (one / outside).exists() and packs(one) == packs(two)
    assert (one / name).read_bytes() == (two / name).read_bytes()
    checked = check(repo, CheckOptions(read_data=True))
    assert checked.ok and [t.unindexed_packs for t in checked.targets] == [0, 0]
    assert restored(repo, tmp_path) == contents


def test_a_good_copy_outside_its_folder_replaces_a_damaged_one_in_it(make_repo, tmp_path):
    repo = make_repo(pack_size=128 * 1024)
    contents = backed_up(repo, tmp_path)
    root = Path(repo.targets.urls[0])
    lose_index(repo, root)
    name = sorted(packs(root))[0]
    good = (root / name).read_bytes()
    outside = root / "data" / "zz" / Path(name).name
    outside.parent.mkdir()
    outside.write_bytes(good)
    (root / name).write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    result = repair(repo, RepairOptions(index=True))
    assert result.ok and name in result.indexed
    assert result.moved == [MovedPack(str(root), f"data/zz/{outside.name}", name)]
    assert (root / name).read_bytes() == good and not outside.exists()
    assert check(repo, CheckOptions(read_data=True)).ok
    assert restored(repo, tmp_path) == contents


def test_a_pack_outside_its_folder_whose_bytes_are_not_its_name_is_refused(make_repo, tmp_path):
    """A pack's name is its only claim to be that pack: another pack's bytes under its id,
    outside its folder, are neither listed as it nor moved into its place (every read of it
    would fail), nor guessed to be what they are: reported, and left where they are."""
    repo = make_repo(pack_size=128 * 1024)
    backed_up(repo, tmp_path)
    root = Path(repo.targets.urls[0])
    lose_index(repo, root)
    first, second = sorted(packs(root))[:2]
    impostor = root / "data" / "zz" / Path(second).name
    impostor.parent.mkdir()
    impostor.write_bytes((root / first).read_bytes())
    (root / second).unlink()
    result = repair(repo, RepairOptions(index=True))
    assert first in result.indexed and second not in result.indexed and result.moved == []
    assert [u for u in result.unrecoverable if u.startswith(second)] == [
        f"{second}: {root}: data/zz/{impostor.name} (outside its folder): pack does not match "
        "its name"]
    assert impostor.exists() and not (root / second).exists() and not result.ok
