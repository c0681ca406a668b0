"""check finds exactly the damage there is: missing, truncated and altered packs, missing
index files and missing data, and exits 1."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import PASSWORD

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import UsageError
from fogvault.maintenance import mark
from fogvault.maintenance.check import CheckOptions, check
from fogvault.maintenance.forget import forget
from fogvault.maintenance.prune import PruneOptions, prune
from fogvault.repo import repository
from fogvault.repo.format import snapshot_name
from fogvault.repo.repository import Repository
from fogvault.storage import open_storage
from fogvault.storage.faulty import Fault, FaultyStorage
from tests.maintenance.test_reindex import old_then_new


@pytest.fixture
def repo_with_data(make_repo, tmp_path):
    repo = make_repo(pack_size=128 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"f{i}").write_bytes(random.Random(i).randbytes(150_000))
    Archiver(repo, BackupOptions()).run([str(src)])
    return repo


def _data_packs(repo) -> list[Path]:
    root = Path(repo.targets.urls[0])
    return sorted(p for p in (root / "data").rglob("*") if p.is_file())


def test_clean_repository_checks_clean(repo_with_data):
    result = check(repo_with_data, CheckOptions(read_data=True))
    assert result.ok and result.snapshots == 1 and result.targets[0].packs_read == result.packs


def test_mark_in_small_batches_and_spans_sees_every_tree(make_repo, tmp_path, monkeypatch):
    """Trees load TREE_BATCH at a time, one read per TREE_SPAN of a pack: with both tiny
    (every batch 2 trees, every read one tree) the marks are those of the default sizes."""
    repo = make_repo()
    for d in range(5):
        for e in range(3):
            folder = tmp_path / "src" / f"d{d}" / f"e{e}"
            folder.mkdir(parents=True)
            (folder / "f").write_bytes(random.Random(10 * d + e).randbytes(1000))
    Archiver(repo, BackupOptions()).run([str(tmp_path / "src")])
    default = mark.mark_used(repo, repo.snapshots())
    monkeypatch.setattr(mark, "TREE_BATCH", 2)
    monkeypatch.setattr(repository, "TREE_SPAN", 1)
    small = mark.mark_used(repo, repo.snapshots())
    assert default.problems == small.problems == []
    assert small.trees == default.trees >= 1 + 5 + 15  # src, d*, d*/e* (and src's parents)
    assert small.used == default.used and sum(small.used) == len(repo.index)


def test_damage_is_reported_exactly(repo_with_data):
    repo = repo_with_data
    packs = _data_packs(repo)
    missing, truncated, altered = packs[0], packs[1], packs[2]
    missing.unlink()
    truncated.write_bytes(truncated.read_bytes()[:-10])
    data = bytearray(altered.read_bytes())
    data[100] ^= 0xFF
    altered.write_bytes(bytes(data))
    root = Path(repo.targets.urls[0])
    name = lambda p: str(p.relative_to(root))  # noqa: E731

    structure = check(repo, CheckOptions())
    report = structure.targets[0]
    assert report.missing == [name(missing)]
    assert report.wrong_size == [name(truncated)]
    assert report.corrupt == []  # content is only read with read_data
    full = check(repo, CheckOptions(read_data=True)).targets[0]
    assert full.corrupt == [name(altered)]
    assert not full.ok


def test_read_data_subset_groups_cover_everything_once(repo_with_data):
    reads = [check(repo_with_data, CheckOptions(read_data_subset=f"{n}/3")).targets[0].packs_read
             for n in (1, 2, 3)]
    assert sum(reads) == check(repo_with_data).packs


def test_read_data_subset_percentages_and_sizes_read_as_restic_does(repo_with_data):
    """x% reads round(x% of the packs), at least one: each pack was drawn by itself, so 10%
    often read none and said 'no errors were found'. A size reads random packs up to it (it
    was refused); --read-data with a subset is refused (it read every pack)."""
    packs = check(repo_with_data).packs
    sizes = sorted(p.stat().st_size for p in _data_packs(repo_with_data))

    def read(spec: str) -> int:
        return check(repo_with_data, CheckOptions(read_data_subset=spec)).targets[0].packs_read

    assert [read("1%") for _ in range(5)] == [1] * 5
    assert read("50%") == round(packs / 2) and read("100%") == packs
    assert read("1") == 1  # a size smaller than any pack: still one
    assert read(str(sizes[0] + sizes[1])) >= 1 and read("1G") == packs
    with pytest.raises(UsageError, match="not both"):
        check(repo_with_data, CheckOptions(read_data=True, read_data_subset="1/2"))
    for bad in ("0%", "101%", "0/3", "4/3", "abc", "0", "9" * 400):  # the last overflowed
        with pytest.raises(UsageError):
            check(repo_with_data, CheckOptions(read_data_subset=bad))


def test_missing_index_file_means_missing_data(repo_with_data):
    repo = repo_with_data
    for index in (Path(repo.targets.urls[0]) / "index").iterdir():
        index.unlink()
    repo.cache = None
    result = check(repo)
    assert not result.ok
    assert any("not in the index" in p for p in result.problems)


def test_cli_check_exit_codes(fogvault, repo_with_data):
    url = repo_with_data.targets.urls[0]
    ok = fogvault("check", "-r", url, "--read-data")
    assert ok.returncode == 0 and b"no errors were found" in ok.stdout
    _data_packs(repo_with_data)[0].write_bytes(b"garbage")
    bad = fogvault("check", "-r", url, "--json")
    assert bad.returncode == 1
    summary = json.loads(bad.stdout.splitlines()[-1])
    assert summary["ok"] is False and len(summary["targets"][0]["wrong_size"]) == 1


def test_the_note_on_unindexed_packs_says_whether_they_may_hold_missing_data(
        fogvault, repo_with_data):
    """An orphan pack (an interrupted backup's) is prune's to remove; but with data missing
    from the index (an index file lost on every target), unindexed packs may hold it."""
    root = Path(repo_with_data.targets.urls[0])
    orphan = root / "data" / "ab" / ("ab" * 32)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"left by an interrupted backup")
    (root / "data" / "JUNK").write_bytes(b"not a pack: prune leaves it")
    done = fogvault("check", "-r", str(root))
    assert done.returncode == 0
    assert b"note: 1 pack no index lists ('prune' removes them)" in done.stdout
    assert b"note: data/JUNK is not a pack: FogVault leaves it" in done.stdout
    (root / "data" / "JUNK").unlink()
    orphan.unlink()
    for index in (root / "index").iterdir():
        index.unlink()
    done = fogvault("--no-cache", "check", "-r", str(root))
    assert done.returncode == 1
    packs = len(_data_packs(repo_with_data))
    assert (f"note: {packs} packs no index lists (they may hold the missing data: "
            "'fogvault repair --index' lists them again)").encode() in done.stdout


def test_the_note_holds_for_a_pack_outside_its_folder(fogvault, repo_with_data):
    """The note's advice, followed: 'repair --index' lists again the packs no index lists, one
    outside its folder too (it took only those in their own, and check went on failing); it
    says that it moved it."""
    root = Path(repo_with_data.targets.urls[0])
    for index in (root / "index").iterdir():
        index.unlink()
    pack = _data_packs(repo_with_data)[0]
    name = str(pack.relative_to(root))
    outside = root / "data" / "zz" / pack.name
    outside.parent.mkdir()
    pack.rename(outside)
    done = fogvault("--no-cache", "check", "-r", str(root))
    assert done.returncode == 1
    packs = len(_data_packs(repo_with_data))
    assert (f"note: {packs} packs no index lists (they may hold the missing data: "
            "'fogvault repair --index' lists them again)").encode() in done.stdout
    repaired = fogvault("--no-cache", "repair", "-r", str(root), "--index")
    assert repaired.returncode == 0, repaired.stderr
    assert f"index: {name}\n".encode() in repaired.stdout
    assert (f"move into its folder: {root} data/zz/{pack.name} (as {name})\n".encode()
            in repaired.stdout)
    assert repaired.stderr.decode().splitlines() == [
        f"warning: {root}: data/zz/{pack.name} is outside its folder: moved it to {name}"]
    done = fogvault("--no-cache", "check", "-r", str(root), "--read-data")
    assert done.returncode == 0, done.stdout
    assert b"note:" not in done.stdout and not outside.exists() and pack.exists()


@pytest.mark.parametrize("reads_before", [0, 1], ids=["while-marking", "while-verifying"])
def test_a_snapshot_forgotten_during_check_is_not_damage(make_repo, tmp_path, reads_before):
    """forget runs under a shared lock, as check does. A snapshot it deletes after check listed
    the snapshots (read 0: check's first read of it, to mark; read 2: to verify the stored
    copy, after both were marked) is neither reported nor remembered as damage."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data")
    first = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    Archiver(repo, BackupOptions(force=True)).run([str(src)])
    faulty = FaultyStorage(open_storage(repo.targets.urls[0]))
    checking = Repository.open([faulty], PASSWORD, use_cache=False)

    def forget_first(method: str, name: str) -> None:
        forget(repo, uids=[first.uid])

    faulty.inject("read", Fault(hook=forget_first, prefix=snapshot_name(first.uid),
                                skip=reads_before))
    result = check(checking, CheckOptions())
    assert first.uid not in [s.uid for s in repo.snapshots()]  # forgotten during the check
    assert result.ok, result
    assert not checking.targets.damaged


def test_a_damaged_snapshot_is_still_reported(repo_with_data):
    """Only a snapshot gone from every target counts as forgotten; one still there is checked."""
    [snap] = (Path(repo_with_data.targets.urls[0]) / "snapshots").iterdir()
    snap.write_bytes(b"garbage" * 10)
    result = check(repo_with_data, CheckOptions())
    assert result.targets[0].corrupt == [f"snapshots/{snap.name}"]


def test_a_key_file_unreadable_everywhere_is_named_with_a_way_out(repo_with_data):
    """One copy, and it is not a key file: not "copies differ", and key remove removes it."""
    keys = Path(repo_with_data.targets.urls[0]) / "keys"
    (keys / "0000000000000000").write_text("garbage\n")
    result = check(repo_with_data, CheckOptions())
    assert result.problems == [
        "keys/0000000000000000 is not a readable key file on any target that holds it; "
        "'fogvault key remove 0000000000000000' removes it"]
    repo_with_data.remove_key("0000000000000000")
    assert check(repo_with_data, CheckOptions()).ok


def test_a_snapshot_counts_as_gone_only_if_every_target_none_dropped_says_so(make_repo,
                                                                           tmp_path):
    """check leaves out, and listings skip quietly, a snapshot a concurrent forget deleted.
    A dropped target might still hold it: then it is not gone (check reports it, prune stops)."""
    repo = make_repo("one", "two")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x" * 1000)
    uid = Archiver(repo, BackupOptions()).run([str(src)]).snapshot.uid
    name = f"snapshots/{uid}"
    one, two = (Path(url) for url in repo.targets.urls)
    (two / name).unlink()
    assert not repo.gone_everywhere(name)  # one still holds it
    repo.targets.drop(repo.targets.targets[0], "link down")
    assert not repo.gone_everywhere(name)  # one cannot be asked: it might hold it
    (one / name).unlink()
    assert not repo.gone_everywhere(name)  # still dropped: it cannot say


def test_an_index_file_damaged_everywhere_fails_check_until_repair_index_deletes_it(
        fogvault, repo_with_data):
    """The sweep's commands: a byte flipped in the only index file. check reports it (exit 1),
    also once 'repair --index' has listed its packs again, and 'targets' counts it as corrupt,
    until that repair deletes it: then check --read-data is clean and nothing warns of it."""
    root = Path(repo_with_data.targets.urls[0])
    [index_file] = (root / "index").iterdir()
    data = bytearray(index_file.read_bytes())
    data[40] ^= 0xFF
    index_file.write_bytes(bytes(data))
    name = f"index/{index_file.name}"
    found = fogvault("--no-cache", "-r", str(root), "check")
    assert found.returncode == 1 and f"corrupt: {name}".encode() in found.stdout
    state = fogvault("--no-cache", "-r", str(root), "--json", "targets")
    assert state.returncode == 3 and json.loads(state.stdout)[0]["corrupt"] == [name]
    repaired = fogvault("--no-cache", "-r", str(root), "repair", "--index")
    assert repaired.returncode == 0, repaired.stderr
    assert f"delete: {name} (no target holds a good copy".encode() in repaired.stdout
    assert not index_file.exists()
    clean = fogvault("--no-cache", "-r", str(root), "check", "--read-data")
    assert clean.returncode == 0 and b"no errors were found" in clean.stdout
    assert b"skipping index file" not in clean.stderr
    state = fogvault("--no-cache", "-r", str(root), "--json", "targets")
    assert state.returncode == 0 and json.loads(state.stdout)[0]["corrupt"] == []


def test_a_snapshot_forgotten_while_a_target_was_away_is_not_missing_elsewhere(
        make_repo, tmp_path, cache_dir, fogvault):
    """The drill's finding 7: a snapshot forgotten and pruned on two targets while the third
    was away, the ledger of that lost (another machine). The third still holds the snapshot,
    its packs and the index files the prune replaced. check says what repair says (forget it),
    does not call it missing on the targets that deleted it, and notes the packs as prune's to
    delete, not as what 'repair --index' could list again (it would refuse them)."""
    repo = make_repo("one", "two", "three", pack_size=128 * 1024)
    forgotten = old_then_new(repo, tmp_path / "src")
    one, two, three = repo.targets.urls
    away = Repository.open([one, two], PASSWORD, cache_dir=cache_dir)
    forget(away, None, uids=[forgotten])
    prune(away, PruneOptions())
    away.close()
    urls = ["-r", one, "-r", two, "-r", three]
    text = fogvault(*urls, "check")
    assert text.returncode == 1
    assert b"missing: snapshots/" not in text.stdout and b"repair --index" not in text.stdout
    assert f"'fogvault forget {forgotten}' deletes it everywhere".encode() in text.stdout
    assert b"which a prune deleted elsewhere ('prune' removes them)" in text.stdout
    done = fogvault(*urls, "--json", "check")
    assert done.returncode == 1
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["forgotten"] == [forgotten] and summary["data_missing"] is False
    [problem] = summary["problems"]
    assert f"snapshot {forgotten} is only on {three}" in problem
    assert f"'fogvault forget {forgotten}' deletes it everywhere" in problem
    by_url = {t["url"]: t for t in summary["targets"]}
    assert snapshot_name(forgotten) not in by_url[one]["missing"] + by_url[two]["missing"]
    assert by_url[one]["ok"] and by_url[two]["ok"]
    assert by_url[three]["unindexed_packs"] == by_url[three]["unindexed_pruned"] > 0
    assert fogvault(*urls, "forget", forgotten).returncode == 0  # what both advise
    assert fogvault(*urls, "repair").returncode == 0  # the new index file to the third
    assert fogvault(*urls, "prune").returncode == 0
    clean = fogvault(*urls, "check", "--read-data")
    assert clean.returncode == 0, clean.stdout


def _second_snapshot_on_one_only(make_repo, tmp_path: Path):
    """Targets 'one' and 'two' with a snapshot on both, then a k-of-N backup's on 'one' only:
    the repository, the index files that backup wrote to 'one', and its snapshot."""
    repo = make_repo("one", "two")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f1").write_bytes(random.Random(1).randbytes(50_000))
    Archiver(repo, BackupOptions()).run([str(src)])
    index_before = set((tmp_path / "one" / "index").iterdir())
    (src / "f2").write_bytes(random.Random(2).randbytes(50_000))
    with Repository.open([str(tmp_path / "one")], PASSWORD, use_cache=False) as only_one:
        snapshot = Archiver(only_one, BackupOptions()).run([str(src)]).snapshot
    new_index = set((tmp_path / "one" / "index").iterdir()) - index_before
    return repo, new_index, snapshot


def test_a_snapshot_on_some_targets_whose_index_file_is_lost_is_not_called_forgotten(
        make_repo, tmp_path):
    """A k-of-N backup's snapshot and index file are on 'one' only; that index file is then
    lost. The packs are still there: check and repair must point to 'repair --index', not to
    'forget' (which, with a prune after it, destroyed the snapshot)."""
    from fogvault.maintenance.repair import RepairOptions, repair

    repo, new_index, snapshot = _second_snapshot_on_one_only(make_repo, tmp_path)
    one, uid = str(tmp_path / "one"), snapshot.uid
    for new in new_index:
        new.unlink()
    with Repository.open(repo.targets.urls, PASSWORD, use_cache=False) as both:
        result = check(both)
        assert not result.ok and result.data_missing and result.forgotten == []
        assert not any("forget" in p for p in result.problems)
        assert snapshot_name(uid) in next(t for t in result.targets if t.url != one).missing
        refused = repair(both, RepairOptions(dry_run=True))
        assert any("'fogvault repair --index' lists them again" in u
                   for u in refused.unrecoverable)
        repair(both, RepairOptions(index=True))
    with Repository.open(repo.targets.urls, PASSWORD, use_cache=False) as both:
        assert check(both, CheckOptions(read_data=True)).ok


def test_a_snapshot_on_some_targets_whose_indexed_tree_is_lost_is_not_called_forgotten(
        make_repo, tmp_path, cache_dir):
    """A k-of-N backup's snapshot is on 'one' only, and the pack holding its trees is then lost
    there. The index still lists its trees, so no prune dropped them while 'two' was away: the
    data is lost, not forgotten, and 'forget' is not the way out ('repair --index' is)."""
    repo, _, snapshot = _second_snapshot_on_one_only(make_repo, tmp_path)
    repo.load_index()  # with the index file the backup to 'one' wrote
    tree_pack = repo.index.get(snapshot.tree).pack_id.hex()
    [lost] = (tmp_path / "one" / "data").glob(f"*/{tree_pack}")
    lost.unlink()
    with Repository.open(repo.targets.urls, PASSWORD, use_cache=False) as both:
        result = check(both)
    assert not result.ok and result.data_missing and result.forgotten == []
    assert not any("forget" in p for p in result.problems), result.problems
    assert any(f"pack data/{tree_pack[:2]}/{tree_pack} is missing or damaged on every target"
               in p and "repair --index" in p for p in result.problems), result.problems
    assert [b.snapshots for b in result.broken_objects] == [[snapshot.uid]]
    from fogvault.maintenance.repair import RepairOptions, repair

    # with a cache (without that pack), else repair keeps a tree pack: the cache may hold it
    with Repository.open(repo.targets.urls, PASSWORD, cache_dir=cache_dir) as both:
        planned = repair(both, RepairOptions(dry_run=True))
        assert not any("forget" in u for u in planned.unrecoverable), planned.unrecoverable
        assert any("repair --index" in u for u in planned.unrecoverable)
        done = repair(both, RepairOptions(index=True))
    assert done.lost_packs == [f"data/{tree_pack[:2]}/{tree_pack}"]
    [held] = [u for u in done.unrecoverable if u.startswith(snapshot_name(snapshot.uid))]
    assert "a backup of the same files stores it again" in held and "forget" not in held
    # Later runs no longer know what that run dropped: the root tree is now missing from the
    # index, as a prune's would be, but no prune ran that a target missed.
    with Repository.open(repo.targets.urls, PASSWORD, cache_dir=cache_dir) as both:
        later = check(both)
        assert later.forgotten == [] and later.data_missing
        assert not any("forget" in p for p in later.problems), later.problems
        again = repair(both, RepairOptions(index=True))
        assert not any("forget" in u for u in again.unrecoverable), again.unrecoverable
