"""restic's ``SNAPSHOT:FOLDER``: a folder of a snapshot read as if it were the snapshot's root,
in restore, ls, dump and diff."""

from __future__ import annotations

import json
import os

import pytest

from fogvault.repo.snapshot import Snapshot, now
from fogvault.treewalk import _paths_within


@pytest.fixture
def src(fogvault, tmp_path):
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "f").write_bytes(b"deep")
    (src / "top").write_bytes(b"top")
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    assert fogvault("backup", "-r", "repo", "src").returncode == 0
    return src


def _ok(done) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def test_restore_writes_the_folder_s_contents_at_the_target(fogvault, src, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "extra").write_bytes(b"not in the snapshot")
    _ok(fogvault("restore", "-r", "repo", f"latest:{src}", "-t", "out", "--delete"))
    assert sorted(os.listdir(tmp_path / "out")) == ["a", "top"]  # the folder is inside /src
    assert (tmp_path / "out" / "a" / "b" / "f").read_bytes() == b"deep"
    _ok(fogvault("restore", "-r", "repo", "-V", f"latest:{src}/a", "-t", "out2"))
    assert (tmp_path / "out2" / "b" / "f").read_bytes() == b"deep"


def test_ls_dump_and_diff_see_the_folder_as_the_root(fogvault, src):
    listed = json.loads(_ok(fogvault("ls", "-r", "repo", f"latest:{src}", "-R", "--json")))
    assert [e["path"] for e in listed] == ["/a", "/a/b", "/a/b/f", "/top"]
    assert _ok(fogvault("dump", "-r", "repo", f"latest:{src}/a", "/b/f")) == "deep"
    (src / "top").write_bytes(b"changed")
    (src / "elsewhere").write_bytes(b"x")
    _ok(fogvault("backup", "-r", "repo", str(src)))
    uids = [s["uid"] for s in json.loads(_ok(fogvault("snapshots", "-r", "repo", "--json")))]
    changes = _ok(fogvault("diff", "-r", "repo", f"{uids[0]}:{src}/a", f"{uids[1]}:{src}/a"))
    assert "M " not in changes and "+ " not in changes  # nothing changed below a
    changes = _ok(fogvault("diff", "-r", "repo", f"{uids[0]}:{src}", f"{uids[1]}:{src}"))
    assert "M    /top" in changes and "+    /elsewhere" in changes


def test_a_file_or_a_missing_folder_is_refused(fogvault, src):
    for ref, message in ((f"latest:{src}/top", f"not a folder in the snapshot: {src}/top"),
                         (f"latest:{src}/nope", f"no such path in the snapshot: {src}/nope")):
        done = fogvault("ls", "-r", "repo", ref)
        assert done.returncode == 1
        assert done.stderr.decode().splitlines() == [f"error: {message}"]


def test_backed_up_paths_are_made_relative_to_the_folder():
    snapshot = Snapshot(uid="0" * 16, time=now(), host="h", user="u",
                        paths=["/home/ann", "/home/bob/docs", "/etc"], tree=b"")
    parts = [b"home"]
    assert _paths_within(snapshot.paths, parts) == ["/ann", "/bob/docs"]
    assert _paths_within(snapshot.paths, [b"home", b"ann", b"x"]) == ["/"]
    assert _paths_within(snapshot.paths, [b"var"]) == []
