"""One repository on several local targets, through the library: init, membership checks,
k-of-N commits, damage found and repaired, prune skipping a target, target add and remove."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
from conftest import FAST_KDF, PASSWORD, SMALL_CHUNKS

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import (
    DifferentRepository,
    NotEnoughTargets,
    RepositoryNotFound,
    UsageError,
)
from fogvault.maintenance.check import CheckOptions, check
from fogvault.maintenance.forget import forget
from fogvault.maintenance.membership import add_target, remove_target
from fogvault.maintenance.prune import PruneOptions, prune
from fogvault.maintenance.repair import RepairOptions, repair
from fogvault.repo.config import RepoConfig
from fogvault.repo.format import pack_name
from fogvault.repo.repository import Repository
from fogvault.storage import Fault, FaultyStorage, open_storage
from fogvault.storage.faulty import no_space, transient
from fogvault.targets import TargetPolicy

FAST = dict(retry_attempts=2, retry_base_delay=0.001, retry_max_delay=0.002)


def policy(**kw) -> TargetPolicy:
    return TargetPolicy(**{**FAST, **kw})


@pytest.fixture
def folders(tmp_path) -> list[str]:
    return [str(tmp_path / n) for n in ("a", "b", "c")]


@pytest.fixture
def src(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"f{i}").write_bytes(random.Random(i).randbytes(120_000))
    return src


def init(urls, **kw) -> Repository:
    cfg = RepoConfig(chunker=SMALL_CHUNKS, pack_size=64 * 1024)
    return Repository.init(urls, PASSWORD, config=cfg, kdf=FAST_KDF, use_cache=False,
                           policy=kw.pop("policy", policy()), **kw)


def open_repo(urls, **kw) -> Repository:
    return Repository.open(urls, PASSWORD, use_cache=False, policy=kw.pop("policy", policy()),
                           **kw)


def objects(folder: str) -> dict[str, bytes]:
    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".") and p.parts[len(root.parts)] != "locks"}


def _data_blobs(repo: Repository, tree_id: bytes) -> set[bytes]:
    found: set[bytes] = set()
    for node in repo.load_tree(tree_id).nodes:
        if node.subtree is not None:
            found |= _data_blobs(repo, node.subtree)
        found.update(node.content or [])
    return found


def backup(repo: Repository, src: Path):
    return Archiver(repo, BackupOptions()).run([str(src)])


# ---- init and membership --------------------------------------------------------------------


def test_init_writes_the_same_repository_to_every_target(folders) -> None:
    init(folders).close()
    first = objects(folders[0])
    assert set(first) == {"config", *(n for n in first if n.startswith("keys/"))}
    assert all(objects(f) == first for f in folders[1:])  # same id, config and key bytes


def test_targets_holding_different_repositories_are_refused(tmp_path, folders) -> None:
    init(folders[:2]).close()
    init([folders[2]]).close()
    with pytest.raises(DifferentRepository,
                       match=r"/[abc] holds a different repository than .*/[abc]$"):
        open_repo(folders)


def test_an_empty_target_among_them_is_refused_with_a_hint(folders) -> None:
    init(folders[:2]).close()
    with pytest.raises(RepositoryNotFound, match="fogvault target add"):
        open_repo(folders)


def test_an_empty_target_is_left_out_on_request_and_marked(folders) -> None:
    """For a report on the targets (``fogvault targets``), whatever min_targets says."""
    init(folders[:2]).close()
    with open_repo(folders, drop_empty_targets=True) as repo:
        assert [(t.empty, t.active) for t in repo.targets.targets] == [
            (False, True), (False, True), (True, False)]
        assert "not mounted?" in repo.targets.targets[2].dropped
    assert not Path(folders[2]).exists()  # nothing was written there


def test_a_target_with_an_unfinished_inits_key_files_is_not_called_a_missing_disk(folders
                                                                                  ) -> None:
    """Another init's key files and no config: the advice is not 'target add' (which refuses
    such a folder) nor 'not mounted?'."""
    init(folders[:2]).close()
    init([folders[2]]).close()
    Path(folders[2], "config").unlink()
    with pytest.raises(RepositoryNotFound) as refused:
        open_repo(folders)
    assert str(refused.value) == (
        f"{folders[2]}: no repository there: no config, and key files that are not this "
        "repository's (left by an init that did not finish?); to go on without it, leave it out "
        "or give --min-targets 2")


def test_an_empty_target_is_left_out_when_the_others_are_enough(folders, src, caplog) -> None:
    """A disk that is not mounted leaves its mount point empty. With --min-targets 2 of 3 the
    backup goes on to the other two, naming the empty one; with 3 of 3 it is refused."""
    init(folders).close()
    away = Path(folders[2])
    for path in sorted(away.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    with caplog.at_level(logging.WARNING, "fogvault"), \
            open_repo(folders, policy=policy(min_targets=2)) as repo:
        snapshot = backup(repo, src).snapshot
        assert f"{away}: no repository there (not mounted?" in caplog.text
        assert str(away) in repo.targets.missed_changes()
    assert not any(away.iterdir())  # nothing is written into the empty folder
    with open_repo(folders[:2]) as repo:
        assert [s.uid for s in repo.snapshots()] == [snapshot.uid]
    with pytest.raises(RepositoryNotFound, match="not mounted"):
        open_repo(folders, policy=policy(min_targets=3))


def test_a_missing_config_on_one_target_is_damage_not_a_stranger(folders, caplog) -> None:
    init(folders).close()
    Path(folders[1], "config").unlink()
    with caplog.at_level(logging.WARNING, "fogvault"), open_repo(folders) as repo:
        assert "the config is missing" in caplog.text
        result = check(repo)
        assert [t.missing for t in result.targets] == [[], ["config"], []]
        assert repair(repo).ok
        assert check(repo).ok
    assert objects(folders[1]) == objects(folders[0])


def test_a_damaged_key_file_on_the_fastest_target_is_not_a_wrong_password(folders) -> None:
    init(folders).close()
    [key] = Path(folders[0], "keys").iterdir()
    key.write_bytes(key.read_bytes().replace(b'"master_key": "', b'"master_key": "AA'))
    with open_repo(folders) as repo:
        assert (repo.targets.urls[0], f"keys/{key.name}") in repo.targets.damaged
        result = check(repo)
        assert result.targets[0].corrupt == [f"keys/{key.name}"]
        assert repair(repo).targets[0].replaced == [f"keys/{key.name}"]
        assert check(repo).ok


def test_check_names_exactly_what_one_target_lacks_or_holds_damaged(folders, src) -> None:
    init(folders).close()
    with open_repo(folders) as repo:
        backup(repo, src)
    b = Path(folders[1])
    lost = [next(b.glob(f"{kind}/*")) for kind in ("keys", "snapshots", "index")]
    lost.append(next(b.glob("data/*/*")))
    for path in lost:
        path.unlink()
    index = next(Path(folders[2]).glob("index/*"))
    index.write_bytes(index.read_bytes()[:-1] + bytes([index.read_bytes()[-1] ^ 1]))
    with open_repo(folders) as repo:
        result = check(repo)
        assert [sorted(t.missing) for t in result.targets] == [
            [], sorted(str(p.relative_to(b)) for p in lost), []]
        assert [t.corrupt for t in result.targets] == [[], [], [f"index/{index.name}"]]
        assert repair(repo).ok
        assert check(repo, CheckOptions(read_data=True)).ok
    assert objects(folders[0]) == objects(folders[1]) == objects(folders[2])


# ---- k-of-N commits ---------------------------------------------------------------------------


def test_with_k_of_n_a_dropped_target_leaves_the_snapshot_on_the_others(folders, src) -> None:
    init(folders).close()
    full = FaultyStorage(open_storage(folders[2]))
    full.inject("write", Fault(error=no_space(), times=None, prefix="data/"))
    with open_repo([*folders[:2], full], policy=policy(min_targets=2)) as repo:
        result = backup(repo, src)
        assert list(result.targets_behind) == [full.url]
        assert "no space left" in result.targets_behind[full.url]
    assert not list(Path(folders[2], "snapshots").glob("*"))
    assert len(list(Path(folders[0], "snapshots").iterdir())) == 1


def test_fewer_than_k_targets_commit_nothing_and_the_next_run_reuses_the_packs(
    folders, src
) -> None:
    init(folders).close()
    full = FaultyStorage(open_storage(folders[2]))
    full.inject("write", Fault(error=no_space(), times=None, skip=3))
    with open_repo([*folders[:2], full]) as repo, pytest.raises(NotEnoughTargets,
                                                                  match="3 targets"):
        backup(repo, src)
    for folder in folders:
        assert not Path(folder, "snapshots").exists() or not any(
            Path(folder, "snapshots").iterdir())
    assert any(Path(folders[0], "index").iterdir())  # what was uploaded is indexed there
    with open_repo(folders) as repo:
        with pytest.raises(NotEnoughTargets, match="backup not started"):
            backup(repo, src)  # c lacks index files: K=3 cannot be met until repair
        assert repair(repo).ok
        repo.load_index()
        uploaded = {entry.blob_id for entry in repo.index}
        assert uploaded  # the failed run's packs are indexed
        result = backup(repo, src)
        assert result.targets_behind == {}
        content = _data_blobs(repo, result.snapshot.tree)
        assert uploaded & content  # ...and the next run uses them instead of storing them again
        assert result.snapshot.summary.data_blobs_added == len(content - uploaded)


def test_a_target_behind_from_the_start_gets_no_snapshot(folders, src) -> None:
    init(folders).close()
    with open_repo(folders[:2]) as repo:
        backup(repo, src)  # c was not given: it lacks everything
    (src / "new").write_bytes(b"more")
    with open_repo(folders, policy=policy(min_targets=2)) as repo:
        result = backup(repo, src)
        assert "lacks 1 of 1 index files" in result.targets_behind[repo.targets.urls[2]]
    assert not list(Path(folders[2], "snapshots").glob("*"))
    assert list(Path(folders[2], "index").glob("*"))  # new packs and index files did go there


# ---- prune with a target away -----------------------------------------------------------------


def test_prune_skips_an_unreachable_target_and_repair_then_prune_make_it_consistent(
    folders, src
) -> None:
    init(folders).close()
    with open_repo(folders) as repo:
        backup(repo, src)
        (src / "f0").write_bytes(b"changed")
        backup(repo, src)
        oldest = repo.snapshots()[0].uid
        forget(repo, uids=[oldest])
    away = FaultyStorage(open_storage(folders[2]))
    away.inject("*", Fault(error=transient(), times=None))
    with open_repo([*folders[:2], away]) as repo:
        assert not repo.targets.targets[2].active  # unreachable: dropped at open
        result = prune(repo, PruneOptions(max_unused=0.0))
        assert result.packs_deleted + result.packs_repacked > 0
        assert list(repo.targets.missed_changes()) == [away.url]  # the CLI exits 3 here
    assert objects(folders[0]) == objects(folders[1]) != objects(folders[2])
    with open_repo(folders) as repo:  # back: no ledger here, so repair copies, prune deletes
        report = check(repo, CheckOptions(read_data=True))
        assert not report.problems and report.targets[0].ok and report.targets[1].ok
        behind = set(objects(folders[0])) - set(objects(folders[2]))
        assert set(report.targets[2].missing) == behind  # what prune wrote: nothing is lost
        assert repair(repo).ok
        assert check(repo, CheckOptions(read_data=True)).ok
        prune(repo, PruneOptions(max_unused=0.0))
        assert check(repo, CheckOptions(read_data=True)).ok
    assert objects(folders[0]) == objects(folders[1]) == objects(folders[2])


def test_missed_deletions_remembered_are_applied_by_repair(folders, src) -> None:
    init(folders).close()
    with open_repo(folders) as repo:
        backup(repo, src)
        uid = repo.snapshots()[0].uid
    with open_repo(folders) as repo:
        repo.targets.drop(repo.targets.targets[2], "unreachable")
        forget(repo, uids=[uid])
        missed = set(repo.targets.missed_deletes)
    assert missed == {(open_storage(folders[2]).url, f"snapshots/{uid}")}
    with open_repo(folders) as repo:
        repo.targets.missed_deletes |= missed  # what the ledger gives the next run
        result = repair(repo)
        assert result.targets[2].deleted == [f"snapshots/{uid}"]
        assert result.targets[0].copied == []  # the forgotten snapshot is not spread back
    assert objects(folders[0]) == objects(folders[2])


# ---- target add and remove --------------------------------------------------------------------


def test_target_add_copies_everything_verified_and_the_config_last(folders, src) -> None:
    init(folders[:2]).close()
    with open_repo(folders[:2]) as repo:
        backup(repo, src)
    new = FaultyStorage(open_storage(folders[2]))
    order: list[str] = []
    new.inject("write", Fault(hook=lambda method, name: order.append(name), times=None))
    with open_repo(folders[:2]) as repo:
        result = add_target(repo, new)
        assert result.ok and not result.targets[0].replaced
    written = [n for n in order if not n.startswith("locks/")]
    assert written[-1] == "config" and written[0].startswith("keys/")
    assert objects(folders[2]) == objects(folders[0])
    with open_repo(folders) as repo:
        assert check(repo, CheckOptions(read_data=True)).ok


def test_target_add_refuses_a_folder_of_something_else(folders, tmp_path) -> None:
    init(folders[:2]).close()
    Path(folders[2]).mkdir()
    Path(folders[2], "notes.txt").write_text("mine")
    with open_repo(folders[:2]) as repo, pytest.raises(Exception, match="not empty"):
        add_target(repo, folders[2])


def test_target_add_names_the_key_files_an_unfinished_init_left(folders) -> None:
    """A folder with another repository's key file and no config (what an init killed before
    its config leaves) is refused with what to do about it, not as "not empty"."""
    init(folders[:2]).close()
    init([folders[2]]).close()
    Path(folders[2], "config").unlink()
    with open_repo(folders[:2]) as repo, pytest.raises(
            UsageError, match=r"holds only key files that are not this repository's, and no "
                              r"config \(left by an init that did not finish\?\): delete its "
                              r"keys/ folder"):
        add_target(repo, folders[2])


def test_target_remove_deletes_only_when_asked_and_only_if_the_others_hold_all(
    folders, src
) -> None:
    init(folders).close()
    with open_repo(folders) as repo:
        backup(repo, src)
    with open_repo(folders) as repo:
        result = remove_target(repo, repo.targets.urls[2])
        assert result.others_complete and result.deleted == 0
    assert objects(folders[2]) == objects(folders[0])
    next(Path(folders[1], "data").rglob("*/*")).unlink()
    with open_repo(folders) as repo, pytest.raises(Exception, match="run 'fogvault repair'"):
        remove_target(repo, repo.targets.urls[2], delete_data=True)
    assert objects(folders[2]) == objects(folders[0])  # nothing deleted
    with open_repo(folders) as repo:
        repair(repo)
        result = remove_target(repo, repo.targets.urls[2], delete_data=True)
        assert result.deleted == len(objects(folders[0]))
    assert objects(folders[2]) == {}
    with open_repo(folders[:2]) as repo:
        assert check(repo).ok


# ---- repair's ordering rules and side effects ----------------------------------------------


def test_repair_holds_back_an_index_whose_pack_is_damaged_and_a_snapshot_lacking_it(
        folders, src) -> None:
    """b holds a damaged copy of pack P and lacks the index file listing P and the snapshot;
    a lacks P. P cannot be repaired, so neither the index file nor the snapshot may go to b."""
    init(folders[:2]).close()
    with open_repo(folders[:2]) as repo:
        backup(repo, src)
        repo.load_index()
        index = sorted(repo.live_index_names())[0]
        pack = pack_name(repo.index_file_packs(index)[0])
    a, b = Path(folders[0]), Path(folders[1])
    snapshot = next(b.glob("snapshots/*"))
    snapshot.unlink()
    (b / index).unlink()
    damaged = bytearray((b / pack).read_bytes())
    damaged[len(damaged) // 2] ^= 1
    (b / pack).write_bytes(bytes(damaged))
    (a / pack).unlink()
    with open_repo(folders[:2]) as repo:
        result = repair(repo, RepairOptions(read_data=True))
    assert any(entry.startswith(f"{pack}: ") for entry in result.unrecoverable)
    skipped = result.targets[1].skipped
    assert f"{index}: 1 of its packs are not on the target" in skipped
    assert f"snapshots/{snapshot.name}: the target lacks 1 index files" in skipped
    assert not (b / index).exists() and not (b / "snapshots" / snapshot.name).exists()


def test_a_dry_run_repair_changes_nothing_the_next_reads_go_by(folders, src) -> None:
    init(folders[:2]).close()
    with open_repo(folders[:2]) as repo:
        backup(repo, src)
    pack = next(Path(folders[1]).glob("data/*/*"))
    name = str(pack.relative_to(folders[1]))
    pack.unlink()
    with open_repo(folders[:2]) as repo:
        result = repair(repo, RepairOptions(dry_run=True))
        assert name in result.targets[1].copied and not Path(folders[1], name).exists()
        assert repo.targets.read_order(name)[-1].url == folders[1]  # still known to lack it
        assert not repo.targets.damaged
