"""``repair --snapshots``: data lost on every target (a pack and the index files listing it
deleted on both targets, the other packs listed again by ``repair --index``) is cut out of
copies of the snapshots that used it; the rest restores as it was, and check and prune run
again."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PASSWORD

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import FogVaultError, UsageError
from fogvault.maintenance.check import check
from fogvault.maintenance.copy import CopyOptions, copy
from fogvault.maintenance.prune import prune
from fogvault.maintenance.repair import RepairOptions, repair
from fogvault.maintenance.repair_snapshots import (
    RepairSnapshotsOptions,
    _warnings,
    repair_snapshots,
)
from fogvault.maintenance.rewrite import RewriteOptions, rewrite
from fogvault.maintenance.tag import TagOptions, tag
from fogvault.repo.format import BlobType, pack_name
from fogvault.repo.repository import Repository, is_damage
from fogvault.repo.snapshot import Snapshot, SnapshotSummary, new_uid
from fogvault.restore.restorer import RestoreOptions, Restorer
from fogvault.storage import Fault, FaultyStorage, open_storage
from fogvault.storage.faulty import permanent
from fogvault.treewalk import walk
from fogvault.warning_list import MAX_WARNINGS

TARGETS = ("one", "two")


def backup(repo: Repository, src: Path) -> Snapshot:
    return Archiver(repo, BackupOptions()).run([str(src)]).snapshot


def write_files(src: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)


def chunk_spans(repo: Repository, snapshot: Snapshot, src: Path
                ) -> dict[str, list[tuple[bytes, int, int]]]:
    """Each file of ``snapshot`` (relative to ``src``) as (chunk id, offset, length) spans."""
    spans = {}
    for path, node in walk(repo, snapshot.tree):
        if node.type == "file":
            offset, spans_of = 0, []
            for blob_id in node.content:
                length = repo.index.get(blob_id).raw_length
                spans_of.append((blob_id, offset, length))
                offset += length
            spans[str(Path(path.decode()).relative_to(src))] = spans_of
    return spans


def lose_pack(repo: Repository, tmp_path: Path, pack_id: bytes) -> set[bytes]:
    """Delete ``pack_id`` and every index file listing it on both targets (the local cache
    cannot heal it: the tests reopen with use_cache=False); returns the pack's blob ids."""
    lost = {e.blob_id for e in repo.index if e.pack_id == pack_id}
    listing = [n for n in repo.live_index_names() if pack_id in repo.index_file_packs(n)]
    assert listing
    for target in TARGETS:
        (tmp_path / target / pack_name(pack_id)).unlink()
        for name in listing:
            (tmp_path / target / name).unlink()
    return lost


def reopened_and_reindexed(tmp_path: Path) -> Repository:
    """The repository as the next command sees it, after 'repair --index' listed again the
    packs that shared an index file with the lost pack."""
    repo = Repository.open([str(tmp_path / t) for t in TARGETS], PASSWORD, use_cache=False)
    assert repair(repo, RepairOptions(index=True)).ok
    return repo


def restored(repo: Repository, snapshot: Snapshot, src: Path, out: Path) -> dict[str, bytes]:
    Restorer(repo, snapshot, RestoreOptions(target=str(out))).run()
    base = out / str(src).lstrip("/")
    return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def objects(tmp_path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(tmp_path)): p.read_bytes() for t in TARGETS
            for p in (tmp_path / t).rglob("*") if p.is_file() and "locks" not in p.parts}


@pytest.fixture
def damaged_data(make_repo: Callable[..., Repository], tmp_path: Path):
    """An undamaged snapshot of ``other``, then a snapshot of ``src`` whose data pack holding
    a chunk of ``big`` is lost; returns (repo, src, files, spans, lost blobs, the two uids)."""
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    other = tmp_path / "other"
    write_files(other, {"kept": random.Random(1).randbytes(50_000)})
    untouched = backup(repo, other)
    src = tmp_path / "src"
    rng = random.Random(2)
    files = {"big": rng.randbytes(700_000), "small": rng.randbytes(3_000),
             "sub/mid": rng.randbytes(300_000), "empty": b""}
    write_files(src, files)
    damaged = backup(repo, src)
    spans = chunk_spans(repo, damaged, src)
    pack_id = repo.index.get(spans["big"][2][0]).pack_id  # a chunk in the middle
    lost = lose_pack(repo, tmp_path, pack_id)
    repo.close()
    return reopened_and_reindexed(tmp_path), src, files, spans, lost, untouched.uid, damaged.uid


def kept_bytes(data: bytes, spans: list[tuple[bytes, int, int]], lost: set[bytes]) -> bytes:
    return b"".join(data[o:o + n] for blob_id, o, n in spans if blob_id not in lost)


def test_lost_chunks_are_cut_and_the_rest_restores(damaged_data, tmp_path):
    repo, src, files, spans, lost, untouched, damaged = damaged_data
    assert not check(repo).ok
    with pytest.raises(FogVaultError, match="prune stopped before deleting anything"):
        prune(repo)
    result = repair_snapshots(repo, RepairSnapshotsOptions())
    assert result.intact == 1  # the snapshot of 'other'
    [done] = result.repaired
    assert done.old_uid == damaged and not done.saved_before and done.kept_original is None
    cut_files = {name for name, s in spans.items() if any(b in lost for b, _, _ in s)}
    assert "big" in cut_files and {str(src / n) for n in cut_files} == {c.path for c in done.cuts}
    by_uid = {s.uid: s for s in repo.snapshots()}
    assert set(by_uid) == {untouched, damaged, done.new_uid}  # the original stays
    copy, original = by_uid[done.new_uid], by_uid[damaged]
    assert copy.tags == ["repaired"] and (copy.time, copy.paths, copy.host, copy.parent) == (
        original.time, original.paths, original.host, original.parent)
    expected = {name: kept_bytes(data, spans[name], lost) if name in cut_files else data
                for name, data in files.items()}
    assert restored(repo, copy, src, tmp_path / "out") == expected
    assert copy.summary.total_bytes == sum(map(len, expected.values()))
    assert copy.summary.files == 4 and copy.summary.dirs == original.summary.dirs
    [big] = [c for c in done.cuts if c.path == str(src / "big")]
    big_lost = sum(b in lost for b, _, _ in spans["big"])
    assert copy.warnings[:len(done.cuts)] == [c.describe() for c in done.cuts]
    assert big.describe() == (f"{src}/big: {big_lost} of {len(spans['big'])} chunks lost, "
                              f"{len(expected['big'])} bytes kept")
    # the original still fails; a second run saves nothing new, --forget then deletes it
    again = repair_snapshots(repo, RepairSnapshotsOptions())
    assert [(r.new_uid, r.saved_before) for r in again.repaired] == [(done.new_uid, True)]
    assert (again.intact, again.already_repaired) == (1, 1)  # the copy is not counted intact
    assert {s.uid for s in repo.snapshots()} == {untouched, damaged, done.new_uid}
    forgot = repair_snapshots(repo, RepairSnapshotsOptions(forget=True))
    assert [(r.new_uid, r.saved_before) for r in forgot.repaired] == [(done.new_uid, True)]
    assert {s.uid for s in repo.snapshots()} == {untouched, done.new_uid}
    assert check(repo).ok
    prune(repo)
    assert check(repo).ok
    assert restored(repo, copy, src, tmp_path / "out2") == expected
    last = repair_snapshots(repo, RepairSnapshotsOptions(forget=True))
    assert (last.repaired, last.intact, last.already_repaired) == ([], 1, 1)


@pytest.mark.parametrize("retag", [TagOptions(remove=["repaired"]), TagOptions(set=["other"])],
                         ids=["remove", "set"])
def test_a_copy_the_user_retagged_is_found_by_the_next_run(damaged_data, retag):
    """The next run knows the copy by what it holds (time, host, user, paths, tree), not by
    the tags the user may change: it saves no second copy, and does not count it intact."""
    repo, _, _, _, _, untouched, damaged = damaged_data
    [first] = repair_snapshots(repo, RepairSnapshotsOptions()).repaired
    [retagged] = tag(repo, dataclasses.replace(retag, uids=[first.new_uid])).changed
    again = repair_snapshots(repo, RepairSnapshotsOptions())
    assert [(r.old_uid, r.new_uid, r.saved_before) for r in again.repaired] == [
        (damaged, retagged.new_uid, True)]
    assert (again.intact, again.already_repaired) == (1, 1)
    assert {s.uid for s in repo.snapshots()} == {untouched, damaged, retagged.new_uid}
    forgot = repair_snapshots(repo, RepairSnapshotsOptions(forget=True))
    assert [(r.new_uid, r.saved_before) for r in forgot.repaired] == [(retagged.new_uid, True)]
    by_uid = {s.uid: s for s in repo.snapshots()}
    assert set(by_uid) == {untouched, retagged.new_uid}
    assert by_uid[retagged.new_uid].tags == retagged.tags  # the user's tags stay
    assert check(repo).ok


def test_snapshots_alike_but_for_their_tags_each_get_a_copy_with_theirs(damaged_data):
    """A twin of the damaged snapshot with other tags (as a 'tag' killed before it deleted
    the old manifest leaves): the copy the first run saved of one is not the other's, or
    --forget would delete the other and its tags with it."""
    repo, _, _, _, _, untouched, damaged = damaged_data
    original = repo.load_snapshot(damaged)
    twin = dataclasses.replace(original, uid=new_uid(), tags=["weekly"], original=damaged)
    repo.save_snapshot_copy(twin, repo.targets.active())
    [first] = repair_snapshots(repo, RepairSnapshotsOptions(uids=[damaged])).repaired
    both = repair_snapshots(repo, RepairSnapshotsOptions(forget=True))
    copies = {r.old_uid: (r.new_uid, r.saved_before) for r in both.repaired}
    assert copies[damaged] == (first.new_uid, True) and not copies[twin.uid][1]
    assert both.already_repaired == 1  # the first run's copy, chosen too
    assert sorted(s.tags for s in repo.snapshots() if s.uid != untouched) == [
        ["repaired"], ["repaired", "weekly"]]


def untagged(repo: Repository, uids: list[str]) -> dict[str, str]:
    """``tag --remove repaired`` on ``uids``, as a user may: old uid -> new uid."""
    changed = tag(repo, TagOptions(remove=["repaired"], uids=uids)).changed
    return {c.old_uid: c.new_uid for c in changed}


@pytest.mark.parametrize("twin_tags", [["weekly"], []], ids=["other-tags", "same-tags"])
def test_twins_whose_copies_the_user_untagged_get_no_second_copies(damaged_data, twin_tags):
    """Twins of the damaged snapshot: with other tags (as a 'tag' killed before it deleted the
    old manifest leaves) each gets a copy that names it in repaired_from; with the same tags (a
    summary-only rewrite beside its original) they share one. Untagged, each copy is still
    found: a rerun saves nothing, and --forget leaves a copy with each twin's tags. (With other
    tags, the tags were all that told the copies apart: once 'repaired' was removed, a rerun
    saved a second copy of each.)"""
    repo, _, _, _, _, untouched, damaged = damaged_data
    original = repo.load_snapshot(damaged)
    twin = dataclasses.replace(original, uid=new_uid(), tags=twin_tags, original=damaged)
    repo.save_snapshot_copy(twin, repo.targets.active())
    first = {r.old_uid: r.new_uid for r in repair_snapshots(repo, RepairSnapshotsOptions()
                                                             ).repaired}
    assert set(first) == {damaged, twin.uid}
    assert len(set(first.values())) == (2 if twin_tags else 1)
    renamed = untagged(repo, sorted(set(first.values())))
    again = repair_snapshots(repo, RepairSnapshotsOptions(forget=True))
    assert sorted((r.old_uid, r.new_uid, r.saved_before) for r in again.repaired) == sorted(
        (old, renamed[new], True) for old, new in first.items())
    assert (again.intact, again.already_repaired) == (1, len(renamed))
    by_uid = {s.uid: s for s in repo.snapshots()}
    assert set(by_uid) == {untouched, *renamed.values()}
    assert sorted(by_uid[uid].tags for uid in renamed.values()) == (
        [[], twin_tags] if twin_tags else [[]])
    named = {old: by_uid[renamed[new]].repaired_from for old, new in first.items()}
    assert set(named.values()) <= {damaged, twin.uid}
    if twin_tags:
        assert named == {damaged: damaged, twin.uid: twin.uid}
    assert check(repo).ok


def test_an_untagged_copy_whose_original_is_forgotten_counts_as_already_repaired(damaged_data):
    """Once its original is forgotten, only repaired_from tells the copy from a whole snapshot
    (its 'repaired' tag, removed, told it before: it was counted intact)."""
    repo, _, _, _, _, untouched, damaged = damaged_data
    [done] = repair_snapshots(repo, RepairSnapshotsOptions(forget=True)).repaired
    [copy_uid] = untagged(repo, [done.new_uid]).values()
    assert {s.uid for s in repo.snapshots()} == {untouched, copy_uid}
    again = repair_snapshots(repo, RepairSnapshotsOptions())
    assert (again.repaired, again.intact, again.already_repaired) == ([], 1, 1)
    assert repo.load_snapshot(copy_uid).repaired_from == damaged


@pytest.mark.parametrize("with_its_copy", [True, False], ids=["with-its-copy", "alone"])
def test_an_original_retagged_after_its_repair(damaged_data, with_its_copy):
    """Retagged, the original has a new uid, which its copy does not name. Retagged along with
    its copy (the same tags), it takes that copy: deleting it loses nothing. Retagged alone, it
    gets a copy of its own with its tags (it took the earlier copy, and --forget deleted the
    only snapshot with the tag 'keep')."""
    repo, _, _, _, _, untouched, damaged = damaged_data
    [done] = repair_snapshots(repo, RepairSnapshotsOptions()).repaired
    retag = [damaged, done.new_uid] if with_its_copy else [damaged]
    renamed = {c.old_uid: c.new_uid for c in tag(repo, TagOptions(add=["keep"], uids=retag)
                                                 ).changed}
    again = repair_snapshots(repo, RepairSnapshotsOptions(forget=True))
    [repaired] = again.repaired
    assert (repaired.old_uid, repaired.saved_before) == (renamed[damaged], with_its_copy)
    if with_its_copy:
        assert repaired.new_uid == renamed[done.new_uid]
    left = {s.uid: s for s in repo.snapshots() if s.uid != untouched}
    assert repaired.new_uid in left and left[repaired.new_uid].tags == ["keep", "repaired"]
    assert sorted(s.tags for s in left.values()) == (
        [["keep", "repaired"]] if with_its_copy else [["keep", "repaired"], ["repaired"]])


def test_copies_saved_before_repaired_from_are_still_found_and_counted(damaged_data):
    """Copies an earlier version saved (no repaired_from, tagged 'repaired') of twins that
    differ in their tags count as already repaired by their tag; untagged, each is still found
    by its tags, 'repaired' aside: a rerun saves no other, and --forget deletes the originals.
    (Their tags less 'repaired' did not count: a twin with other tags made the rerun save a
    second copy of each.)"""
    repo, _, _, _, _, untouched, damaged = damaged_data
    twin = dataclasses.replace(repo.load_snapshot(damaged), uid=new_uid(), tags=["weekly"],
                               original=damaged)
    repo.save_snapshot_copy(twin, repo.targets.active())
    legacy = {}
    for repaired in repair_snapshots(repo, RepairSnapshotsOptions()).repaired:
        made = dataclasses.replace(repo.load_snapshot(repaired.new_uid), uid=new_uid(),
                                   repaired_from=None)
        repo.save_snapshot_copy(made, repo.targets.active())
        repo.delete_snapshot(repaired.new_uid)
        legacy[repaired.old_uid] = made.uid
    counted = repair_snapshots(repo, RepairSnapshotsOptions(uids=list(legacy.values())))
    assert (counted.repaired, counted.intact, counted.already_repaired) == ([], 0, 2)
    renamed = untagged(repo, list(legacy.values()))
    again = repair_snapshots(repo, RepairSnapshotsOptions(forget=True))
    assert sorted((r.old_uid, r.new_uid, r.saved_before) for r in again.repaired) == sorted(
        (old, renamed[new], True) for old, new in legacy.items())
    by_uid = {s.uid: s for s in repo.snapshots()}
    assert set(by_uid) == {untouched, *renamed.values()}
    assert sorted(by_uid[uid].tags for uid in renamed.values()) == [[], ["weekly"]]


def test_a_copy_repaired_again_names_that_copy(damaged_data, tmp_path):
    """More is lost after the original was forgotten: the copy gets a copy that names it (not
    the original), which the next run finds, deleting the first copy with --forget."""
    repo, _, _, spans, lost, untouched, damaged = damaged_data
    [first] = repair_snapshots(repo, RepairSnapshotsOptions(forget=True)).repaired
    assert repo.load_snapshot(first.new_uid).repaired_from == damaged
    more = next(repo.index.get(b).pack_id for b, _, _ in spans["sub/mid"] if b not in lost)
    lose_pack(repo, tmp_path, more)
    repo.close()
    repo = reopened_and_reindexed(tmp_path)
    [second] = repair_snapshots(repo, RepairSnapshotsOptions()).repaired
    assert (second.old_uid, second.saved_before) == (first.new_uid, False)
    assert repo.load_snapshot(second.new_uid).repaired_from == first.new_uid
    third = repair_snapshots(repo, RepairSnapshotsOptions(forget=True))
    assert [(r.old_uid, r.new_uid, r.saved_before) for r in third.repaired] == [
        (first.new_uid, second.new_uid, True)]
    assert {s.uid for s in repo.snapshots()} == {untouched, second.new_uid}
    assert check(repo).ok


def test_tag_rewrite_and_copy_keep_repaired_from(damaged_data, make_repo, tmp_path):
    """What is left of a repaired copy after tag, rewrite (counting a summary anew or taking
    paths out) and copy into another repository still names what it was repaired from, and
    counts as already repaired there."""
    repo, src, _, _, _, untouched, damaged = damaged_data
    [done] = repair_snapshots(repo, RepairSnapshotsOptions(forget=True)).repaired
    [tagged] = tag(repo, TagOptions(set=["mine"], uids=[done.new_uid])).changed
    # a summary that does not match the trees, for --snapshot-summary to count anew
    wrong = dataclasses.replace(repo.load_snapshot(tagged.new_uid), uid=new_uid(),
                                summary=SnapshotSummary())
    repo.save_snapshot_copy(wrong, repo.targets.active())
    [recounted] = rewrite(repo, RewriteOptions(snapshot_summary=True, uids=[wrong.uid],
                                               forget=True)).rewritten
    [cut] = rewrite(repo, RewriteOptions(excludes=[str(src / "small")],
                                         uids=[recounted.new_uid], forget=True)).rewritten
    assert cut.removed == [str(src / "small")]
    # the summary-only rewrite's copy (forgotten by the second rewrite) kept it for the second
    assert {s.uid: s.repaired_from for s in repo.snapshots() if s.uid != untouched} == {
        tagged.new_uid: damaged, cut.new_uid: damaged}
    elsewhere = make_repo("elsewhere")
    [copied] = copy(repo, elsewhere, CopyOptions(uids=[cut.new_uid])).copied
    assert elsewhere.load_snapshot(copied.uid).repaired_from == damaged
    there = repair_snapshots(elsewhere, RepairSnapshotsOptions())
    assert (there.repaired, there.intact, there.already_repaired) == ([], 0, 1)
    here = repair_snapshots(repo, RepairSnapshotsOptions())
    assert (here.repaired, here.intact, here.already_repaired) == ([], 1, 2)


def test_a_dry_run_writes_nothing(damaged_data, tmp_path):
    repo, _, _, _, _, _, damaged = damaged_data
    before = objects(tmp_path)
    result = repair_snapshots(repo, RepairSnapshotsOptions(dry_run=True, forget=True))
    assert [r.old_uid for r in result.repaired] == [damaged] and result.dry_run
    assert objects(tmp_path) == before


def damage_pack(repo: Repository, tmp_path: Path, pack_id: bytes) -> None:
    """Flip a byte of every blob of ``pack_id`` on both targets: it stays indexed, and no
    copy reads."""
    for target in TARGETS:
        path = tmp_path / target / pack_name(pack_id)
        data = bytearray(path.read_bytes())
        for entry in (e for e in repo.index if e.pack_id == pack_id):
            data[entry.offset + entry.length // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["deleted", "damaged"])
def test_lost_trees_leave_empty_folders_and_an_empty_root(make_repo, tmp_path, how):
    """The first backup's tree pack is lost (deleted with its index files, or damaged on
    every target): its root is, and so is the tree of 'sub', which the second backup reuses
    (only its root changed)."""
    repo = make_repo(*TARGETS)
    src = tmp_path / "src"
    files = {"a": b"A" * 20_000, "sub/b": b"B" * 20_000, "sub/deeper/c": b"C" * 10}
    write_files(src, files)
    first = backup(repo, src)
    write_files(src, {"later": b"L" * 5_000})
    second = backup(repo, src)
    tree_packs = {e.pack_id for e in repo.index if e.blob_type is BlobType.TREE
                  and e.blob_id == first.tree}
    [first_trees] = tree_packs
    if how == "deleted":
        lose_pack(repo, tmp_path, first_trees)
        repo.close()
        repo = reopened_and_reindexed(tmp_path)
    else:
        damage_pack(repo, tmp_path, first_trees)
        repo.close()
        repo = Repository.open([str(tmp_path / t) for t in TARGETS], PASSWORD,
                               use_cache=False)
    result = repair_snapshots(repo, RepairSnapshotsOptions(forget=True))
    copies = {r.old_uid: r for r in result.repaired}
    assert set(copies) == {first.uid, second.uid}
    assert [(c.path, c.kind) for c in copies[first.uid].cuts] == [("/", "dir")]
    assert [(c.path, c.kind) for c in copies[second.uid].cuts] == [(f"{src}/sub", "dir")]
    reason = "is not in the index" if how == "deleted" else "authentication failed"
    assert reason in copies[second.uid].cuts[0].reason
    by_uid = {s.uid: s for s in repo.snapshots()}
    assert set(by_uid) == {copies[first.uid].new_uid, copies[second.uid].new_uid}
    empty = by_uid[copies[first.uid].new_uid]
    assert list(walk(repo, empty.tree)) == []
    assert (empty.summary.files, empty.summary.dirs, empty.summary.total_bytes) == (0, 0, 0)
    later = by_uid[copies[second.uid].new_uid]
    out = tmp_path / "out"
    assert restored(repo, later, src, out) == {"a": files["a"], "later": b"L" * 5_000}
    assert (out / str(src).lstrip("/") / "sub").is_dir()
    assert not any((out / str(src).lstrip("/") / "sub").iterdir())
    assert (later.summary.files, later.summary.dirs) == (2, 2)  # src and the empty sub
    assert check(repo).ok
    prune(repo)
    assert check(repo).ok


def test_selection_options_are_checked(make_repo):
    with pytest.raises(UsageError, match="not both"):
        repair_snapshots(make_repo(), RepairSnapshotsOptions(uids=["ab"], host="h"))


def test_the_cuts_come_before_a_full_list_of_warnings_which_counts_on():
    full = [f"w{i}" for i in range(MAX_WARNINGS)] + ["... and 7 more warnings"]
    merged = _warnings(["cut1", "cut2"], full)
    assert merged[:3] == ["cut1", "cut2", "w0"] and len(merged) == MAX_WARNINGS + 1
    assert merged[-1] == "... and 9 more warnings"  # w998, w999 and the 7 before
    assert _warnings(["cut"], ["w"]) == ["cut", "w"]


@pytest.mark.parametrize(("args", "says"), [
    (["repair", "abcd"], "snapshot uids, --forget, --host, --tag and --path go with --snapshots"),
    (["repair", "--forget"],
     "snapshot uids, --forget, --host, --tag and --path go with --snapshots"),
    (["repair", "--snapshots", "--index"],
     "--snapshots does only that: give --index or --read-data in a run of their own, before "
     "it"),
    (["repair", "--snapshots", "abcd", "--tag", "t"],
     "give snapshot uids or --host/--tag/--path filters, not both"),
])
def test_the_command_refuses_options_that_do_not_go_together(fogvault, args, says):
    done = fogvault(*args, "-r", "nowhere")
    assert (done.returncode, done.stdout, done.stderr.decode()) == (2, b"", f"error: {says}\n")


def test_the_command(fogvault, make_repo, tmp_path):
    src = tmp_path / "src"
    write_files(src, {"big": random.Random(3).randbytes(600_000), "small": b"intact"})
    make_repo(*TARGETS, pack_size=128 * 1024).close()  # small chunks and packs
    repo_args = ["--no-cache", "-r", "one", "-r", "two"]
    assert fogvault("backup", *repo_args, str(src), "--tag", "daily").returncode == 0
    with Repository.open([str(tmp_path / t) for t in TARGETS], PASSWORD,
                         use_cache=False) as repo:
        repo.load_index()
        [original] = repo.snapshots()
        nodes = {p.rsplit(b"/", 1)[1]: n for p, n in walk(repo, original.tree)}
        [small_pack] = {repo.index.get(b).pack_id for b in nodes[b"small"].content}
        big_packs = {repo.index.get(b).pack_id for b in nodes[b"big"].content}
        lose_pack(repo, tmp_path, min(big_packs - {small_pack}))
    assert fogvault("repair", *repo_args, "--index").returncode == 0
    checked = fogvault("check", *repo_args)
    assert checked.returncode == 1
    # repair and repair --index have done what they can: check no longer sends the user there
    assert checked.stdout.decode().splitlines()[-2] == (
        "the snapshots named above use data no target holds intact: a backup of the same files "
        "stores it again, and 'fogvault repair --snapshots' saves copies of the snapshots "
        "without what stays lost")
    before = objects(tmp_path)
    planned = fogvault("repair", *repo_args, "--snapshots", "--dry-run", "--forget")
    assert planned.returncode == 0, planned.stderr
    lines = planned.stdout.decode().splitlines()
    assert lines[0].startswith(f"{original.uid} -> ") and ": 1 file cut; 2 files, " in lines[0]
    assert lines[1].startswith(f"  {src}/big: ") and lines[1].endswith(" bytes kept")
    assert lines[-1] == "would repair 1 snapshot, would forget up to 1 original, 0 intact"
    assert objects(tmp_path) == before
    done = fogvault("repair", *repo_args, "--snapshots", "--forget", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.decode().splitlines()[-1])
    assert summary["message_type"] == "summary" and summary["intact"] == 0
    assert summary["already_repaired"] == 0
    [repaired] = summary["repaired"]
    assert repaired["old_uid"] == original.uid and repaired["original_kept"] is None
    assert [c["path"] for c in repaired["cuts"]] == [f"{src}/big"]
    listed = json.loads(fogvault("snapshots", *repo_args, "--tag", "repaired", "--json").stdout)
    assert [(s["uid"], s["tags"]) for s in listed] == [
        (repaired["new_uid"], ["daily", "repaired"])]
    assert fogvault("check", *repo_args).returncode == 0
    assert fogvault("prune", *repo_args).returncode == 0
    restore = fogvault("restore", *repo_args, "--version", "latest", "--target", "out")
    assert restore.returncode == 0, restore.stderr
    assert (tmp_path / "out" / str(src).lstrip("/") / "small").read_bytes() == b"intact"
    again = fogvault("repair", *repo_args, "--snapshots")
    assert again.stdout.decode().splitlines() == ["repaired 0 snapshots, 0 intact, 1 already "
                                                  "repaired (earlier runs' copies)"]


def test_a_tree_a_failing_target_may_hold_is_not_cut(make_repo, tmp_path):
    """The root's pack is gone from 'one' and 'two' fails to read packs: the tree may be
    intact there, so the run stops and changes nothing."""
    repo = make_repo(*TARGETS)
    src = tmp_path / "src"
    write_files(src, {"a": b"A" * 1000})
    snapshot = backup(repo, src)
    (tmp_path / "one" / pack_name(repo.index.get(snapshot.tree).pack_id)).unlink()
    repo.close()
    failing = FaultyStorage(open_storage(str(tmp_path / "two")))
    failing.inject("read", Fault(error=permanent(), times=None, prefix="data/"))
    before = objects(tmp_path)
    with Repository.open([str(tmp_path / "one"), failing], PASSWORD, use_cache=False) as repo:
        with pytest.raises(FogVaultError) as raised:
            repair_snapshots(repo, RepairSnapshotsOptions(forget=True))
        assert not is_damage(raised.value)
    assert objects(tmp_path) == before


def test_refused_while_packs_no_index_lists_may_hold_what_is_lost(
        make_repo: Callable[..., Repository], tmp_path: Path):
    """An index file lost on every target, its pack still there: cutting what the snapshot
    lacks, then pruning, would destroy data that 'repair --index' lists again."""
    repo = make_repo(*TARGETS, pack_size=128 * 1024)
    src = tmp_path / "src"
    write_files(src, {"f": random.Random(3).randbytes(200_000)})
    backup(repo, src)
    for target in TARGETS:
        for index_file in (tmp_path / target / "index").iterdir():
            index_file.unlink()
    repo.close()
    repo = Repository.open([str(tmp_path / t) for t in TARGETS], PASSWORD, use_cache=False)
    before = objects(tmp_path)
    with pytest.raises(FogVaultError, match="run 'fogvault repair --index' first"):
        repair_snapshots(repo, RepairSnapshotsOptions(forget=True))
    assert objects(tmp_path) == before
    assert repair(repo, RepairOptions(index=True)).ok
    assert check(repo).ok
