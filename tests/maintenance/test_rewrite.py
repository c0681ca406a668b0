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
    (RewriteOptions(), "nothing to take out: give --exclude or --iexclude"),
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
