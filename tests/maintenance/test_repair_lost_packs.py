"""``repair --index`` takes packs that no target holds intact out of the index, keeping in new
packs every blob that still authenticates in some copy, so that the next backup of the same
files stores the rest again and heals every snapshot that used them."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PASSWORD

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.maintenance import lost_packs
from fogvault.maintenance.check import CheckOptions, check
from fogvault.maintenance.reindex import MovedPack
from fogvault.maintenance.repair import RepairOptions, repair
from fogvault.repo.format import BlobType, id_from_name, pack_name, snapshot_name
from fogvault.repo.index import IndexEntry
from fogvault.repo.repository import Repository
from fogvault.restore.restorer import RestoreOptions, Restorer
from fogvault.storage import open_storage
from fogvault.storage.faulty import Fault, FaultyStorage

TARGETS = ("a", "b")


def _backed_up(repo: Repository, tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    """Random files backed up to targets 'a' and 'b': the snapshot's uid and the contents."""
    src = tmp_path / "src"
    src.mkdir()
    contents = {f"f{i}": random.Random(i).randbytes(150_000) for i in range(4)}
    for name, data in contents.items():
        (src / name).write_bytes(data)
    return Archiver(repo, BackupOptions()).run([str(src)]).snapshot.uid, contents


def _data_pack(repo: Repository) -> tuple[str, list[IndexEntry]]:
    """The data pack with the most blobs: its name and its index entries, by offset."""
    by_pack: dict[bytes, list[IndexEntry]] = {}
    for entry in repo.index:
        if entry.blob_type is BlobType.DATA:
            by_pack.setdefault(entry.pack_id, []).append(entry)
    pack_id, entries = max(by_pack.items(), key=lambda item: len(item[1]))
    return pack_name(pack_id), sorted(entries, key=lambda e: e.offset)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(data)


def _restored(repo: Repository, uid: str, out: Path, tmp_path: Path) -> dict[str, bytes]:
    snapshot = repo.load_snapshot(repo.resolve_snapshot(uid))
    Restorer(repo, snapshot, RestoreOptions(target=str(out))).run()
    base = out / str(tmp_path / "src").lstrip("/")
    return {p.name: p.read_bytes() for p in base.iterdir()}


def _indexed(repo: Repository, name: str) -> bool:
    return repo.index.pack_number(id_from_name(name)) >= 0


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _moved_away(target: Path, name: str) -> Path:
    """Move the target's copy of the pack ``name`` out of its folder, to ``data/zz/``."""
    away = target / "data" / "zz" / name.rsplit("/", 1)[1]
    away.parent.mkdir(exist_ok=True)
    (target / name).rename(away)
    return away


def _copies_left(tmp_path: Path, name: str) -> list[Path]:
    """Every file on the targets named as the pack ``name``, in its folder or not."""
    pack_file = name.rsplit("/", 1)[1]
    return [p for t in TARGETS for p in (tmp_path / t).rglob(pack_file)]


def test_a_pack_missing_everywhere_leaves_the_index_and_the_next_backup_heals(
        make_repo, tmp_path, trust_recent_entries):
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    uid, contents = _backed_up(repo, tmp_path)
    name, entries = _data_pack(repo)
    for target in TARGETS:
        (tmp_path / target / name).unlink()

    found = check(repo)
    assert any(p.startswith(f"pack {name} is missing or damaged on every target: 'fogvault "
                            "repair --index'") for p in found.problems)
    plain = repair(repo, RepairOptions())
    [entry] = plain.unrecoverable
    assert entry.startswith(f"{name}: ") and "repair --index" in entry
    assert _indexed(repo, name)  # still

    before = {t: _files(tmp_path / t) for t in TARGETS}
    planned = repair(repo, RepairOptions(index=True, dry_run=True))
    assert planned.lost_packs == [name] and planned.blobs_lost == len(entries)
    assert {t: _files(tmp_path / t) for t in TARGETS} == before  # a dry run writes nothing

    done = repair(repo, RepairOptions(index=True))
    assert done.lost_packs == [name] and not done.unrecoverable
    assert (done.blobs_salvaged, done.blobs_lost) == (0, len(entries))
    assert all(e.blob_id not in repo.index for e in entries)
    assert not check(repo).ok  # the snapshot lacks those blobs...

    healed = Archiver(repo, BackupOptions()).run([str(tmp_path / "src")])  # ...until this
    assert healed.snapshot.summary.data_blobs_added >= len(entries)
    assert check(repo, CheckOptions(read_data=True)).ok
    assert _restored(repo, uid, tmp_path / "out", tmp_path) == contents  # the old snapshot too
    assert repair(repo, RepairOptions(index=True)).lost_packs == []


def test_blobs_intact_in_some_copy_are_kept_and_the_damaged_copies_deleted(make_repo, tmp_path):
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    uid, contents = _backed_up(repo, tmp_path)
    name, entries = _data_pack(repo)
    first, last = entries[0], entries[-1]
    _flip(tmp_path / "a" / name, first.offset + first.length // 2)  # each copy damaged in a
    _flip(tmp_path / "b" / name, last.offset + last.length // 2)  # different blob

    done = repair(repo, RepairOptions(index=True, read_data=True))
    assert done.lost_packs == [name] and done.ok
    assert (done.blobs_salvaged, done.blobs_lost) == (len(entries), 0)
    assert all(not (tmp_path / t / name).exists() for t in TARGETS)
    assert all(e.blob_id in repo.index for e in entries)
    assert check(repo, CheckOptions(read_data=True)).ok  # whole again without a backup
    assert _restored(repo, uid, tmp_path / "out", tmp_path) == contents


def test_a_blob_damaged_in_every_copy_is_lost_and_the_rest_kept(make_repo, tmp_path):
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    _backed_up(repo, tmp_path)
    name, entries = _data_pack(repo)
    hit = entries[len(entries) // 2]
    for target in TARGETS:
        _flip(tmp_path / target / name, hit.offset + 1)

    done = repair(repo, RepairOptions(index=True, read_data=True))
    assert done.lost_packs == [name] and not done.ok
    assert (done.blobs_salvaged, done.blobs_lost) == (len(entries) - 1, 1)
    assert hit.blob_id not in repo.index
    assert all(e.blob_id in repo.index for e in entries if e is not hit)
    problems = check(repo).problems
    assert problems and all(hit.blob_id.hex()[:16] in p for p in problems)


def test_a_pack_is_not_dropped_while_a_target_cannot_be_reached(make_repo, tmp_path):
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    _backed_up(repo, tmp_path)
    name, _ = _data_pack(repo)
    (tmp_path / "a" / name).unlink()  # 'b' may still hold it
    repo.targets.drop(repo.targets.targets[1], "unreachable")

    done = repair(repo, RepairOptions(index=True))
    assert done.lost_packs == []
    [entry] = done.unrecoverable
    assert entry.startswith(f"{name}: ") and "cannot be reached" in entry
    assert _indexed(repo, name)


def test_damage_recorded_earlier_but_gone_leaves_the_pack_alone(make_repo, tmp_path):
    """Found intact after all: not lost, not unrecoverable, and the damage record is gone (a
    dry run before finds it too, and keeps the record)."""
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    _backed_up(repo, tmp_path)
    name, _ = _data_pack(repo)
    for url in repo.targets.urls:  # as if an earlier read had failed on both
        repo.targets.remember_damage(url, name)

    planned = repair(repo, RepairOptions(index=True, dry_run=True))
    assert planned.ok and planned.found == [name] and repo.targets.damaged
    done = repair(repo, RepairOptions(index=True))
    assert done.ok and done.lost_packs == [] and done.unrecoverable == []
    assert done.found == [name]
    assert all((tmp_path / t / name).exists() for t in TARGETS)
    assert not repo.targets.damaged
    assert check(repo, CheckOptions(read_data=True)).ok


def test_a_plain_repair_finds_a_pack_whose_recorded_damage_is_gone_and_copies_it(
        make_repo, tmp_path):
    """b lacks the pack and a's copy is on record as damaged, but intact (put back since):
    plain repair (no --index) reads it again rather than call the pack unrecoverable, and
    copies it to b in the same run. A dry run finds it too, and keeps the record."""
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    _backed_up(repo, tmp_path)
    name, _ = _data_pack(repo)
    (tmp_path / "b" / name).unlink()
    repo.targets.remember_damage(repo.targets.urls[0], name)

    planned = repair(repo, RepairOptions(dry_run=True))
    assert planned.ok and planned.found == [name] and repo.targets.damaged
    assert [t.copied for t in planned.targets] == [[], [name]] and planned.changes == 1
    done = repair(repo, RepairOptions())
    assert done.ok and done.found == [name] and done.unrecoverable == []
    assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    assert check(repo, CheckOptions(read_data=True)).ok


def test_a_tree_pack_lost_everywhere_and_not_cached_is_stored_again_by_a_backup(
        make_repo, tmp_path, cache_dir, trust_recent_entries):
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    uid, contents = _backed_up(repo, tmp_path)
    [pack_id] = {e.pack_id for e in repo.index if e.blob_type is BlobType.TREE}
    name = pack_name(pack_id)
    (cache_dir / repo.config.repo_id / name.replace("/", "_")).unlink()  # nothing to copy back
    for target in TARGETS:
        (tmp_path / target / name).unlink()

    done = repair(repo, RepairOptions(index=True))
    assert done.lost_packs == [name] and done.blobs_lost > 0
    Archiver(repo, BackupOptions()).run([str(tmp_path / "src")])
    assert check(repo, CheckOptions(read_data=True)).ok
    assert _restored(repo, uid, tmp_path / "out", tmp_path) == contents


def test_a_tree_pack_stays_while_the_cache_is_off(make_repo, tmp_path):
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    _backed_up(repo, tmp_path)
    [pack_id] = {e.pack_id for e in repo.index if e.blob_type is BlobType.TREE}
    name = pack_name(pack_id)
    for target in TARGETS:
        (tmp_path / target / name).unlink()
    repo.cache = None  # --no-cache: the cache folder may hold a good copy

    done = repair(repo, RepairOptions(index=True))
    assert done.lost_packs == [] and _indexed(repo, name)
    [entry] = done.unrecoverable
    assert entry.startswith(f"{name}: a tree pack is not taken out of the index while the "
                            "local cache is off")


def test_an_intact_copy_outside_its_folder_is_moved_home_and_copied_in_one_run(
        make_repo, tmp_path):
    """The only intact copy lies in data/zz/ on b, a's is damaged: the copy is moved into its
    folder, then copied over a's, in the same run, which succeeds. A dry run before it plans
    the move, and calls nothing unrecoverable either."""
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    _backed_up(repo, tmp_path)
    name, entries = _data_pack(repo)
    _flip(tmp_path / "a" / name, entries[0].offset + 1)
    away = _moved_away(tmp_path / "b", name)
    b = repo.targets.urls[1]
    moved = [MovedPack(b, str(away.relative_to(tmp_path / "b")), name)]

    planned = repair(repo, RepairOptions(index=True, read_data=True, dry_run=True))
    assert planned.ok and planned.moved == moved and away.exists()
    assert [t.replaced for t in planned.targets] == [[name], []]  # as the run below
    done = repair(repo, RepairOptions(index=True, read_data=True))
    assert done.ok and done.unrecoverable == [] and done.moved == moved
    assert planned.found == done.found == [name]
    assert done.lost_packs == [] and _indexed(repo, name)
    assert (tmp_path / "b" / name).exists() and not away.exists()
    assert [t.replaced for t in done.targets] == [[name], []]  # a's damaged copy, from b's
    assert check(repo, CheckOptions(read_data=True)).ok


def test_copying_a_found_pack_does_not_read_every_pack_again(make_repo, tmp_path):
    """Under --read-data the first pass reads every copy; the second, which copies the pack
    found outside its folder, only copies: each other pack is read as often as a check
    --read-data reads it (a review found every pack read twice)."""
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    _backed_up(repo, tmp_path)
    name, entries = _data_pack(repo)
    _flip(tmp_path / "a" / name, entries[0].offset + 1)
    _moved_away(tmp_path / "b", name)
    other = next(pack_name(e.pack_id) for e in repo.index
                 if e.blob_type is BlobType.DATA and pack_name(e.pack_id) != name)

    def reads_of_other(run) -> int:
        names: list[str] = []
        storages = [FaultyStorage(open_storage(str(tmp_path / t))) for t in TARGETS]
        for storage in storages:
            storage.inject("read", Fault(hook=lambda method, read: names.append(read),
                                         times=None))
        with Repository.open(storages, PASSWORD, use_cache=False) as opened:
            assert run(opened).ok
        return names.count(other)

    repaired = reads_of_other(lambda r: repair(r, RepairOptions(index=True, read_data=True)))
    assert repaired == reads_of_other(lambda r: check(r, CheckOptions(read_data=True))) > 0


def _damaged_in_and_outside_its_folder(tmp_path: Path, name: str, entries: list[IndexEntry]
                                       ) -> Path:
    """Damage the pack ``name`` in its first blob on 'a', in its folder, and in its last on
    'b', outside its folder (returned): between them, every blob is intact somewhere."""
    _flip(tmp_path / "a" / name, entries[0].offset + entries[0].length // 2)
    away = _moved_away(tmp_path / "b", name)
    _flip(away, entries[-1].offset + entries[-1].length // 2)
    return away


def test_a_damaged_copy_outside_its_folder_is_salvaged_from_and_deleted(
        make_repo, tmp_path, trust_recent_entries):
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    uid, contents = _backed_up(repo, tmp_path)
    name, entries = _data_pack(repo)
    _damaged_in_and_outside_its_folder(tmp_path, name, entries)

    before = {t: _files(tmp_path / t) for t in TARGETS}
    planned = repair(repo, RepairOptions(index=True, read_data=True, dry_run=True))
    assert planned.lost_packs == [name] and planned.ok
    assert (planned.blobs_salvaged, planned.blobs_lost) == (len(entries), 0)
    assert {t: _files(tmp_path / t) for t in TARGETS} == before

    done = repair(repo, RepairOptions(index=True, read_data=True))
    assert done.lost_packs == [name] and done.ok
    assert (done.blobs_salvaged, done.blobs_lost) == (len(entries), 0)
    assert _copies_left(tmp_path, name) == []  # in its folder on 'a', outside it on 'b'
    assert all(e.blob_id in repo.index for e in entries)
    assert check(repo, CheckOptions(read_data=True)).ok
    healed = Archiver(repo, BackupOptions()).run([str(tmp_path / "src")])
    assert healed.snapshot.summary.data_blobs_added == 0  # nothing was lost
    assert check(repo, CheckOptions(read_data=True)).ok
    assert _restored(repo, uid, tmp_path / "out", tmp_path) == contents
    assert repair(repo, RepairOptions(index=True, read_data=True)).lost_packs == []


#: ``repair --index --read-data`` of the targets argv[3:], killed (SIGKILL) once the copy
#: argv[2] is gone, before anything more is written under index/: the new index
_KILLED_REPAIR = """
import os, signal, sys
from pathlib import Path
from fogvault.maintenance.repair import RepairOptions, repair
from fogvault.repo.repository import Repository
from fogvault.storage import open_storage
from fogvault.storage.faulty import Fault, FaultyStorage

away = Path(sys.argv[2])

def die_once_deleted(method, name):
    if not away.exists():
        os.kill(os.getpid(), signal.SIGKILL)

targets = []
for url in sys.argv[3:]:
    storage = FaultyStorage(open_storage(url))
    storage.inject("write", Fault(hook=die_once_deleted, prefix="index/", times=None))
    targets.append(storage)
repair(Repository.open(targets, os.fsencode(sys.argv[1])),
       RepairOptions(index=True, read_data=True))
"""


def test_killed_after_deleting_a_copy_outside_its_folder_a_rerun_finishes(
        make_repo, tmp_path, cli_env, fogvault, reopen):
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    uid, contents = _backed_up(repo, tmp_path)
    name, entries = _data_pack(repo)
    away = _damaged_in_and_outside_its_folder(tmp_path, name, entries)
    old_index = {t: sorted((tmp_path / t / "index").iterdir()) for t in TARGETS}

    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_REPAIR, PASSWORD.decode(), str(away),
         *(str(tmp_path / t) for t in TARGETS)],
        env=cli_env, capture_output=True, timeout=120, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert _copies_left(tmp_path, name) == []  # every copy deleted...
    for target, files in old_index.items():  # ...the old index there, and the salvage's only
        now = set((tmp_path / target / "index").iterdir())
        assert now >= set(files) and len(now - set(files)) == 1

    again = fogvault("-r", str(tmp_path / "a"), "-r", str(tmp_path / "b"), "repair", "--index")
    assert again.returncode == 0, again.stdout
    assert f"take out of the index: {name}".encode() in again.stdout
    assert b"0 chunks lost" in again.stdout  # the killed run had stored them all
    repo = reopen(repo)
    assert check(repo, CheckOptions(read_data=True)).ok
    assert _restored(repo, uid, tmp_path / "out", tmp_path) == contents
    assert not any(p.exists() for files in old_index.values() for p in files)


def test_killed_after_deleting_the_damaged_copies_a_rerun_finishes(make_repo, tmp_path,
                                                                   monkeypatch):
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    _backed_up(repo, tmp_path)
    name, entries = _data_pack(repo)
    for target in TARGETS:
        _flip(tmp_path / target / name, entries[0].offset + 1)

    def killed(*_args: object) -> None:
        raise KeyboardInterrupt  # as if killed before the new index was written

    monkeypatch.setattr(lost_packs, "rewrite_index", killed)
    with pytest.raises(KeyboardInterrupt):
        repair(repo, RepairOptions(index=True, read_data=True))
    monkeypatch.undo()
    assert all(not (tmp_path / t / name).exists() for t in TARGETS)
    again = repair(repo, RepairOptions(index=True))
    assert again.lost_packs == [name] and not again.unrecoverable
    assert all(e.blob_id in repo.index for e in entries[1:])  # salvaged by the first run
    assert repair(repo, RepairOptions(index=True)).lost_packs == []


def test_the_command_from_check_to_a_healing_backup(fogvault, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(random.Random(7).randbytes(300_000))
    repo = ("-r", "a", "-r", "b")
    assert fogvault(*repo, "init").returncode == 0
    assert fogvault(*repo, "backup", str(src)).returncode == 0
    packs = sorted((tmp_path / "a" / "data").rglob("*"), key=lambda p: -p.stat().st_size)
    name = str(packs[0].relative_to(tmp_path / "a"))  # the file's data, not its trees
    for target in TARGETS:
        (tmp_path / target / name).unlink()

    found = fogvault(*repo, "check")
    assert found.returncode == 1 and b"'fogvault repair --index'" in found.stdout
    done = fogvault(*repo, "repair", "--index")
    assert done.returncode == 1, done.stderr
    assert f"take out of the index: {name}".encode() in done.stdout
    assert b" lost: back up the same files again" in done.stdout
    missing = fogvault(*repo, "check")
    assert missing.returncode == 1
    assert b"intact: a backup of the same files stores it again" in missing.stdout  # only that
    assert b"'fogvault repair' copies back" not in missing.stdout  # repair --index has run
    assert fogvault(*repo, "backup", str(src)).returncode == 0
    assert fogvault(*repo, "check", "--read-data").returncode == 0
    assert fogvault(*repo, "repair", "--index").returncode == 0


def _report_lines(stdout: bytes) -> list[str]:
    """The lines of a repair report but its last (the summary, which a dry run words its own
    way), each as a real run words it."""
    lines = stdout.decode().splitlines()[:-1]
    return [line.replace("would copy ", "copied ").replace("would ", "") for line in lines]


@pytest.mark.parametrize("lost", ["salvaged", "missing"])
def test_the_dry_run_predicts_the_pass_that_spreads_the_new_index(
        lost, make_repo, tmp_path, fogvault):
    """One target lacks the index file that lists a lost pack, and so the snapshot that waits
    for it: the real run writes the new index everywhere and then spreads the snapshot in a
    second pass, which the dry run must foresee (same lines, same exit code)."""
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    uid, contents = _backed_up(repo, tmp_path)
    name, entries = _data_pack(repo)
    if lost == "salvaged":  # each copy damaged in a different blob: every chunk kept
        _flip(tmp_path / "a" / name, entries[0].offset + 1)
        _flip(tmp_path / "b" / name, entries[-1].offset + 1)
    else:
        for target in TARGETS:
            (tmp_path / target / name).unlink()
    [listing] = [n for n in repo.live_index_names()
                 if id_from_name(name) in repo.index_file_packs(n)]
    (tmp_path / "b" / listing).unlink()
    (tmp_path / "b" / snapshot_name(uid)).unlink()
    command = ("-r", str(tmp_path / "a"), "-r", str(tmp_path / "b"), "repair", "--index",
               "--read-data")

    before = {t: _files(tmp_path / t) for t in TARGETS}
    planned = fogvault(*command, "--dry-run")
    assert {t: _files(tmp_path / t) for t in TARGETS} == before  # nothing written
    done = fogvault(*command)
    spread = lost == "salvaged"  # else the snapshot uses lost chunks: not spread
    assert planned.returncode == done.returncode == (0 if spread else 1), done.stdout
    assert b"held back" not in planned.stdout
    lines = _report_lines(done.stdout)
    assert _report_lines(planned.stdout) == lines
    says = f"{tmp_path / 'b'}: " + ("copied 1 object (" if spread else "nothing to copy")
    assert any(line.startswith(says) for line in lines), lines
    assert planned.stdout.splitlines()[-1].startswith(b"dry run: ")
    if spread:
        assert check(repo, CheckOptions(read_data=True)).ok
        assert _restored(repo, uid, tmp_path / "out", tmp_path) == contents
    else:  # not 'forgotten while a target was away': forgetting it would lose what it keeps
        for output in (planned.stdout, done.stdout):
            assert b"it uses data no target holds: a backup of the same files" in output
            assert f"repair --snapshots {uid}".encode() in output
            assert b"fogvault forget" not in output
