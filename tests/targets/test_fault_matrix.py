"""Three real targets (a local folder, S3 on Ceph RGW, SFTP on OpenSSH), one of them faulty.

For each fault, through the library (the faulty target is a FaultyStorage around a real one):

* the backup completes, or fails, exactly as ``--min-targets`` says;
* restore is byte-identical;
* once the fault is gone, ``check`` reports exactly the damaged objects, on exactly the damaged
  target (the truth is computed from the raw targets);
* ``repair`` restores full redundancy (every target holds the same objects, byte for byte);
* a second ``check`` is clean.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import FAST_KDF, PASSWORD, SMALL_CHUNKS

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.crypto import content_hash
from fogvault.errors import NotEnoughTargets
from fogvault.maintenance.check import CheckOptions, check
from fogvault.maintenance.repair import repair
from fogvault.repo.config import RepoConfig
from fogvault.repo.repository import Repository
from fogvault.restore.restorer import RestoreOptions, Restorer
from fogvault.storage import Fault, FaultyStorage, Storage, open_storage
from fogvault.storage.faulty import no_space, transient
from fogvault.targets import TargetPolicy

KINDS = ("local", "s3", "sftp")


def _policy(min_targets: int | None) -> TargetPolicy:
    return TargetPolicy(min_targets=min_targets, retry_attempts=8, retry_base_delay=0.001,
                        retry_max_delay=0.005)


def _fails_everything(f: FaultyStorage) -> None:
    f.inject("*", Fault(error=transient("connection refused"), times=None))


def _fails_a_fifth(f: FaultyStorage) -> None:
    f.inject("*", Fault(error=transient(), fraction=0.2, times=None))


def _flips_bytes(f: FaultyStorage) -> None:
    # bit rot: every pack but the first, and the first index file, are stored with one bit
    # flipped, so every read of them returns flipped bytes
    f.inject("write", Fault(flip=True, skip=1, times=None, prefix="data/"))
    f.inject("write", Fault(flip=True, prefix="index/"))


def _disappears(f: FaultyStorage) -> None:
    # gone for good right after its third pack, in the middle of the backup
    f.inject("write", Fault(hook=lambda method, name: f.disappear_after(0), skip=2,
                            prefix="data/"))


def _fills_up(f: FaultyStorage) -> None:
    f.inject("write", Fault(error=no_space(), skip=4, times=None))


@dataclass(frozen=True)
class Case:
    name: str
    faulty: str  # which of KINDS is wrapped
    fault: Callable[[FaultyStorage], None]
    min_targets: int | None  # None: all three
    commits: bool  # is the second snapshot written?
    behind: bool  # ...and is the faulty target left without it?


CASES = [
    Case("fails-everything-k2", "sftp", _fails_everything, 2, commits=True, behind=True),
    Case("fails-everything-k3", "sftp", _fails_everything, None, commits=False, behind=False),
    Case("fails-20-percent", "s3", _fails_a_fifth, None, commits=True, behind=False),
    Case("flips-bytes", "local", _flips_bytes, None, commits=True, behind=False),
    Case("disappears-k2", "sftp", _disappears, 2, commits=True, behind=True),
    Case("disappears-k3", "s3", _disappears, None, commits=False, behind=False),
    Case("full-k2", "s3", _fills_up, 2, commits=True, behind=True),
]


def _write_source(src: Path, seed: int) -> None:
    rng = random.Random(seed)
    src.mkdir(exist_ok=True)
    for i in range(6):
        (src / f"file{i}").write_bytes(rng.randbytes(rng.randint(50_000, 250_000)))
    (src / "small").write_text(f"version {seed}\n")


def _raw_objects(storage: Storage) -> dict[str, bytes]:
    """name -> content hash of every object but locks, read directly from the target."""
    return {info.name: content_hash(storage.read(info.name)) for info in storage.list()
            if not info.name.startswith("locks/")}


def _restore_and_compare(repo: Repository, uid: str, src_copy: dict[str, bytes], dest: Path):
    snapshot = repo.load_snapshot(uid)
    Restorer(repo, snapshot, RestoreOptions(target=str(dest))).run()
    [root] = snapshot.paths
    restored = dest / root.lstrip("/")
    assert {p.name: p.read_bytes() for p in restored.iterdir()} == src_copy


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_one_faulty_target_of_three(case: Case, tmp_path: Path, s3_url: str, sftp_url: str
                                    ) -> None:
    raw = {"local": open_storage(str(tmp_path / "local")), "s3": open_storage(s3_url),
           "sftp": open_storage(sftp_url)}
    cfg = RepoConfig(chunker=SMALL_CHUNKS, pack_size=96 * 1024)
    Repository.init(list(raw.values()), PASSWORD, config=cfg, kdf=FAST_KDF, use_cache=False,
                    policy=_policy(None)).close()
    src = tmp_path / "src"
    _write_source(src, 1)
    with Repository.open(list(raw.values()), PASSWORD, use_cache=False) as repo:
        first = Archiver(repo, BackupOptions()).run([str(src)]).snapshot.uid
    before = {p.name: p.read_bytes() for p in src.iterdir()}

    # the backup with the faulty target
    _write_source(src, 2)
    after = {p.name: p.read_bytes() for p in src.iterdir()}
    faulty = FaultyStorage(raw[case.faulty], seed=20)
    targets = [faulty if kind == case.faulty else raw[kind] for kind in KINDS]
    with Repository.open(targets, PASSWORD, use_cache=False,
                         policy=_policy(case.min_targets)) as repo:
        case.fault(faulty)
        if case.commits:
            result = Archiver(repo, BackupOptions()).run([str(src)])
            assert list(result.targets_behind) == ([faulty.url] if case.behind else [])
            second = result.snapshot.uid
        else:
            with pytest.raises(NotEnoughTargets):
                Archiver(repo, BackupOptions()).run([str(src)])
            second = None
        # restore, with the fault still there: reads go around it
        _restore_and_compare(repo, second or first, after if second else before,
                             tmp_path / "restored")
    on_target = {kind: {n for n in _raw_objects(s) if n.startswith("snapshots/")}
                 for kind, s in raw.items()}
    for kind in KINDS:
        expect_second = second is not None and not (case.behind and kind == case.faulty)
        assert (f"snapshots/{second}" in on_target[kind]) == expect_second, kind

    # the fault is gone (the target is back, the disk has room): the truth, from the raw targets
    faulty.clear()
    healthy = _raw_objects(raw["local" if case.faulty != "local" else "s3"])
    damaged = _raw_objects(raw[case.faulty])
    missing = sorted(set(healthy) - set(damaged))
    corrupt = sorted(n for n in set(healthy) & set(damaged) if healthy[n] != damaged[n])
    assert missing or corrupt or case.name in ("fails-20-percent", "fails-everything-k3")

    with Repository.open(targets, PASSWORD, use_cache=False, policy=_policy(None)) as repo:
        report = check(repo, CheckOptions(read_data=True))
        assert report.problems == []
        for target, kind in zip(report.targets, KINDS, strict=True):
            if kind == case.faulty:
                assert (sorted(target.missing), sorted(target.wrong_size + target.corrupt)
                        ) == (missing, corrupt)
            else:
                assert target.ok, (kind, target)
        fixed = repair(repo)
        assert fixed.ok and fixed.unrecoverable == []
        assert check(repo, CheckOptions(read_data=True)).ok
    contents = [_raw_objects(raw[kind]) for kind in KINDS]
    assert contents[0] == contents[1] == contents[2]  # full redundancy, byte for byte
