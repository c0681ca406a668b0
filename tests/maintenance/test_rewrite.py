"""``rewrite``: paths taken out of existing snapshots, through the real CLI; prune then frees
what only they used, and everything else restores as it was."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from conftest import PASSWORD

from fogvault.errors import UsageError
from fogvault.maintenance.rewrite import RewriteOptions, rewrite
from fogvault.repo.format import pack_name
from fogvault.repo.repository import Repository
from fogvault.treewalk import walk
from tests.backup.test_deep_trees import nested


@pytest.fixture
def two_backups(fogvault, tmp_path):
    """Two snapshots of ``src``, which holds a secret folder, on targets 'one' and 'two'."""
    src = tmp_path / "src"
    (src / "home" / ".ssh").mkdir(parents=True)
    (src / "home" / ".ssh" / "id_ed25519").write_bytes(b"SECRET KEY " + os.urandom(64))
    (src / "home" / "notes.txt").write_text("first")
    (src / "Secrets.TXT").write_text("also secret")
    assert fogvault("init", "-r", "one", "-r", "two", "--kdf", "interactive").returncode == 0
    assert fogvault("backup", "-r", "one", "-r", "two", "src", "--tag", "t").returncode == 0
    (src / "home" / "notes.txt").write_text("second")
    assert fogvault("backup", "-r", "one", "-r", "two", "src").returncode == 0
    return src


def _snapshots(fogvault) -> list[dict]:
    return json.loads(fogvault("snapshots", "-r", "one", "-r", "two", "--json").stdout)


def _files(tmp_path, uid: str) -> dict[str, bytes]:
    with Repository.open([str(tmp_path / "one")], PASSWORD, use_cache=False) as repo:
        return {os.fsdecode(path).rsplit("/src/", 1)[1]: b"".join(
                    repo.load_blob(blob) for blob in node.content)
                for path, node in walk(repo, repo.load_snapshot(uid).tree)
                if node.type == "file"}


def test_rewrite_forget_and_prune_leave_no_trace_of_the_secret(fogvault, two_backups, tmp_path):
    before = _snapshots(fogvault)
    secret = (two_backups / "home" / ".ssh" / "id_ed25519").read_bytes()
    done = fogvault("rewrite", "-r", "one", "-r", "two", "--exclude", ".ssh", "--iexclude",
                    "secrets.txt", "--forget", "--json")
    assert done.returncode == 0, done.stderr
    rewritten = json.loads(done.stdout)["rewritten"]
    assert [r["old_uid"] for r in rewritten] == [s["uid"] for s in before]
    assert all(sorted(r["removed"]) == [f"{two_backups}/Secrets.TXT",
                                        f"{two_backups}/home/.ssh"] for r in rewritten)
    after = _snapshots(fogvault)
    assert [s["uid"] for s in after] == [r["new_uid"] for r in rewritten]
    kept = ("time", "host", "paths", "tags", "parent")
    assert [{k: s[k] for k in kept} for s in after] == [{k: s[k] for k in kept} for s in before]
    assert _files(tmp_path, after[0]["uid"]) == {"home/notes.txt": b"first"}
    assert _files(tmp_path, after[1]["uid"]) == {"home/notes.txt": b"second"}
    assert fogvault("prune", "-r", "one", "-r", "two").returncode == 0
    for target in ("one", "two"):  # the secret's chunk is gone from every target
        with Repository.open([str(tmp_path / target)], PASSWORD, use_cache=False) as repo:
            repo.load_index()
            assert repo.blob_id(secret) not in repo.index
    assert fogvault("check", "-r", "one", "-r", "two", "--read-data").returncode == 0


def test_without_forget_the_originals_stay_and_a_dry_run_changes_nothing(
        fogvault, two_backups, tmp_path):
    before = _snapshots(fogvault)
    listing = sorted(os.listdir(tmp_path / "one" / "snapshots"))
    done = fogvault("rewrite", "-r", "one", "-r", "two", "--exclude", ".ssh", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines()[-1] == "would rewrite 2 snapshots"
    assert sorted(os.listdir(tmp_path / "one" / "snapshots")) == listing
    done = fogvault("rewrite", "-r", "one", "-r", "two", "--exclude", ".ssh", before[0]["uid"])
    assert done.returncode == 0, done.stderr
    assert len(_snapshots(fogvault)) == 3
    again = fogvault("rewrite", "-r", "one", "-r", "two", "--exclude", "no-such-thing")
    assert again.stdout.decode().splitlines()[-1] == "rewrote 0 snapshots, 3 unchanged"


def test_a_deep_tree_is_rewritten_without_recursion(make_repo, tmp_path):
    """Folders deeper than Python's recursion limit: the filter is iterative."""
    from fogvault.backup.archiver import Archiver, BackupOptions

    deep = tmp_path / "src"
    with nested(deep, 1100):
        bottom = os.path.join(deep, *["d"] * 1100)
        os.rename(os.path.join(bottom, "file"), os.path.join(bottom, "secret"))
        with open(os.path.join(bottom, "keep"), "w") as f:
            f.write("y")
        repo = make_repo("repo")
        Archiver(repo, BackupOptions()).run([str(deep)])
    result = rewrite(repo, RewriteOptions(excludes=["secret"], forget=True))
    [done] = result.rewritten
    assert done.removed == [f"{bottom}/secret"]
    [snapshot] = repo.snapshots()
    names = [p.rsplit(b"/", 1)[1] for p, n in walk(repo, snapshot.tree) if n.type == "file"]
    assert names == [b"keep"]


@pytest.mark.parametrize(("options", "says"), [
    (RewriteOptions(), "nothing to do: give --exclude, --iexclude or --snapshot-summary"),
    (RewriteOptions(excludes=["x"], uids=["ab"], tags=["t"]),
     "give snapshot uids or --host/--tag/--path filters, not both"),
])
def test_options_that_make_no_sense_are_refused(make_repo, options, says):
    with pytest.raises(UsageError, match=f"^{says}$".replace("-", r"\-")):
        rewrite(make_repo("repo"), options)


@pytest.mark.parametrize("seed", range(6))
def test_a_rewritten_snapshot_is_the_original_without_what_matches(make_repo, tmp_path, seed):
    """Random trees and patterns: every entry of the copy is the original's entry at the same
    path (subtree ids aside), and an original entry is missing from the copy exactly when it or
    a folder above it matches."""
    import random

    from fogvault.backup.archiver import Archiver, BackupOptions
    from fogvault.patterns import PathPatterns

    rng = random.Random(seed)
    src = tmp_path / "src"
    folders = [src]
    src.mkdir()
    for n in range(60):
        parent = rng.choice(folders)
        name = rng.choice(["a", "b", "cache", "x.tmp", "Keep", "key.pem"]) + str(n % 7)
        if (parent / name).exists():
            continue
        if rng.random() < 0.35:
            (parent / name).mkdir()
            folders.append(parent / name)
        else:
            (parent / name).write_bytes(rng.randbytes(rng.randrange(0, 3000)))
    patterns = rng.sample(["cache*", "*.tmp*", "/**/Keep?", "b1", "key.pem*", "a[0-3]"], 2)
    repo = make_repo("repo")
    Archiver(repo, BackupOptions()).run([str(src)])
    Archiver(repo, BackupOptions(tags=["second"])).run([str(folders[-1])])  # another root
    originals = {s.uid: s for s in repo.snapshots()}
    result = rewrite(repo, RewriteOptions(excludes=patterns))
    assert result.rewritten  # the patterns are chosen among the names the tree uses
    matcher = PathPatterns(patterns)
    copies = {r.old_uid: r.new_uid for r in result.rewritten}
    for uid, original in originals.items():
        before = dict(walk(repo, original.tree))
        after = dict(walk(repo, repo.load_snapshot(copies[uid]).tree)) if uid in copies else before
        def gone(path: bytes) -> bool:
            parts = path.split(b"/")
            return any(matcher.matches(b"/".join(parts[:i])) for i in range(2, len(parts) + 1))
        assert set(after) == {p for p in before if not gone(p)}
        for path, node in after.items():
            assert dataclasses.replace(node, subtree=None) == dataclasses.replace(
                before[path], subtree=None)


def test_a_target_behind_gets_no_copy_and_keeps_its_original(fogvault, tmp_path):
    """The copy's trees may be ones that only up-to-date targets hold (a k-of-N backup stored
    the tree without the secret on 'one' only): 'two' must keep its complete original."""
    src = tmp_path / "src"
    (src / "home").mkdir(parents=True)
    (src / "home" / "secret").write_text("s")
    (src / "home" / "keep").write_text("k")
    assert fogvault("init", "-r", "one", "-r", "two", "--kdf", "interactive").returncode == 0
    assert fogvault("backup", "-r", "one", "-r", "two", "src").returncode == 0
    [first] = _snapshots(fogvault)
    (src / "home" / "secret").unlink()
    (tmp_path / "two").rename(tmp_path / "two.away")
    done = fogvault("backup", "-r", "one", "-r", "two", "--min-targets", "1", "src")
    assert done.returncode == 3, done.stderr
    (tmp_path / "two.away").rename(tmp_path / "two")
    done = fogvault("rewrite", "-r", "one", "-r", "two", "--exclude", "secret", "--forget",
                    first["uid"], "--json")
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)["rewritten"]
    assert entry["original_kept"].startswith(f"its copy is not on {tmp_path / 'two'}")
    snapshots = os.listdir(tmp_path / "two" / "snapshots")
    assert first["uid"] in snapshots and entry["new_uid"] not in snapshots
    assert entry["new_uid"] in os.listdir(tmp_path / "one" / "snapshots")
    restored = fogvault("restore", "-r", "two", first["uid"], "-t", "out")
    assert restored.returncode == 0, restored.stderr
    assert fogvault("check", "-r", "two").returncode == 0


def test_latest_snapshots_forget_and_the_next_parent_agree_on_a_copy_and_its_original(
        fogvault, two_backups, tmp_path):
    """A copy kept beside its original has the original's time: every command that orders
    snapshots by time takes the same one of the two for the newer (retention took the other
    one than ``latest`` before)."""
    second = _snapshots(fogvault)[-1]
    done = fogvault("rewrite", "-r", "one", "-r", "two", "--exclude", ".ssh", second["uid"],
                    "--json")
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)["rewritten"]
    with Repository.open([str(tmp_path / "one")], PASSWORD, use_cache=False) as repo:
        latest = repo.resolve_snapshot("latest")
    assert latest in (entry["old_uid"], entry["new_uid"])
    listed = json.loads(fogvault("snapshots", "-r", "one", "-r", "two", "--latest", "1",
                                 "--json").stdout)
    assert [s["uid"] for s in listed] == [latest]
    done = fogvault("forget", "-r", "one", "-r", "two", "--keep-last", "1", "--dry-run",
                    "--json")
    assert done.returncode == 0, done.stderr
    [group] = json.loads(done.stdout)["groups"]
    assert [k["uid"] for k in group["keep"]] == [latest]
    assert fogvault("backup", "-r", "one", "-r", "two", "src").returncode == 0
    assert _snapshots(fogvault)[-1]["parent"] == latest


# ---- the summary -------------------------------------------------------------------------

#: what a summary says of the backup run that made a snapshot, which a rewrite keeps
RUN_FIELDS = ("files_failed", "bytes_read", "data_blobs_added", "tree_blobs_added",
              "bytes_added", "duration_s")
SPLIT = ("files_new", "files_changed", "files_unchanged")


def _contents(summary: dict) -> tuple[int, int, int]:
    """(files, folders, bytes) as a summary gives them."""
    return sum(summary[k] for k in SPLIT), summary["dirs"], summary["total_bytes"]


def test_a_copy_s_summary_counts_what_is_left_and_keeps_the_run(fogvault, two_backups):
    before = _snapshots(fogvault)
    done = fogvault("rewrite", "-r", "one", "-r", "two", "--exclude", ".ssh", "--iexclude",
                    "secrets.txt", "--forget", "--json")
    assert done.returncode == 0, done.stderr
    rewritten = json.loads(done.stdout)["rewritten"]
    after = _snapshots(fogvault)
    assert [r["summary"] for r in rewritten] == [s["summary"] for s in after]
    # src and home, home/notes.txt: the secret folder and two of three files taken out
    assert [_contents(s["summary"]) for s in before] == [(3, 3, 5 + 11 + 75), (3, 3, 6 + 11 + 75)]
    assert [_contents(s["summary"]) for s in after] == [(1, 2, 5), (1, 2, 6)]
    for old, new in zip(before, after, strict=True):
        assert {k: new["summary"][k] for k in RUN_FIELDS} == {
            k: old["summary"][k] for k in RUN_FIELDS}
        assert all(new["summary"][k] <= old["summary"][k] for k in SPLIT)
    listing = fogvault("snapshots", "-r", "one", "-r", "two").stdout.decode()
    assert "91 B" not in listing and "5 B" in listing and "6 B" in listing


@pytest.mark.parametrize("seed", range(4))
def test_a_copy_s_summary_is_what_a_backup_of_what_is_left_records(make_repo, tmp_path, seed):
    """Random trees with hardlinks and symlinks, backed up below folders that only lead to
    them (not counted): the copy's files, folders and bytes are those a backup of the source
    without the matching entries records."""
    import random
    import shutil

    from fogvault.backup.archiver import Archiver, BackupOptions
    from fogvault.patterns import PathPatterns

    rng = random.Random(seed)
    src = tmp_path / "lead" / "src"
    folders, files = [src], []
    src.mkdir(parents=True)
    for n in range(50):
        parent = rng.choice(folders)
        name = rng.choice(["a", "b", "cache", "x.tmp", "key.pem"]) + str(n % 5)
        if os.path.lexists(parent / name):
            continue
        kind = rng.random()
        if kind < 0.3:
            (parent / name).mkdir()
            folders.append(parent / name)
        elif kind < 0.4 and files:
            os.link(rng.choice(files), parent / name)
        elif kind < 0.5:
            os.symlink("somewhere", parent / name)
        else:
            (parent / name).write_bytes(rng.randbytes(rng.randrange(0, 3000)))
            files.append(parent / name)
    patterns = rng.sample(["cache*", "*.tmp*", "b1", "key.pem*", "a[0-3]"], 2)
    repo = make_repo("repo")
    originals = [Archiver(repo, BackupOptions(force=True)).run(roots).snapshot
                 for roots in ([str(src)], [str(src), str(folders[-1])])]
    result = rewrite(repo, RewriteOptions(excludes=patterns))
    assert result.rewritten
    copies = {r.old_uid: r.summary for r in result.rewritten}
    matcher = PathPatterns(patterns)
    for folder, names, leaves in os.walk(tmp_path / "lead", topdown=True):
        for name in [*names, *leaves]:
            if matcher.matches(os.path.join(os.path.realpath(folder), name)):
                path = os.path.join(folder, name)
                (shutil.rmtree if name in names else os.unlink)(path)
        names[:] = [n for n in names if os.path.lexists(os.path.join(folder, n))]
    for original in originals:
        fresh = Archiver(repo, BackupOptions(force=True)).run(original.paths).snapshot.summary
        copy = copies.get(original.uid, original.summary)
        assert (copy.files, copy.dirs, copy.total_bytes) == (
            fresh.files, fresh.dirs, fresh.total_bytes)


def test_snapshot_summary_counts_anew_only_summaries_that_are_wrong(fogvault, make_repo,
                                                                   tmp_path):
    """--snapshot-summary leaves the snapshots whose summary is right (a backup's, a stream's,
    one of / whose root folder counts) and rewrites one written without a summary."""
    from fogvault.backup.archiver import Archiver, BackupOptions
    from fogvault.repo.snapshot import SnapshotSummary, new_uid
    from fogvault.treewalk import lookup

    src = tmp_path / "lead" / "src"
    (src / "a" / "deep").mkdir(parents=True)
    (src / "a" / "deep" / "f").write_bytes(b"x" * 100)
    (src / "b").mkdir()
    (src / "b" / "g").write_text("g")
    repo = make_repo("repo")
    whole = Archiver(repo, BackupOptions()).run([str(src)]).snapshot
    Archiver(repo, BackupOptions()).run([str(src / "a"), str(src / "b")])
    done = fogvault("backup", "-r", "repo", "--stdin", "--stdin-filename", "dump.sql",
                    input=b"stream")
    assert done.returncode == 0, done.stderr
    # the same contents as a backup of /, its root folder holding what src holds
    _, inside = lookup(repo, whole.tree, os.fsencode(src))
    forged = dataclasses.replace(whole, uid=new_uid(), paths=["/"], tree=inside)
    bare = dataclasses.replace(whole, uid=new_uid(), summary=SnapshotSummary())
    for snapshot in (forged, bare):
        repo.save_snapshot(snapshot)
    done = fogvault("rewrite", "-r", "repo", "--snapshot-summary", "--forget", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["unchanged"] == 4
    [entry] = report["rewritten"]
    assert (entry["old_uid"], entry["removed"]) == (bare.uid, [])
    expected = dataclasses.asdict(SnapshotSummary().with_contents(
        whole.summary.files, whole.summary.dirs, whole.summary.total_bytes))
    assert entry["summary"] == expected
    assert (whole.summary.files, whole.summary.dirs) == (2, 4)  # src, a, a/deep, b
    [copy] = [s for s in _snapshots_of(fogvault, "repo") if s["uid"] == entry["new_uid"]]
    assert copy["summary"] == expected and copy["tree"] == whole.tree.hex()
    assert bare.uid not in os.listdir(tmp_path / "repo" / "snapshots")


def _snapshots_of(fogvault, target: str) -> list[dict]:
    return json.loads(fogvault("snapshots", "-r", target, "--json").stdout)


@pytest.mark.parametrize("how", ["deleted", "unindexed"])
def test_a_snapshot_whose_tree_is_lost_is_named_and_nothing_is_changed(fogvault, tmp_path, how):
    """The pack holding the first backup's trees is deleted on every target (and, unindexed,
    the index files listing it too): its root is lost, and so is the tree of 'sub', which the
    second backup reuses. Rewrite names the snapshot and the folder it cannot read, points to
    'repair --snapshots' and changes no snapshot; taking the lost folder out works."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "secret").write_text("s")
    (src / "keep").write_text("k")
    repo_args = ["--no-cache", "-r", "one", "-r", "two"]
    assert fogvault("init", *repo_args, "--kdf", "interactive").returncode == 0
    assert fogvault("backup", *repo_args, "src").returncode == 0
    (src / "later").write_text("l")
    assert fogvault("backup", *repo_args, "src").returncode == 0
    first, second = _snapshots(fogvault)
    with Repository.open([str(tmp_path / "one")], PASSWORD, use_cache=False) as repo:
        repo.load_index()
        tree_pack = repo.index.get(bytes.fromhex(first["tree"])).pack_id
        lost = [n for n in repo.live_index_names() if tree_pack in repo.index_file_packs(n)]
    for target in ("one", "two"):
        for name in [pack_name(tree_pack), *(lost if how == "unindexed" else [])]:
            (tmp_path / target / name).unlink()
    if how == "unindexed":  # the other packs those index files listed are listed again
        assert fogvault("repair", *repo_args, "--index").returncode == 0
    listing = {t: sorted(os.listdir(tmp_path / t / "snapshots")) for t in ("one", "two")}
    hint = ("; run 'fogvault repair --snapshots', which saves a copy without what is lost "
            "(rewrite that copy then); no snapshot was changed")
    for uid, where in ((second["uid"], f"{src}/sub"), (None, "/")):
        done = fogvault("rewrite", *repo_args, "--exclude", "secret", *([uid] if uid else []))
        *warnings, error = done.stderr.decode().splitlines()
        assert (done.returncode, done.stdout) == (1, b""), done.stderr
        assert all(w.startswith("warning: ") for w in warnings)  # a target lacks the pack
        named = uid or first["uid"]  # the oldest is rewritten first
        assert error.startswith(f"error: snapshot {named} cannot be read at {where}: ")
        assert error.endswith(hint)
    assert {t: sorted(os.listdir(tmp_path / t / "snapshots")) for t in ("one", "two")} == listing
    # a lost folder the patterns take out is not read
    done = fogvault("rewrite", *repo_args, "--exclude", "sub", second["uid"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines()[-1] == "rewrote 1 snapshot"
