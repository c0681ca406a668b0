"""``copy``: snapshots of one repository saved in another, between repositories that share the
identity key (``init --copy-chunker-params``) and unrelated ones; through the real CLI where the
exit codes and messages matter, the library elsewhere."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from conftest import AS_USER, FAST_KDF, PASSWORD

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.maintenance.check import CheckOptions, check
from fogvault.maintenance.copy import CopyOptions, CopyResult, copy
from fogvault.maintenance.rewrite import RewriteOptions, rewrite
from fogvault.maintenance.tag import TagOptions, tag
from fogvault.repo.config import RepoConfig
from fogvault.repo.format import BlobType, pack_name
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, new_uid
from fogvault.storage import open_storage
from fogvault.storage.faulty import Fault, FaultyStorage
from fogvault.treewalk import walk
from tests.restore.test_roundtrip import assert_same_tree, restored_root

OTHER_PASSWORD = b"another password for the copy"
#: the CLI's source password comes from here (FOGVAULT_PASSWORD is the destination's)
SOURCE_ENV = {"FOGVAULT_FROM_PASSWORD": PASSWORD.decode()}


def make_data(root: Path) -> Path:
    """Files of several chunks (small chunks: conftest), an empty one, a hardlink, a symlink,
    a folder with its own mode and times."""
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(700_000))
    (root / "docs" / "notes.txt").write_text("notes\n" * 100)
    (root / "docs" / "empty").write_bytes(b"")
    (root / "docs" / "deep" / "same.bin").write_bytes((root / "big.bin").read_bytes()[:300_000])
    os.link(root / "docs" / "notes.txt", root / "docs" / "hardlink.txt")
    os.symlink("../big.bin", root / "docs" / "link")
    os.chmod(root / "docs" / "deep", 0o750)
    os.utime(root / "docs" / "notes.txt", ns=(1_500_000_000_000_000_000,) * 2)
    return root


def back_up(repo: Repository, path: Path, **options: object) -> Snapshot:
    return Archiver(repo, BackupOptions(**options)).run([str(path)]).snapshot  # type: ignore[arg-type]


def twin_of(source: Repository, folder: Path) -> Repository:
    """A repository made as ``init --copy-chunker-params`` makes it, with another password."""
    config = RepoConfig(chunker=source.config.chunker, pack_size=source.config.pack_size)
    return Repository.init([str(folder)], OTHER_PASSWORD, config=config, kdf=FAST_KDF,
                           use_cache=False, identity=source.master.identity)


def files_of(repo: Repository, snapshot: Snapshot) -> dict[bytes, bytes]:
    return {path: b"".join(repo.load_blob(blob) for blob in node.content)
            for path, node in walk(repo, snapshot.tree) if node.type == "file"}


def content_ids(repo: Repository, snapshot: Snapshot) -> dict[bytes, list[bytes]]:
    return {path: node.content for path, node in walk(repo, snapshot.tree) if node.type == "file"}


def summary(done) -> dict:
    """The summary line of a ``copy --json``."""
    assert done.returncode in (0, 3), done.stderr
    return json.loads(done.stdout.decode().splitlines()[-1])


# ---- through the CLI ---------------------------------------------------------------------


@pytest.fixture
def source(fogvault, tmp_path) -> list[str]:
    """The repository 'src' with two snapshots of 'data' (changed in between); their uids."""
    data = make_data(tmp_path / "data")
    assert fogvault("init", "-r", "src", "--kdf", "interactive").returncode == 0
    assert fogvault("backup", "-r", "src", "data", "--tag", "first").returncode == 0
    (data / "docs" / "notes.txt").write_text("changed\n")
    assert fogvault("backup", "-r", "src", "data").returncode == 0
    listed = fogvault("snapshots", "-r", "src", "--json")
    return [s["uid"] for s in json.loads(listed.stdout)]


def _restore(fogvault, repo: str, uid: str, target: Path, password: bytes = PASSWORD) -> bytes:
    """Restore ``uid`` below ``target``; the folder 'data' was restored as."""
    done = fogvault("restore", "-r", repo, uid, "-t", str(target),
                    env={"FOGVAULT_PASSWORD": password.decode()})
    assert done.returncode == 0, done.stderr
    return restored_root(target, os.fsencode(os.path.realpath(target.parents[1] / "data")))


@pytest.mark.parametrize("related", [False, True], ids=["unrelated", "copy-chunker-params"])
def test_copies_restore_as_the_source_and_a_second_copy_copies_nothing(
        fogvault, source, tmp_path, related):
    init = ["init", "-r", "dst", "--kdf", "interactive"]
    if related:
        init += ["--from-repo", "src", "--copy-chunker-params"]
    env = {**SOURCE_ENV, "FOGVAULT_PASSWORD": OTHER_PASSWORD.decode()}
    done = fogvault(*init, env=env)
    assert done.returncode == 0, done.stderr
    first = summary(fogvault("-r", "dst", "copy", "--from-repo", "src", "--json", env=env))
    assert first["same_ids"] is related
    assert [c["source_uid"] for c in first["copied"]] == source  # oldest first
    assert first["data_blobs_read"] > 0 and first["data_blobs_added"] > 0
    for copied in first["copied"]:
        original = _restore(fogvault, "src", copied["source_uid"], tmp_path / "a" / copied["uid"])
        restored = _restore(fogvault, "dst", copied["uid"], tmp_path / "b" / copied["uid"],
                            OTHER_PASSWORD)
        assert_same_tree(original, restored)
    copies = json.loads(fogvault("snapshots", "-r", "dst", "--json", env=env).stdout)
    assert [c["original"] for c in copies] == source
    assert [c["tags"] for c in copies] == [["first"], []]
    assert all(c["parent"] is None for c in copies)

    again = summary(fogvault("-r", "dst", "copy", "--from-repo", "src", "--json", env=env))
    assert again["copied"] == [] and again["failed"] == []
    assert [s["source_uid"] for s in again["skipped"]] == source
    assert (again["data_blobs_read"], again["tree_blobs_read"], again["bytes_added"]) == (0, 0, 0)
    assert fogvault("check", "-r", "dst", "--read-data", env=env).returncode == 0


def test_a_destination_of_two_targets_gets_every_copy_on_both(fogvault, source, tmp_path):
    assert fogvault("init", "-r", "d1", "-r", "d2", "--kdf", "interactive").returncode == 0
    done = fogvault("-r", "d1", "-r", "d2", "copy", "--from-repo", "src", env=SOURCE_ENV)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines()[len(source)] == "copied 2 snapshots"
    manifests = [sorted(os.listdir(tmp_path / d / "snapshots")) for d in ("d1", "d2")]
    assert len(manifests[0]) == 2 and manifests[0] == manifests[1]
    for target in ("d1", "d2"):  # each a complete repository on its own
        assert fogvault("check", "-r", target, "--read-data").returncode == 0


def test_a_damaged_source_pack_fails_only_the_snapshots_that_use_it(fogvault, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "kept").write_bytes(os.urandom(50_000))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "lost").write_bytes(os.urandom(50_000))
    assert fogvault("init", "-r", "src", "--kdf", "interactive").returncode == 0
    for folder in ("a", "b", "a"):  # the third snapshot shares the first's data
        (tmp_path / folder / "touched").write_text(folder)
        assert fogvault("backup", "-r", "src", folder).returncode == 0
    with Repository.open([str(tmp_path / "src")], PASSWORD, use_cache=False) as repo:
        uids = [s.uid for s in repo.snapshots()]
        [lost] = [node.content[0] for _, node in walk(repo, repo.load_snapshot(uids[1]).tree)
                  if node.name == b"lost"]
        entry = repo.index.get(lost)
    pack = tmp_path / "src" / pack_name(entry.pack_id)
    with open(pack, "r+b") as f:  # bit rot in the middle of the blob
        f.seek(entry.offset + entry.length // 2)
        f.write(b"\xff" * 16)
    assert fogvault("init", "-r", "dst", "--kdf", "interactive").returncode == 0

    done = fogvault("-r", "dst", "copy", "--from-repo", "src", env=SOURCE_ENV)
    assert done.returncode == 3, done.stderr
    errors = done.stderr.decode().splitlines()
    assert errors[0].startswith(f"warning: snapshot {uids[1]} not copied: data blob "
                                f"{lost.hex()} cannot be read")
    assert errors[-1] == ("warning: 1 of 3 snapshots could not be copied (named above); "
                          "'fogvault check' of the source tells more")
    copies = json.loads(fogvault("snapshots", "-r", "dst", "--json").stdout)
    assert [c["original"] for c in copies] == [uids[0], uids[2]]
    assert fogvault("check", "-r", "dst", "--read-data").returncode == 0
    again = fogvault("-r", "dst", "copy", "--from-repo", "src", env=SOURCE_ENV)
    assert again.returncode == 3  # it still cannot be copied, the others are not again
    assert "copied 0 snapshots (2 copied before, 1 failed)" in again.stdout.decode()


def test_source_errors_name_the_source(fogvault, source, tmp_path):
    assert fogvault("init", "-r", "dst", "--kdf", "interactive").returncode == 0
    wrong = fogvault("-r", "dst", "copy", "--from-repo", "src",
                     env={"FOGVAULT_FROM_PASSWORD": "not it"})
    assert wrong.returncode == 12
    assert wrong.stderr.decode() == ("error: source repository src: wrong password: no key in "
                                     "the repository opens with it\n")
    (tmp_path / "nothing").mkdir()
    missing = fogvault("-r", "dst", "copy", "--from-repo", "nothing", env=SOURCE_ENV)
    assert missing.returncode == 10
    assert missing.stderr.decode().startswith("error: source repository nothing: no repository")
    same = fogvault("-r", "dst", "copy", "--from-repo", f"{tmp_path}/dst/", env=SOURCE_ENV)
    assert same.returncode == 2
    assert "are the same target" in same.stderr.decode()
    unnamed = fogvault("-r", "dst", "copy", env=SOURCE_ENV)
    assert unnamed.returncode == 2
    assert "no source repository given (use --from-repo or FOGVAULT_FROM_REPO)" in (
        unnamed.stderr.decode())
    assert not (tmp_path / "dst" / "snapshots").exists()


def test_a_read_only_source_locked_says_it_is_the_source(fogvault, source, tmp_path):
    """Both repositories are locked: the error of a source that takes no lock file named
    neither (only the path of the lock it could not write)."""
    assert fogvault("init", "-r", "dst", "--kdf", "interactive").returncode == 0
    folders = [tmp_path / "src", *(p for p in (tmp_path / "src").rglob("*") if p.is_dir())]
    for folder in folders:
        os.chmod(folder, 0o555)
    try:
        locked = fogvault("-r", "dst", "copy", "--from-repo", "src", env=SOURCE_ENV,
                          wrap=AS_USER)
        unlocked = fogvault("-r", "dst", "copy", "--from-repo", "src", "--no-lock",
                            env=SOURCE_ENV, wrap=AS_USER)
    finally:
        for folder in folders:
            os.chmod(folder, 0o755)
    assert locked.returncode == 1
    [error] = locked.stderr.decode().splitlines()
    assert error.startswith(f"error: source repository {tmp_path / 'src'}: ")
    assert error.endswith("Permission denied (a read-only repository can be read with --no-lock)")
    assert unlocked.returncode == 0, unlocked.stderr
    assert b"copied 2 snapshots" in unlocked.stdout


def test_a_locked_destination_says_it_is_the_destination(fogvault, source, tmp_path):
    """A prune holding the destination's lock: the error names it, with exit 11."""
    assert fogvault("init", "-r", "dst", "--kdf", "interactive").returncode == 0
    with Repository.open([str(tmp_path / "dst")], PASSWORD, use_cache=False) as destination, \
            destination.lock(exclusive=True):
        locked = fogvault("-r", "dst", "copy", "--from-repo", "src", env=SOURCE_ENV)
    assert locked.returncode == 11
    [error] = locked.stderr.decode().splitlines()
    assert error.startswith(f"error: destination repository {tmp_path / 'dst'}: ")
    assert "exclusive lock" in error


def test_a_snapshot_of_a_newer_fogvault_fails_with_no_repository_to_check(
        fogvault, make_repo, tmp_path):
    """Between unrelated repositories trees are encoded again, which a snapshot written by a
    newer FogVault refuses: that is no damage, so no repository is named to check."""
    source = make_repo("src")
    snapshot = back_up(source, make_data(tmp_path / "data"))
    newer = dataclasses.replace(snapshot, uid=new_uid(), program_version="99.0.0")
    source.save_snapshot(newer)
    env = {**SOURCE_ENV, "FOGVAULT_PASSWORD": OTHER_PASSWORD.decode()}
    assert fogvault("init", "-r", "dst", env=env).returncode == 0

    done = fogvault("-r", "dst", "copy", "--from-repo", "src", "--dry-run", env=env)
    assert done.returncode == 3, done.stderr
    errors = done.stderr.decode().splitlines()
    assert f"snapshot {newer.uid} was written by FogVault 99.0.0" in errors[0]
    assert errors[-1] == "warning: 1 of 2 snapshots could not be copied (named above)"
    failed = summary(fogvault("-r", "dst", "copy", "--from-repo", "src", "--json", env=env))
    assert [(f["source_uid"], f["repository"]) for f in failed["failed"]] == [(newer.uid, None)]


def test_a_tree_damaged_in_the_destination_says_to_check_the_destination(
        fogvault, tmp_path):
    """Between repositories that share ids, a tree the destination has is read there: its
    damage fails the snapshot, and the last line said to check the source."""
    for folder in ("keep", "change"):
        (tmp_path / "data" / folder).mkdir(parents=True)
        (tmp_path / "data" / folder / "f").write_bytes(os.urandom(5_000))
    env = {**SOURCE_ENV, "FOGVAULT_PASSWORD": OTHER_PASSWORD.decode()}
    assert fogvault("init", "-r", "src", "--kdf", "interactive").returncode == 0
    assert fogvault("backup", "-r", "src", "data").returncode == 0
    assert fogvault("init", "-r", "dst", "--kdf", "interactive", "--from-repo", "src",
                    "--copy-chunker-params", env=env).returncode == 0
    assert fogvault("-r", "dst", "copy", "--from-repo", "src", env=env).returncode == 0
    with Repository.open([str(tmp_path / "dst")], OTHER_PASSWORD, use_cache=False) as dst:
        [kept] = [node.subtree for _, node in walk(dst, dst.snapshots()[0].tree)
                  if node.name == b"keep"]
        entry = dst.index.get(kept)
    with open(tmp_path / "dst" / pack_name(entry.pack_id), "r+b") as f:
        f.seek(entry.offset + entry.length // 2)
        f.write(b"\xff" * 8)
    (tmp_path / "data" / "change" / "f").write_bytes(os.urandom(5_000))
    assert fogvault("backup", "-r", "src", "data").returncode == 0  # 'keep' is the same tree

    # --no-cache: not the good copy of the tree that the first copy cached
    done = fogvault("-r", "dst", "--no-cache", "copy", "--from-repo", "src", env=env)
    assert done.returncode == 3, done.stderr
    errors = done.stderr.decode().splitlines()
    assert f"tree {kept.hex()} cannot be read from the destination" in errors[0]
    assert errors[-1] == ("warning: 1 of 2 snapshots could not be copied (named above); "
                          "'fogvault check' of the destination tells more")
    failed = summary(fogvault("-r", "dst", "--no-cache", "copy", "--from-repo", "src", "--json",
                              env=env))
    assert [f["repository"] for f in failed["failed"]] == ["destination"]


def test_source_from_the_environment_and_a_dry_run_writes_nothing(fogvault, source, tmp_path):
    assert fogvault("init", "-r", "dst", "--kdf", "interactive").returncode == 0
    (tmp_path / "pw").write_bytes(PASSWORD + b"\n")
    env = {"FOGVAULT_FROM_REPO": "src", "FOGVAULT_FROM_PASSWORD_FILE": str(tmp_path / "pw")}
    before = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "dst").rglob("*"))
    done = fogvault("-r", "dst", "copy", "--dry-run", "latest", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[:2] == [f"{source[1]} -> (dry run)", "would copy 1 snapshot"]
    assert lines[2].startswith("would read ")
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "dst").rglob("*")) == before


def test_init_copy_chunker_params_takes_the_sources_ids_under_another_password(
        fogvault, make_repo, tmp_path):
    source = make_repo("src")  # small chunks, not the default ones
    data = make_data(tmp_path / "data")
    env = {**SOURCE_ENV, "FOGVAULT_PASSWORD": OTHER_PASSWORD.decode()}
    done = fogvault("init", "-r", "dst", "--kdf", "interactive", "--from-repo", "src",
                    "--copy-chunker-params", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["chunker_params_from"] == source.config.repo_id
    twin = Repository.open([str(tmp_path / "dst")], OTHER_PASSWORD, use_cache=False)
    assert twin.config.chunker == source.config.chunker
    assert twin.master.identity == source.master.identity
    assert twin.master.encryption != source.master.encryption
    assert twin.config.repo_id != source.config.repo_id
    with pytest.raises(Exception, match="wrong password"):  # the source's does not open it
        Repository.open([str(tmp_path / "dst")], PASSWORD, use_cache=False)
    ids = content_ids(source, back_up(source, data))
    assert content_ids(twin, back_up(twin, data)) == ids  # the same chunks, the same ids
    # several chunks: at least 3 + 2 + 1 whatever the bytes and the repository's chunker seed
    # (700 and 300 kB files, chunks of at most 256 KiB, a small file; was '> 10', which an
    # unlucky seed missed)
    assert sum(len(blobs) for blobs in ids.values()) >= 6
    twin.close()
    refused = fogvault("init", "-r", "other", "--from-repo", "src", env=env)
    assert refused.returncode == 2
    assert "only with --copy-chunker-params" in refused.stderr.decode()


# ---- through the library -----------------------------------------------------------------


def _counting_source(folder: Path) -> tuple[Repository, list[str]]:
    """The repository at ``folder`` opened through a storage that records the packs read."""
    reads: list[str] = []
    storage = FaultyStorage(open_storage(str(folder)))
    storage.inject("read", Fault(hook=lambda _method, name: reads.append(name), times=None,
                                 prefix="data/"))
    return Repository.open([storage], PASSWORD, use_cache=False), reads


def _data_packs(repo: Repository) -> set[str]:
    return {pack_name(entry.pack_id) for entry in repo.index if entry.blob_type == BlobType.DATA}


def test_shared_ids_read_only_what_the_destination_lacks(make_repo, tmp_path):
    made = make_repo("src")
    data = make_data(tmp_path / "data")
    back_up(made, data)
    twin = twin_of(made, tmp_path / "dst")
    back_up(twin, data)  # the same data, backed up there too: the same blob ids
    (data / "new.bin").write_bytes(os.urandom(100_000))
    newest = back_up(made, data)
    source, reads = _counting_source(tmp_path / "src")
    new_blobs = set(content_ids(source, newest)[os.fsencode(data / "new.bin")])
    result = copy(source, twin)
    assert result.same_ids and len(result.copied) == 2
    assert result.data_blobs_read == len(new_blobs)
    data_packs = _data_packs(source)
    new_packs = {pack_name(source.index.get(blob).pack_id) for blob in new_blobs}
    assert {name for name in reads if name in data_packs} == new_packs
    copies = {s.original: s for s in twin.snapshots() if s.original is not None}
    for original in source.snapshots():
        copied = copies[original.uid]
        assert copied.tree == original.tree  # trees keep their bytes, and so their ids
        assert files_of(twin, copied) == files_of(source, original)
    reads.clear()
    assert copy(source, twin).copied == []
    assert reads == []
    assert check(twin, CheckOptions(read_data=True)).ok
    source.close()


def test_unrelated_repositories_read_each_shared_blob_once(make_repo, tmp_path):
    source = make_repo("src")
    data = make_data(tmp_path / "data")
    first = back_up(source, data)
    (data / "new.bin").write_bytes(os.urandom(100_000))
    second = back_up(source, data)
    destination = make_repo("dst")
    result = copy(source, destination)
    assert not result.same_ids
    blobs = {blob for snapshot in (first, second)
             for ids in content_ids(source, snapshot).values() for blob in ids}
    assert result.data_blobs_read == len(blobs)  # the first snapshot's are not read again
    assert result.data_blobs_added == len(blobs)
    copies = destination.snapshots()
    for original, copied in zip((first, second), copies, strict=True):
        assert files_of(destination, copied) == files_of(source, original)
        assert content_ids(destination, copied) != content_ids(source, original)
        assert copied.summary == original.summary and copied.paths == original.paths
    assert check(destination, CheckOptions(read_data=True)).ok


def test_snapshots_chosen_by_uid_latest_and_filters(make_repo, tmp_path):
    source = make_repo("src")
    data = make_data(tmp_path / "data")
    one = back_up(source, data, host="one", tags=["x"])
    two = back_up(source, data, host="two")
    three = back_up(source, data, host="one")

    def copied(**options: object) -> list[str]:
        destination = make_repo(f"dst-{len(os.listdir(tmp_path))}")
        result = copy(source, destination, CopyOptions(**options))  # type: ignore[arg-type]
        return [c.source_uid for c in result.copied]

    assert copied() == [one.uid, two.uid, three.uid]
    assert copied(uids=[two.uid[:6], "latest"]) == [two.uid, three.uid]
    assert copied(uids=["latest"], host="two") == [two.uid]
    assert copied(host="one") == [one.uid, three.uid]
    assert copied(tags=["x"]) == [one.uid]


def test_copies_of_copies_are_recognised_and_a_retagged_snapshot_is_copied_again(
        make_repo, tmp_path):
    a, b, c = make_repo("a"), make_repo("b"), make_repo("c")
    made = back_up(a, make_data(tmp_path / "data"), tags=["t"])
    [in_b] = _uids(copy(a, b), b)
    [in_c] = _uids(copy(b, c), c)
    assert c.load_snapshot(in_c).original == made.uid  # the first one's uid, through the chain
    assert copy(a, c).copied == [] and copy(c, a).copied == [] and copy(b, a).copied == []
    tag(a, TagOptions(add=["u"], uids=[made.uid]))  # a new uid in a, with other tags
    assert len(copy(a, b).copied) == 1  # as restic: the copy with the old tags stays
    assert in_b in [s.uid for s in b.snapshots()]


@pytest.mark.parametrize("shared_ids", [False, True])
def test_a_snapshot_and_its_rewrite_without_some_paths_are_both_copied(
        make_repo, tmp_path, shared_ids):
    """rewrite kept `original`, so a repository copied from held two snapshots that `copy` took
    for one: only the first it met reached the destination, and the data only the full one
    held was never copied (found in review)."""
    a = make_repo("a")
    data = make_data(tmp_path / "data")
    (data / "secret").write_bytes(os.urandom(50_000))
    made = back_up(a, data)
    b = twin_of(a, tmp_path / "b") if shared_ids else make_repo("b")
    [in_b] = _uids(copy(a, b), b)
    rewrite(b, RewriteOptions(excludes=["secret"], uids=[in_b]))
    assert {s.original for s in b.snapshots()} == {made.uid, None}
    c = twin_of(b, tmp_path / "c") if shared_ids else make_repo("c")
    copied = _uids(copy(b, c), c)
    assert len(copied) == 2
    with_secret = [uid for uid in copied if any(
        path.endswith(b"/secret") for path, _ in walk(c, c.load_snapshot(uid).tree))]
    assert len(with_secret) == 1
    assert check(c, CheckOptions(read_data=True)).ok


def test_a_snapshot_tagged_and_untagged_again_is_not_copied_twice(make_repo, tmp_path):
    a, b = make_repo("a"), make_repo("b")
    made = back_up(a, make_data(tmp_path / "data"))
    assert len(copy(a, b).copied) == 1
    tag(a, TagOptions(add=["weekly"], uids=[made.uid]))
    assert len(copy(a, b).copied) == 1  # other tags: another snapshot, as in restic
    [tagged] = [s.uid for s in a.snapshots() if s.tags == ["weekly"]]
    tag(a, TagOptions(remove=["weekly"], uids=[tagged]))
    result = copy(a, b)
    assert result.copied == [] and len(result.skipped) == 1  # tag replaced the tagged one
    assert len(b.snapshots()) == 2


def _uids(result: CopyResult, destination: Repository) -> list[str]:
    assert not result.failed
    return [c.uid for c in result.copied if c.uid in {s.uid for s in destination.snapshots()}]


def test_an_interrupted_copy_saves_the_snapshots_it_finished_and_no_other(make_repo, tmp_path):
    made = make_repo("src")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(os.urandom(100_000))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "g").write_bytes(os.urandom(100_000))
    first, second = back_up(made, tmp_path / "a"), back_up(made, tmp_path / "b")
    packs_of_b = {pack_name(made.index.get(blob).pack_id)
                  for ids in content_ids(made, second).values() for blob in ids}
    storage = FaultyStorage(open_storage(str(tmp_path / "src")))

    def interrupt(_method: str, name: str) -> None:
        if name in packs_of_b:
            raise KeyboardInterrupt

    storage.inject("read", Fault(hook=interrupt, times=None, prefix="data/"))
    source = Repository.open([storage], PASSWORD, use_cache=False)
    destination = make_repo("dst")
    with pytest.raises(KeyboardInterrupt):
        copy(source, destination)
    assert [s.original for s in destination.snapshots()] == [first.uid]
    assert check(destination, CheckOptions(read_data=True)).ok
    storage.clear()
    result = copy(source, destination)
    assert [c.source_uid for c in result.copied] == [second.uid]
    assert [s.source_uid for s in result.skipped] == [first.uid]
    source.close()


def test_the_same_repository_is_refused(make_repo, tmp_path):
    repo = make_repo("one", "two")
    other_target = Repository.open([str(tmp_path / "two")], PASSWORD, use_cache=False)
    with pytest.raises(Exception, match="hold the same repository"):
        copy(other_target, repo)
    other_target.close()


def test_original_is_written_only_when_set():
    plain = Snapshot(uid="0" * 16, time=Snapshot.decode(_MANIFEST, "0" * 16).time, host="h",
                     user="u", paths=["/x"], tree=b"\0" * 32)
    assert "original" not in json.loads(plain.encode())
    copied = Snapshot.decode(_MANIFEST.replace(b'"version"', b'"original":"' + b"1" * 16
                                               + b'","version"'), "0" * 16)
    assert copied.original == "1" * 16
    assert json.loads(copied.encode())["original"] == "1" * 16
    with pytest.raises(Exception, match="malformed original"):
        Snapshot.decode(_MANIFEST.replace(b'"version"', b'"original":"x","version"'), "0" * 16)


_MANIFEST = (b'{"host":"h","paths":["/x"],"time":"2026-11-24T10:00:00+00:00","tree":"'
             + b"00" * 32 + b'","uid":"' + b"0" * 16 + b'","version":1}')


def test_a_source_with_a_target_away_is_read_from_the_others(fogvault, tmp_path):
    """The source is only read: one target is enough (it refused with exit 10, and the
    destination's --min-targets could not apply to it)."""
    make_data(tmp_path / "data")
    assert fogvault("init", "-r", "sa", "-r", "sb", "--kdf", "interactive").returncode == 0
    assert fogvault("backup", "-r", "sa", "-r", "sb", "data").returncode == 0
    (tmp_path / "sb").rename(tmp_path / "sb-away")
    assert fogvault("init", "-r", "dst", "--kdf", "interactive").returncode == 0
    done = fogvault("copy", "-r", "dst", "--from-repo", "sa", "--from-repo", "sb",
                    env={"FOGVAULT_FROM_PASSWORD": PASSWORD.decode()})
    assert done.returncode == 0, done.stderr
    assert b"copied 1 snapshot" in done.stdout
    assert b"sb: no repository there" in done.stderr
