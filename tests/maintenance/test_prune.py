"""forget + prune free exactly the unused space, keep everything else restorable, and
check sees the repository as healthy before and after."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import FogVaultError, UsageError
from fogvault.maintenance import repack as repack_module
from fogvault.maintenance.check import CheckOptions, check
from fogvault.maintenance.forget import forget
from fogvault.maintenance.progress import PhaseProgress
from fogvault.maintenance.prune import PruneOptions, prune
from fogvault.maintenance.retention import RetentionPolicy
from fogvault.restore.restorer import RestoreOptions, Restorer
from fogvault.storage.errors import TransientStorageError


class _Phases(PhaseProgress):
    def __init__(self) -> None:
        self.totals: dict[str, int | None] = {}
        self.steps: dict[str, int] = {}
        self.current = ""

    def phase(self, name: str, total: int | None = None) -> None:
        self.current, self.totals[name], self.steps[name] = name, total, 0

    def advance(self, n: int = 1) -> None:
        self.steps[self.current] += n


def _packs_bytes(repo) -> int:
    root = Path(repo.targets.urls[0]) / "data"
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _write(folder: Path, name: str, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    (folder / name).write_bytes(data)
    return data


def _restored(repo, uid: str, target: Path, src: Path) -> dict[str, bytes]:
    Restorer(repo, repo.load_snapshot(uid), RestoreOptions(target=str(target))).run()
    base = target / str(src).lstrip("/")
    return {p.name: p.read_bytes() for p in base.iterdir()}


def test_forget_and_prune_free_the_forgotten_data(make_repo, tmp_path):
    repo = make_repo(pack_size=128 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    keep = _write(src, "keep", 600_000, 1)
    _write(src, "gone", 900_000, 2)
    first = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    (src / "gone").unlink()
    second = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    before = _packs_bytes(repo)

    result = forget(repo, uids=[first.uid[:8]])
    assert result.removed == [first.uid]
    stats = prune(repo, PruneOptions(max_unused=0.0))
    after = _packs_bytes(repo)
    # The forgotten file's 900 kB of incompressible data is gone, give or take pack overhead.
    assert before - after == stats.bytes_freed
    assert 850_000 < stats.bytes_freed < 1_000_000
    assert check(repo, CheckOptions(read_data=True)).ok
    assert _restored(repo, second.uid, tmp_path / "out", src) == {"keep": keep}
    assert [s.uid for s in repo.snapshots()] == [second.uid]


@pytest.mark.parametrize("repack_span", [None, 1])
def test_prune_repacks_partly_used_packs_and_dry_run_changes_nothing(
    make_repo, tmp_path, monkeypatch, repack_span
):
    if repack_span is not None:  # every blob read on its own
        monkeypatch.setattr(repack_module, "REPACK_SPAN", repack_span)
    repo = make_repo(pack_size=4 * 1024 * 1024)  # everything lands in one pack
    src = tmp_path / "src"
    src.mkdir()
    data = {f"f{i}": _write(src, f"f{i}", 200_000, i) for i in range(6)}
    first = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    for i in range(3):
        (src / f"f{i}").unlink()
        del data[f"f{i}"]
    second = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    forget(repo, uids=[first.uid])
    before = _packs_bytes(repo)
    dry = prune(repo, PruneOptions(dry_run=True))
    assert dry.packs_repacked >= 1 and _packs_bytes(repo) == before
    phases = _Phases()
    wet = prune(repo, PruneOptions(), progress=phases)
    assert wet.packs_repacked == dry.packs_repacked
    # The repack phase counts packs, one step as each pack's copying starts.
    assert phases.totals["repack"] == phases.steps["repack"] == wet.packs_repacked
    assert _packs_bytes(repo) < before * 0.6
    assert check(repo, CheckOptions(read_data=True)).ok
    assert _restored(repo, second.uid, tmp_path / "out", src) == data
    again = prune(repo, PruneOptions())
    assert (again.packs_deleted, again.packs_repacked, again.bytes_freed) == (0, 0, 0)


def test_prune_refuses_when_a_snapshot_misses_data(make_repo, tmp_path):
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "a", 100_000, 3)
    Archiver(repo, BackupOptions()).run([str(src)])
    for index in (Path(repo.targets.urls[0]) / "index").iterdir():
        index.unlink()
    repo.cache = None
    repo.load_index()
    before = _packs_bytes(repo)
    with pytest.raises(FogVaultError, match="before deleting anything"):
        prune(repo, PruneOptions())
    assert _packs_bytes(repo) == before


def test_forget_refuses_an_empty_policy_and_emptying_a_group(make_repo, tmp_path):
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    Archiver(repo, BackupOptions(tags=["x"])).run([str(src)])
    with pytest.raises(UsageError, match="refusing"):
        forget(repo, RetentionPolicy())
    with pytest.raises(UsageError, match="every snapshot"):
        forget(repo, RetentionPolicy(keep_tags=("other",)))
    assert len(repo.snapshots()) == 1


def test_forget_by_policy_keeps_the_newest_per_group(make_repo, tmp_path):
    repo = make_repo()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    uids_a = [Archiver(repo, BackupOptions()).run([str(a)]).snapshot.uid for _ in range(3)]
    uids_b = [Archiver(repo, BackupOptions()).run([str(b)]).snapshot.uid for _ in range(2)]
    result = forget(repo, RetentionPolicy(keep_last=1))
    assert sorted(result.removed) == sorted(uids_a[:2] + uids_b[:1])
    assert sorted(s.uid for s in repo.snapshots()) == sorted([uids_a[-1], uids_b[-1]])


def test_forget_by_uid_and_policy_decides_among_the_rest(make_repo, tmp_path):
    """A uid and a policy together: the policy decides among the snapshots not named, so the
    snapshot it reports as kept is kept, and a group is never emptied by the two together."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    older, newer = (Archiver(repo, BackupOptions()).run([str(src)]).snapshot.uid
                    for _ in range(2))
    result = forget(repo, RetentionPolicy(keep_last=1), uids=["latest"])
    assert result.removed == [newer]
    [group] = result.groups
    assert [k.snapshot.uid for k in group.keep] == [older]
    assert [s.uid for s in repo.snapshots()] == [older]


def test_prune_removes_day_old_leftovers_of_interrupted_writes(make_repo, tmp_path):
    """A killed writer leaves a temporary beside the objects: prune deletes it once it is a day
    old, and leaves a younger one (a writer may still be running) and every object alone."""
    repo = make_repo()
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "a", 300_000, seed=1)
    Archiver(repo, BackupOptions()).run([src])
    folder = tmp_path / "repo" / "data" / "00"
    folder.mkdir(parents=True, exist_ok=True)
    old, young = folder / ".tmp-old-dead", folder / ".tmp-young-busy"
    for leftover in (old, young):
        leftover.write_bytes(b"partial")
    two_days_ago = old.stat().st_mtime - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    def packs() -> list[Path]:
        return sorted(p for p in (tmp_path / "repo" / "data").rglob("*")
                      if p.is_file() and not p.name.startswith("."))

    before = packs()

    result = prune(repo)
    assert result.leftovers_removed == 1
    assert not old.exists() and young.exists()
    assert packs() == before  # every pack is used: none deleted
    two_days_ago = young.stat().st_mtime - 2 * 86400
    os.utime(young, (two_days_ago, two_days_ago))
    assert prune(repo, PruneOptions(dry_run=True)).leftovers_removed == 0  # removes nothing
    assert young.exists()


def test_prune_deletes_orphan_packs_and_leaves_what_is_not_a_pack(make_repo, tmp_path, caplog):
    """A pack no index lists (an interrupted backup's) goes, also from a folder that is not its
    own; a file under data/ whose name is not a pack's is left alone with a warning, as loading
    the index leaves one under index/, and so is a copy of a live pack outside its folder (the
    copy in place may be missing). check's notes say which is which."""
    repo = make_repo(pack_size=128 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "f", 300_000, 3)
    Archiver(repo, BackupOptions()).run([str(src)])
    data = Path(repo.targets.urls[0]) / "data"
    kept = sorted(p for p in data.rglob("*") if p.is_file())
    orphan = data / "ab" / ("ab" + "0" * 62)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"left by an interrupted backup")
    elsewhere = data / "zz" / ("cd" + "0" * 62)  # named as a pack, in another folder
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"an orphan all the same")
    copy = data / "zz" / kept[0].name  # a live pack's copy
    copy.write_bytes(kept[0].read_bytes())
    stray = data / "ab" / "README"
    stray.write_bytes(b"not ours")
    noted = check(repo).targets[0]
    assert noted.unindexed_packs == 2  # the two that prune deletes
    assert (noted.misplaced, noted.foreign) == ([f"data/zz/{kept[0].name}"], ["data/ab/README"])
    stats = prune(repo, PruneOptions())
    assert not orphan.exists() and not elsewhere.exists() and stats.packs_orphaned == 2
    assert stats.bytes_orphaned == len(b"left by an interrupted backup") + len(
        b"an orphan all the same")
    assert stray.exists() and copy.exists()
    assert "ignoring unexpected object data/ab/README" in caplog.text
    assert f"leaving data/zz/{kept[0].name}: a copy of a pack outside its folder" in caplog.text
    assert sorted(p for p in data.rglob("*") if p.is_file() and p not in (stray, copy)) == kept
    noted = check(repo).targets[0]  # what prune leaves is not called prune's to remove
    assert noted.unindexed_packs == 0
    assert (noted.misplaced, noted.foreign) == ([f"data/zz/{kept[0].name}"], ["data/ab/README"])


def _files(folder: Path) -> dict[Path, int]:
    """The objects under ``folder``, not the temporaries of writes cut short."""
    return {p: p.stat().st_size for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def _killed_backup(fogvault, url: str, src: Path) -> None:
    """A real backup killed (SIGKILL, by the crash hook) on its 6th change to the target: its
    lock and some packs written, before the index file that would list them (every 8 packs)."""
    data = Path(url) / "data"
    before = set(_files(data))
    killed = fogvault("-r", url, "backup", str(src), env={"FOGVAULT_CRASH_AFTER_WRITES": "6"})
    assert killed.returncode == -9, killed.stderr
    assert not (Path(url) / "index").exists() or len(set(_files(data)) - before) >= 1


def test_prune_and_its_dry_run_count_the_packs_no_index_lists_in_what_they_free(
        make_repo, tmp_path, fogvault):
    """A killed backup's packs are bytes on the target: the dry run counts them among what it
    would delete and free, the prune among what it deleted and freed (what left the disk),
    and both among the bytes before (restic counts them the same way)."""
    repo = make_repo(pack_size=128 * 1024)
    url = repo.targets.urls[0]
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "kept", 300_000, 1)
    Archiver(repo, BackupOptions()).run([str(src)])
    indexed = _files(Path(url) / "data")
    big = tmp_path / "big"
    big.mkdir()
    _write(big, "big", 2_000_000, 2)
    _killed_backup(fogvault, url, big)
    before = _files(Path(url) / "data")
    orphans = {p: size for p, size in before.items() if p not in indexed}
    assert orphans

    planned = prune(repo, PruneOptions(dry_run=True))
    assert planned.packs_orphaned == len(orphans)
    assert planned.bytes_freed == sum(orphans.values())  # every indexed pack is in use
    assert planned.bytes_before == sum(before.values())
    assert planned.bytes_orphaned == sum(orphans.values())
    assert _files(Path(url) / "data") == before

    done = prune(repo, PruneOptions())
    assert _files(Path(url) / "data") == indexed
    assert done.bytes_freed == sum(before.values()) - sum(indexed.values())
    assert done.bytes_before == planned.bytes_before
    assert (done.packs_orphaned, done.bytes_orphaned) == (len(orphans), sum(orphans.values()))
    text = fogvault("-r", url, "prune", "--dry-run")  # nothing left to free
    assert text.returncode == 0 and b"would free 0 B of" in text.stdout


def test_the_dry_run_leaves_out_unlisted_packs_while_another_process_holds_a_lock(
        make_repo, reopen, tmp_path, fogvault, caplog):
    """Under its shared lock, a dry run may meet a running backup, whose packs are unlisted
    until it writes its index file; prune itself runs only once no one else holds a lock. So
    while another live lock is held the dry run counts none of them, and says why."""
    repo = make_repo(pack_size=128 * 1024)
    url = repo.targets.urls[0]
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "big", 2_000_000, 2)
    _killed_backup(fogvault, url, src)
    orphans = len(_files(Path(url) / "data"))  # the killed backup's packs, no index lists them
    assert orphans
    other = reopen(repo)
    try:
        with other.lock():  # a live lock of a running process (this one), not ours
            planned = prune(repo, PruneOptions(dry_run=True))
    finally:
        other.close()
    assert (planned.packs_orphaned, planned.bytes_freed) == (0, 0)
    assert f"{orphans} pack{'s' if orphans > 1 else ''} no index lists" in caplog.text
    assert "not counted: shared lock" in caplog.text
    assert prune(repo, PruneOptions(dry_run=True)).packs_orphaned == orphans  # the lock is gone


@pytest.mark.parametrize("how", ["damaged", "unreadable"])
def test_prune_refuses_while_a_snapshot_cannot_be_read(make_repo, tmp_path, monkeypatch, how):
    """A snapshot that cannot be read (its file damaged, or a read that failed) still uses its
    data: prune stops before deleting anything. Once it is forgotten, its data goes."""
    repo = make_repo(pack_size=128 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "kept", 300_000, 4)
    Archiver(repo, BackupOptions()).run([str(src)])
    (src / "kept").unlink()
    _write(src, "only-here", 600_000, 5)
    lost = Archiver(repo, BackupOptions()).run([str(src)]).snapshot.uid
    if how == "damaged":
        manifest = Path(repo.targets.urls[0]) / "snapshots" / lost
        manifest.write_bytes(manifest.read_bytes()[:20])
    else:
        load = repo.load_snapshot

        def failing(uid):
            if uid == lost:
                raise TransientStorageError("timed out", target="t", name=f"snapshots/{uid}")
            return load(uid)

        monkeypatch.setattr(repo, "load_snapshot", failing)
    assert len(repo.snapshots()) == 1  # listings skip it, with a warning
    before = _packs_bytes(repo)
    with pytest.raises(FogVaultError, match=f"before deleting anything: snapshot {lost} cannot"):
        prune(repo, PruneOptions())
    assert _packs_bytes(repo) == before
    forget(repo, None, uids=[lost])
    prune(repo, PruneOptions())
    assert _packs_bytes(repo) < before - 500_000


def test_prune_stops_when_the_one_target_holding_a_snapshot_drops_out(make_repo, tmp_path,
                                                                      cache_dir):
    """Target two lost its copy of a snapshot; target one holds it, then is dropped right
    after the listing. The snapshot is not "deleted by a forget" (none can run beside prune):
    prune stops, and target two keeps the snapshot's data."""
    from conftest import PASSWORD

    from fogvault.repo.repository import Repository

    repo = make_repo("one", "two", pack_size=128 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    _write(src, "kept", 300_000, 4)
    Archiver(repo, BackupOptions()).run([str(src)])
    _write(src, "only-here", 600_000, 5)
    lost = Archiver(repo, BackupOptions()).run([str(src)]).snapshot.uid
    one, two = repo.targets.urls
    (Path(two) / "snapshots" / lost).unlink()
    reopened = Repository.open([one, two], PASSWORD, use_cache=False)
    listed = reopened.snapshot_uids

    def listed_then_one_drops() -> list[str]:
        uids = listed()
        reopened.targets.drop(reopened.targets.targets[0], "link down")
        return uids

    reopened.snapshot_uids = listed_then_one_drops
    data_two = sorted(p for p in (Path(two) / "data").rglob("*") if p.is_file())
    try:
        with pytest.raises(FogVaultError, match=f"snapshot {lost} cannot be read"):
            prune(reopened, PruneOptions())
    finally:
        reopened.close()
    assert sorted(p for p in (Path(two) / "data").rglob("*") if p.is_file()) == data_two
