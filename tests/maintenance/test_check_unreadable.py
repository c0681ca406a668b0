"""check tells a copy it cannot read (permission denied) from a damaged one: unreadable, with
the reason and what to do, not remembered as damage, and never a pack for 'repair --index' to
drop.

The copies are made unreadable for real: ``chmod 000``, with the CLI run as a process that file
modes apply to (as root, one without the capabilities that override them)."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AS_USER, PASSWORD

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.maintenance.check import CheckOptions, check
from fogvault.repo.format import pack_name
from fogvault.repo.repository import Repository
from fogvault.storage import StorageError, open_storage
from fogvault.storage.faulty import Fault, FaultyStorage, permanent

DENIED = "Permission denied"


@pytest.fixture
def two_targets(make_repo, tmp_path):
    """A repository on targets a and b holding one snapshot; returns (repo, urls)."""
    repo = make_repo("a", "b", pack_size=128 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(random.Random(i).randbytes(150_000))
    Archiver(repo, BackupOptions()).run([str(src)])
    return repo, repo.targets.urls


@pytest.fixture
def check_as_user(fogvault):
    """Run ``fogvault check --json`` on the targets as a user that file modes apply to; the
    summary and the process."""
    def run(urls: list[str], *args: str):
        done = fogvault(*(a for url in urls for a in ("-r", url)), "--json", "check", *args,
                        wrap=AS_USER)
        return json.loads(done.stdout.splitlines()[-1]), done

    return run


@contextlib.contextmanager
def _unreadable(*paths: Path) -> Iterator[None]:
    """chmod 000 the files, and give them their mode back."""
    for path in paths:
        path.chmod(0)
    try:
        yield
    finally:
        for path in paths:
            path.chmod(0o600)


def _ledger_damage(tmp_path: Path, repo) -> dict[str, list[str]]:
    ledger = tmp_path / "xdg-state" / "fogvault" / "targets" / f"{repo.config.repo_id}.json"
    targets = json.loads(ledger.read_text())["targets"]
    return {url: entry["damaged"] for url, entry in targets.items()}


def _data_packs(url: str) -> list[Path]:
    return sorted(p for p in (Path(url) / "data").rglob("*") if p.is_file())


@pytest.mark.parametrize("kind", ["pack", "snapshot"])
def test_a_copy_that_cannot_be_read_is_unreadable_not_corrupt(two_targets, check_as_user,
                                                              fogvault, tmp_path, kind):
    """... and the repair check advises (plain for a snapshot, which it always reads; with
    --read-data for a pack) writes it again."""
    repo, (a, b) = two_targets
    folder = "data" if kind == "pack" else "snapshots"
    path = max((p for p in (Path(a) / folder).rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    name = str(path.relative_to(a))
    advised = "repair --read-data" if kind == "pack" else "repair"
    with _unreadable(path):
        summary, done = check_as_user([a, b], "--read-data")
    assert done.returncode == 1, done.stderr
    report, other = summary["targets"]
    assert report["corrupt"] == report["missing"] == [] and not report["ok"]
    assert report["unreadable"] == {name: DENIED}
    assert other["ok"] and other["unreadable"] == {}
    assert summary["problems"] == [
        f"{a}: {name} could not be read ({DENIED}): check could not verify it, which may be "
        f"intact: fix access to it there, then check again; 'fogvault {advised}' would "
        "instead replace it from good copies on the other targets or in the local cache, if "
        "they hold any"]
    assert _ledger_damage(tmp_path, repo) == {a: [], b: []}  # not damage: repair leaves it
    summary, done = check_as_user([a, b], "--read-data")  # access fixed
    assert done.returncode == 0 and summary["ok"]
    with _unreadable(path):
        repaired = fogvault("-r", a, "-r", b, *advised.split(), wrap=AS_USER)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert f"{a}: rewrote 1 unreadable copy" in repaired.stdout.decode()
        assert path.stat().st_mode & 0o777 == 0o600


def test_the_text_report_names_unreadable_copies_apart(two_targets, fogvault):
    _, (a, b) = two_targets
    pack = _data_packs(a)[0]
    with _unreadable(pack):
        done = fogvault("-r", a, "-r", b, "check", "--read-data", wrap=AS_USER)
    assert done.returncode == 1
    out = done.stdout.decode()
    assert f"{a}: SOME COPIES UNREADABLE, " in out and f"{b}: ok, " in out
    assert f"  unreadable: {pack.relative_to(a)} ({DENIED})\n" in out
    assert "corrupt" not in out and "DAMAGED" not in out


def test_a_pack_no_target_can_read_is_not_called_lost_and_repair_index_keeps_it(
        two_targets, check_as_user, fogvault, tmp_path):
    """Unreadable on every target, a pack is no lost pack: neither check nor repair sends the
    user to 'repair --index', which keeps it all the same; repair says to fix access first."""
    repo, (a, b) = two_targets
    pack = _data_packs(a)[0]
    name = str(pack.relative_to(a))
    with _unreadable(pack, Path(b) / name):
        summary, done = check_as_user([a, b], "--read-data")
        assert done.returncode == 1
        assert not any(name in p and "every target" in p for p in summary["problems"])
        assert [t["unreadable"] for t in summary["targets"]] == [{name: DENIED}] * 2
        assert _ledger_damage(tmp_path, repo) == {a: [], b: []}
        for options in (["--index", "--read-data"], ["--read-data"]):
            repaired = fogvault("-r", a, "-r", b, "repair", *options, wrap=AS_USER)
            assert repaired.returncode == 1
            [line] = [x for x in repaired.stdout.decode().splitlines()
                      if x.startswith(f"unrecoverable: {name}")]
            assert "repair again once the copies that could not be read can be" in line, line
            assert "repair --index" not in line and "take out" not in line
            assert line.count(a) == 1 and line.count(b) == 1, line  # each target named once
        assert _ledger_damage(tmp_path, repo) == {a: [], b: []}
    assert pack.exists() and (Path(b) / name).exists()
    summary, done = check_as_user([a, b], "--read-data")
    assert done.returncode == 0 and summary["ok"], summary["problems"]


def test_an_index_file_no_target_can_read_says_to_fix_access_first(two_targets, check_as_user,
                                                                   tmp_path):
    """Loading skips it, as an index file damaged everywhere, but the problem says to fix
    access before 'repair --index' deletes it; neither copy is called corrupt."""
    repo, (a, b) = two_targets
    [index] = [p for p in (Path(a) / "index").iterdir()]
    name = f"index/{index.name}"
    with _unreadable(index, Path(b) / name):
        summary, done = check_as_user([a, b])
    assert done.returncode == 1
    assert not any("damaged on every target" in p for p in summary["problems"])
    assert all(t["corrupt"] == [] for t in summary["targets"])
    assert [t["unreadable"] for t in summary["targets"]] == [{name: DENIED}] * 2
    assert summary["damaged_index_files"] == [name]
    [problem] = [p for p in summary["problems"] if name in p]  # not again, per target
    assert problem.startswith(f"no target gave a good copy of index file {name} ({a}: {DENIED}; "
                              f"{b}: {DENIED}): fix access to it where it could not be read")
    assert _ledger_damage(tmp_path, repo) == {a: [], b: []}


def test_a_tree_no_target_can_read_is_not_called_lost_data(two_targets, fogvault):
    """Marking cannot read a snapshot's tree: the problem says to fix access, not that data
    is lost (no 'repair --index', no 'repair --snapshots', and no 'repair --read-data': no
    target has a copy it could read). Both copies are named, each on its target's line, and
    each warning is given once, though the tree is read twice (batched, then on its own)."""
    repo, (a, b) = two_targets
    [snapshot] = repo.snapshots()
    name = pack_name(repo.index.get(snapshot.tree).pack_id)
    with _unreadable(Path(a) / name, Path(b) / name):
        done = fogvault("-r", a, "-r", b, "check", wrap=AS_USER)
        summary = json.loads(fogvault("-r", a, "-r", b, "--json", "check", wrap=AS_USER)
                             .stdout.splitlines()[-1])
    assert done.returncode == 1
    out = done.stdout.decode()
    assert "no target holds intact" not in out and "repair" not in out
    assert (f"error: snapshot {snapshot.uid}: tree of /: " in out
            and f"{DENIED}: it could not be read, which says nothing of its bytes: fix access "
                "to it, then check again\n" in out)
    for url in (a, b):
        assert (f"{url}: SOME COPIES UNREADABLE\n  unreadable: {name} ({DENIED})\n" in out)
    warnings = done.stderr.decode().splitlines()
    assert sorted(warnings) == sorted({*warnings}) and len(warnings) == 2, warnings
    assert not summary["data_missing"]
    assert [(b["id"], b["unreadable"]) for b in summary["broken_objects"]] == [
        (snapshot.tree.hex(), True)]
    assert [t["unreadable"] for t in summary["targets"]] == [{name: DENIED}] * 2
    assert [t["ok"] for t in summary["targets"]] == [False, False]


def test_a_tree_unreadable_on_one_target_and_damaged_on_the_other_is_named_on_both_lines(
        two_targets, check_as_user):
    """No target gave a good copy: each was tried, so a's unreadable copy is named on a's line
    whatever the order (a review found it was left out when b's copy was damaged, not
    unreadable)."""
    repo, (a, b) = two_targets
    [snapshot] = repo.snapshots()
    name = pack_name(repo.index.get(snapshot.tree).pack_id)
    damaged = bytearray((Path(b) / name).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (Path(b) / name).write_bytes(bytes(damaged))
    with _unreadable(Path(a) / name):
        summary, done = check_as_user([a, b])
    assert done.returncode == 1
    assert summary["targets"][0]["unreadable"] == {name: DENIED}
    assert [b["unreadable"] for b in summary["broken_objects"]] == [True]


def test_a_tree_read_from_another_target_does_not_decide_a_plain_checks_result(
        two_targets, caplog):
    """A plain check reads each tree from one target, the first that works: a's copy could
    not be read, b's was. That is a warning, not a failure: which target is tried first
    follows measured speed, so failing would make the exit code change from run to run with
    nothing changed. --read-data, which reads every copy, names a's. (b is made slow, so that
    a is tried first.)"""
    repo, (a, b) = two_targets
    [snapshot] = repo.snapshots()
    name = pack_name(repo.index.get(snapshot.tree).pack_id)
    denied = FaultyStorage(open_storage(a))
    denied.inject("read", Fault(error=permanent(DENIED), times=None, prefix=name))
    slow = FaultyStorage(open_storage(b))
    slow.inject("*", Fault(delay=0.05, times=None))
    with Repository.open([denied, slow], PASSWORD, use_cache=False) as opened:
        plain = check(opened)
        full = check(opened, CheckOptions(read_data=True))
    assert f"{a} {name}: {DENIED}; trying another target" in caplog.text
    assert plain.ok and [t.unreadable for t in plain.targets] == [{}, {}]
    assert not full.ok and [t.unreadable for t in full.targets] == [{name: DENIED}, {}]
    assert full.problems == [
        f"{a}: {name} could not be read ({DENIED}): check could not verify it, which may be "
        "intact: fix access to it there, then check again; 'fogvault repair --read-data' "
        "would instead replace it from good copies on the other targets or in the local cache, "
        "if they hold any"]


def test_a_copy_stays_unreadable_until_the_part_that_failed_reads(two_targets):
    """A read of one part of a copy failing (a bad sector under one tree) is not undone by a
    read of another part working (the tree beside it): only a read of that part, or of the
    whole copy, makes it readable again. (Any read that worked used to clear the record, and
    check then called the copy fine.) One target, so that every read is of its copy."""
    _, (a, _) = two_targets
    name = _data_packs(a)[0].relative_to(a).as_posix()
    stored = (Path(a) / name).read_bytes()
    failing = FaultyStorage(open_storage(a))
    with Repository.open([failing], PASSWORD, use_cache=False) as opened:
        targets = opened.targets
        for whole in (False, True):
            failing.inject("read", Fault(error=permanent(DENIED), prefix=name))  # one read
            with pytest.raises(StorageError):
                targets.read(name, 0, 100)
            assert targets.unreadable_copies() == {(a, name): DENIED}
            assert targets.read(name, 200, 100) == stored[200:300]
            assert targets.unreadable_copies() == {(a, name): DENIED}  # another part worked
            assert targets.read(name, *(() if whole else (0, 100))) == (
                stored if whole else stored[:100])
            assert targets.unreadable_copies() == {}


def test_repair_index_keeps_an_index_file_while_a_copy_of_it_cannot_be_read(
        two_targets, fogvault, tmp_path):
    """Unreadable on a, damaged on b: 'repair --index' does not delete it (a's copy may be
    intact, as it is here: deleted, what it supersedes would be lost) and says why, recording
    only b's copy as damage; once a's can be read, repair copies it over b's."""
    repo, (a, b) = two_targets
    [index] = (Path(a) / "index").iterdir()
    name = f"index/{index.name}"
    damaged = bytearray(index.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (Path(b) / name).write_bytes(bytes(damaged))
    with _unreadable(index):
        repaired = fogvault("-r", a, "-r", b, "repair", "--index", wrap=AS_USER)
    assert repaired.returncode == 1
    [line] = [x for x in repaired.stdout.decode().splitlines()
              if x.startswith(f"unrecoverable: {name}: ")]
    assert line.startswith(f"unrecoverable: {name}: no target gave a good copy ({a}: {DENIED}; "
                           f"{b}: "), line
    assert f"not deleted while its copy on {a} could not be read: fix access" in line, line
    assert index.exists() and (Path(b) / name).exists()
    assert _ledger_damage(tmp_path, repo) == {a: [], b: [name]}
    fixed = fogvault("-r", a, "-r", b, "repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert (Path(b) / name).read_bytes() == index.read_bytes()


def test_repair_read_data_rewrites_an_unreadable_copy_without_calling_it_damaged(
        two_targets, fogvault, tmp_path):
    """'repair --read-data' writes a pack's copy it cannot read again from the other target,
    and says so as what it was: an unreadable copy rewritten, not a damaged one replaced."""
    repo, (a, b) = two_targets
    path = _data_packs(a)[0]
    name = str(path.relative_to(a))
    with _unreadable(path):
        dry = fogvault("-r", a, "-r", b, "repair", "--read-data", "--dry-run", wrap=AS_USER)
        assert f"{a}: would rewrite 1 unreadable copy (" in dry.stdout.decode(), dry.stdout
        done = fogvault("-r", a, "-r", b, "--json", "repair", "--read-data", wrap=AS_USER)
        assert done.returncode == 0, done.stdout + done.stderr
        report, other = json.loads(done.stdout.splitlines()[-1])["targets"]
        assert report["rewritten"] == [name] and report["replaced"] == report["copied"] == []
        assert other["rewritten"] == other["replaced"] == []
        assert path.stat().st_mode & 0o777 == 0o600  # a new file, readable
        assert path.read_bytes() == (Path(b) / name).read_bytes()
    assert _ledger_damage(tmp_path, repo) == {a: [], b: []}
    text = fogvault("-r", a, "-r", b, "repair", "--read-data")
    assert b"nothing to repair" in text.stdout


def test_check_says_which_damaged_copies_may_be_had_elsewhere(two_targets, fogvault):
    """A copy missing on one target only may be had from the other, which repair copies, and
    check says so on that target's line (JSON ``recoverable``); a data pack missing everywhere
    is not."""
    repo, (a, b) = two_targets
    data_packs = [p for p in _data_packs(b) if repo.cached_copy(str(p.relative_to(b))) is None]
    lost, spare = data_packs[:2]
    names = [str(p.relative_to(b)) for p in (lost, spare)]
    lost.unlink()
    spare.unlink()
    (Path(a) / names[0]).unlink()
    done = fogvault("-r", a, "-r", b, "--json", "check")
    assert done.returncode == 1
    on_a, on_b = json.loads(done.stdout.splitlines()[-1])["targets"]
    assert on_a["missing"] == [names[0]] and on_a["recoverable"] == []
    assert on_b["missing"] == sorted(names) and on_b["recoverable"] == [names[1]]
    text = fogvault("-r", a, "-r", b, "check").stdout.decode()
    assert text.count("may hold a good copy") == 1, text
    assert ("note: another target or the local cache may hold a good copy of 1 of them: "
            "'fogvault repair' copies it here (an index file once the packs it lists are here, "
            "a snapshot once the index is)") in text
    assert fogvault("-r", a, "-r", b, "repair").returncode == 1  # the lost pack
    assert (Path(b) / names[1]).exists()


def test_an_index_file_unreadable_on_one_target_and_damaged_on_the_other_comes_from_the_cache(
        two_targets, fogvault, tmp_path):
    """The local cache's copy of an index file (which hashes to its name) is a good copy:
    check says repair can use it, and repair writes it over the damaged copy and the one that
    could not be read (it said unrecoverable)."""
    repo, (a, b) = two_targets
    assert fogvault("-r", a, "-r", b, "check").returncode == 0  # the CLI's cache holds it
    [index] = (Path(a) / "index").iterdir()
    name = f"index/{index.name}"
    good = index.read_bytes()
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    (Path(b) / name).write_bytes(bytes(damaged))
    with _unreadable(index):
        done = fogvault("-r", a, "-r", b, "--json", "check", wrap=AS_USER)
        summary = json.loads(done.stdout.splitlines()[-1])
        assert done.returncode == 1
        assert summary["targets"][1]["corrupt"] == summary["targets"][1]["recoverable"] == [name]
        [problem] = summary["problems"]
        assert problem.endswith("'fogvault repair' would instead replace it from good copies "
                                "on the other targets or in the local cache, if they hold "
                                "any"), problem
        repaired = fogvault("-r", a, "-r", b, "repair", wrap=AS_USER)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        out = repaired.stdout.decode()
        assert f"{a}: rewrote 1 unreadable copy" in out and f"{b}: replaced 1 damaged copy" in out
    assert index.read_bytes() == (Path(b) / name).read_bytes() == good
    assert _ledger_damage(tmp_path, repo) == {a: [], b: []}
    assert fogvault("-r", a, "-r", b, "check", "--read-data").returncode == 0


def test_a_lock_no_target_can_read_is_no_problem_of_check(two_targets, fogvault, tmp_path):
    """A killed backup's lock, unreadable everywhere: the lock scan warns of it, but locks come
    and go and are no copies to verify (nor to repair): check passes."""
    _, (a, b) = two_targets
    src = tmp_path / "src"
    (src / "new").write_bytes(b"new")
    killed = fogvault("-r", a, "-r", b, "backup", str(src),
                      env={"FOGVAULT_CRASH_AFTER_WRITES": "2"})
    assert killed.returncode == -9
    locks = [*Path(a, "locks").iterdir(), *Path(b, "locks").iterdir()]
    assert len(locks) == 2
    with _unreadable(*locks):
        done = fogvault("-r", a, "-r", b, "check", wrap=AS_USER)
    assert done.returncode == 0, done.stdout + done.stderr
    assert b"no errors were found" in done.stdout
