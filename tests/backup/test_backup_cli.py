"""`backup`, `snapshots`, `ls`, `find`, `diff`, `stats` through the real CLI."""

from __future__ import annotations

import json
import os

import pytest
from conftest import AS_USER


@pytest.fixture
def repo_and_src(fogvault, tmp_path):
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.txt").write_text("alpha\n" * 100)
    (src / "docs" / "b.md").write_text("beta\n")
    (src / "photo.jpg").write_bytes(os.urandom(50_000))
    return src


def _json_lines(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


def test_backup_prints_uid_and_summary(fogvault, repo_and_src):
    done = fogvault("backup", "-r", "repo", "src", "--tag", "first")
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "3 new, 0 changed, 0 unchanged" in out
    uid = out.strip().splitlines()[-1].split()[1]
    snaps = json.loads(fogvault("snapshots", "-r", "repo", "--json").stdout)
    assert [s["uid"] for s in snaps] == [uid]
    snap = snaps[0]
    for key in ("uid", "time", "host", "tags", "paths", "tree", "parent", "summary"):
        assert key in snap
    assert snap["tags"] == ["first"] and snap["parent"] is None
    assert snap["paths"] == [str(repo_and_src)]


def test_backup_json_summary_and_second_run_reads_nothing(fogvault, repo_and_src):
    first = _json_lines(fogvault("backup", "-r", "repo", "src", "--json").stdout)
    summary = first[-1]
    assert summary["message_type"] == "summary" and summary["files_new"] == 3
    second = _json_lines(fogvault("backup", "-r", "repo", "src", "--json").stdout)[-1]
    assert second["bytes_read"] == 0 and second["files_unchanged"] == 3
    snaps = json.loads(fogvault("snapshots", "-r", "repo", "--json").stdout)
    assert snaps[1]["parent"] == summary["snapshot"]


def test_dry_run_stores_nothing(fogvault, repo_and_src, tmp_path):
    done = fogvault("backup", "-r", "repo", "src", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert not list((tmp_path / "repo" / "data").rglob("*"))
    assert json.loads(fogvault("snapshots", "-r", "repo", "--json").stdout) == []


def test_snapshot_filters_and_latest(fogvault, repo_and_src):
    fogvault("backup", "-r", "repo", "src", "--tag", "a", "--host", "h1")
    fogvault("backup", "-r", "repo", "src", "--tag", "b", "--host", "h2")
    fogvault("backup", "-r", "repo", "src/docs", "--tag", "b", "--host", "h2")

    def uids(*args):
        return [s["uid"] for s in json.loads(fogvault("snapshots", "-r", "repo", "--json",
                                                      *args).stdout)]
    everything = uids()
    assert len(everything) == 3
    assert len(uids("--host", "h2")) == 2
    assert len(uids("--tag", "a")) == 1
    assert uids("--latest", "1") == everything[-1:]
    assert len(uids("--path", str(repo_and_src / "docs"))) == 1
    table = fogvault("snapshots", "-r", "repo").stdout.decode()
    assert all(uid in table for uid in everything)


def test_path_filters_are_normalised_as_backup_paths_are(fogvault, repo_and_src, tmp_path):
    """Relative, with a trailing slash, '.' or '..', or through a symlinked folder: the path
    names what 'backup' recorded for it. Before, only the exact recorded text matched, so
    'forget --path src/docs/ --keep-last 1' quietly forgot nothing."""
    (tmp_path / "link").symlink_to("src")
    for tag in ("old", "new"):
        fogvault("backup", "-r", "repo", "src/docs", "--tag", tag)
    fogvault("backup", "-r", "repo", "src")
    for path in ["src/docs", "src/docs/", "./src/../src/docs", f"{tmp_path}/src/docs/",
                 f"{tmp_path}/link/docs"]:
        listed = json.loads(fogvault("snapshots", "-r", "repo", "--json", "--path", path).stdout)
        assert [s["tags"] for s in listed] == [["old"], ["new"]], path
    done = fogvault("forget", "-r", "repo", "--path", "src/docs/", "--keep-last", "1", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["removed"] == [listed[0]["uid"]]


def test_ls_find_diff_stats(fogvault, repo_and_src):
    fogvault("backup", "-r", "repo", "src")
    (repo_and_src / "docs" / "b.md").write_text("beta changed\n")
    (repo_and_src / "new.txt").write_text("new")
    (repo_and_src / "photo.jpg").unlink()
    os.chmod(repo_and_src / "docs" / "a.txt", 0o600)
    fogvault("backup", "-r", "repo", "src")
    snaps = json.loads(fogvault("snapshots", "-r", "repo", "--json").stdout)
    first, second = snaps[0]["uid"], snaps[1]["uid"]

    listing = fogvault("ls", first[:6], str(repo_and_src), "-r", "repo").stdout.decode()
    assert f"{repo_and_src}/docs" in listing and f"{repo_and_src}/photo.jpg" in listing
    recursive = json.loads(fogvault("ls", "latest", str(repo_and_src), "--recursive",
                                    "-r", "repo", "--json").stdout)
    assert {e["name"] for e in recursive} == {"docs", "a.txt", "b.md", "new.txt"}
    long = fogvault("ls", "latest", str(repo_and_src / "docs"), "-l", "-r", "repo").stdout
    assert b"-rw-------" in long

    found = json.loads(fogvault("find", "*.md", "-r", "repo", "--json").stdout)
    assert len(found) == 2 and all(len(f["matches"]) == 1 for f in found)
    borg_style = fogvault("find", "fm:*.md", "-r", "repo")
    assert borg_style.stderr.decode() == ("warning: pattern 'fm:*.md' is matched literally: "
                                          "FogVault has no borg-style 'fm:' prefix (did you mean "
                                          "'*.md'?)\n")

    changes = json.loads(fogvault("diff", first, second, "-r", "repo", "--json").stdout)
    kinds = {c["path"].removeprefix(str(repo_and_src)): c["kind"] for c in changes["changes"]}
    assert kinds["/new.txt"] == "added"
    assert kinds["/photo.jpg"] == "removed"
    assert kinds["/docs/b.md"] == "modified"
    assert kinds["/docs/a.txt"] == "metadata"

    stats = json.loads(fogvault("stats", "-r", "repo", "--json").stdout)
    assert stats["snapshots"] == 2 and stats["files"] == 6
    assert stats["restore_size"] == 600 + 5 + 50_000 + 600 + 13 + 3
    one = json.loads(fogvault("stats", second, "-r", "repo", "--json").stdout)
    assert one["files"] == 3


def test_a_relative_ls_path_not_in_the_snapshot_gets_a_hint(fogvault, repo_and_src, tmp_path):
    """Snapshot paths are absolute; 'ls latest src' after 'backup src' said only "no such
    path in the snapshot: src"."""
    fogvault("backup", "-r", "repo", "src")
    done = fogvault("ls", "-r", "repo", "latest", "src/docs")
    assert done.returncode == 1
    assert done.stderr.decode() == (
        "error: no such path in the snapshot: src/docs (paths in a snapshot are absolute: "
        f"did you mean {repo_and_src}/docs?)\n")
    elsewhere = fogvault("ls", "-r", str(tmp_path / "repo"), "latest", "src/docs",
                         cwd=repo_and_src)
    assert elsewhere.stderr.decode().endswith("(paths in a snapshot are absolute)\n")


def test_exclude_file_negation_and_foreign_pattern_warnings(fogvault, repo_and_src, tmp_path):
    """restic's '!' takes back an earlier exclude; borg's 'sh:' prefix is warned about, as
    FogVault matches it literally (before, both were silently literal). Warnings about
    patterns do not make the backup partial."""
    (repo_and_src / "x.tmp").write_text("scratch")
    (repo_and_src / "keep.tmp").write_text("needed")
    (tmp_path / "excludes").write_text("*.tmp\n!keep.tmp\n")
    done = fogvault("backup", "-r", "repo", "src", "--exclude-file", "excludes",
                    "--exclude", "sh:**/docs")
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode() == (
        "warning: pattern 'sh:**/docs' is matched literally: FogVault has no borg-style 'sh:' "
        "prefix (did you mean '**/docs'?)\n")
    found = json.loads(fogvault("ls", "-r", "repo", "latest", str(repo_and_src), "--json").stdout)
    assert sorted(e["name"] for e in found) == ["docs", "keep.tmp", "photo.jpg"]


def test_ambiguous_or_unknown_snapshot_is_a_clear_error(fogvault, repo_and_src):
    fogvault("backup", "-r", "repo", "src")
    done = fogvault("ls", "ffffffffffffffff", "-r", "repo")
    assert done.returncode == 1 and b"no snapshot" in done.stderr
    assert b"Traceback" not in done.stderr


def test_missing_source_path_is_a_clear_error(fogvault, repo_and_src):
    done = fogvault("backup", "-r", "repo", "does-not-exist", "gone/too")
    assert done.returncode == 2
    assert b"does-not-exist: No such file" in done.stderr and b"gone/too" in done.stderr
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_missing_source_path_is_skipped_with_a_warning(fogvault, repo_and_src, tmp_path,
                                                          dry_run):
    """A disk that is not plugged in: the other paths are backed up, exit 3 (restic and borg
    go on too). Before, the whole backup stopped with exit 2."""
    flags = ["--dry-run"] if dry_run else []
    done = fogvault("backup", "-r", "repo", "src", "usb/data", *flags)
    assert done.returncode == 3, done.stderr
    assert f"warning: {tmp_path}/usb/data: cannot back up: No such file" in done.stderr.decode()
    assert b"3 new, 0 changed, 0 unchanged, 1 failed" in done.stdout
    snaps = json.loads(fogvault("snapshots", "-r", "repo", "--json").stdout)
    if dry_run:
        assert snaps == []
        return
    # Only what it holds is listed (as restic does): grouped with the full runs, it could make
    # a retention policy forget the last snapshot that holds the disk.
    [snap] = snaps
    assert snap["paths"] == [str(repo_and_src)]
    assert snap["warnings"] == [f"{tmp_path}/usb/data: cannot back up: "
                                "No such file or directory; skipped"]
    listing = fogvault("ls", "latest", str(tmp_path), "-r", "repo").stdout.decode()
    assert listing.split() == [str(repo_and_src)]
    (tmp_path / "usb" / "data").mkdir(parents=True)
    (tmp_path / "usb" / "data" / "x").write_text("on the disk")
    again = fogvault("backup", "-r", "repo", "src", "usb/data")
    assert again.returncode == 0, again.stderr
    assert b"1 new, 0 changed, 3 unchanged" in again.stdout  # src is not read again


def test_a_run_that_skipped_a_path_has_the_full_runs_as_parent(fogvault, repo_and_src,
                                                                tmp_path):
    """The disk is back after a night away: the full snapshot before it is the parent of the
    next full run (nothing on the disk is read again), and of the partial run (nor is src)."""
    usb = tmp_path / "usb"
    usb.mkdir()
    (usb / "photo").write_bytes(b"p" * 5000)
    assert fogvault("backup", "-r", "repo", "src", "usb").returncode == 0
    usb.rename(tmp_path / "usb.away")
    partial = fogvault("backup", "-r", "repo", "src", "usb")
    assert partial.returncode == 3 and b"0 new, 0 changed, 3 unchanged, 1 failed" in partial.stdout
    (tmp_path / "usb.away").rename(usb)
    full = fogvault("backup", "-r", "repo", "src", "usb")
    assert full.returncode == 0 and b"0 new, 0 changed, 4 unchanged" in full.stdout
    snaps = json.loads(fogvault("snapshots", "-r", "repo", "--json").stdout)
    assert [s["parent"] for s in snaps] == [None, snaps[0]["uid"], snaps[0]["uid"]]


def test_a_source_path_that_cannot_be_stated_is_skipped_with_a_warning(
        fogvault, repo_and_src, tmp_path):
    """lstat refused (EACCES: a folder above it without search permission)."""
    locked = tmp_path / "locked"
    (locked / "inner").mkdir(parents=True)
    locked.chmod(0)
    try:
        done = fogvault("backup", "-r", "repo", "src", "locked/inner", wrap=AS_USER)
    finally:
        locked.chmod(0o700)
    assert done.returncode == 3, done.stderr
    assert b"locked/inner: cannot back up: Permission denied" in done.stderr


def test_unreadable_file_warns_exits_3_and_backs_up_the_rest(fogvault, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine")
    (src / "secret.txt").write_text("no access")
    os.chmod(src / "secret.txt", 0o000)
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    done = fogvault("backup", "-r", "repo", "src", wrap=AS_USER)
    assert done.returncode == 3, done.stderr
    assert b"secret.txt" in done.stderr and b"warning" in done.stderr
    snap = json.loads(fogvault("cat", "snapshot", "latest", "-r", "repo").stdout)
    assert snap["summary"]["files_failed"] == 1 and snap["summary"]["files_new"] == 1
    assert any("secret.txt" in w for w in snap["warnings"])
    listing = fogvault("ls", "latest", str(src), "-r", "repo").stdout.decode()
    assert "ok.txt" in listing and "secret.txt" not in listing


def test_a_file_under_a_lease_is_read_once_the_lease_is_broken(fogvault, repo_and_src,
                                                               tmp_path):
    """A file server (Samba's oplocks, an NFS server's delegations) holds a lease on a file:
    an open with O_NONBLOCK fails with EWOULDBLOCK where a plain open waits for the lease to be
    broken. The backup waits as a plain open does, instead of skipping the file."""
    import fcntl
    import signal

    leased = tmp_path / "src" / "leased"
    leased.write_bytes(b"held by a file server")
    holder = os.open(leased, os.O_RDONLY)
    broken = []

    def give_up_the_lease(signum, frame) -> None:  # SIGIO: another process opens the file
        broken.append(signum)
        fcntl.fcntl(holder, fcntl.F_SETLEASE, fcntl.F_UNLCK)

    previous = signal.signal(signal.SIGIO, give_up_the_lease)
    try:
        fcntl.fcntl(holder, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        done = fogvault("backup", "-r", "repo", "src")
    finally:
        signal.signal(signal.SIGIO, previous)
        os.close(holder)
    assert broken and done.returncode == 0, done.stderr
    found = json.loads(fogvault("ls", "-r", "repo", "latest", str(tmp_path / "src"),
                                "--json").stdout)
    assert any(e["name"] == "leased" and e["size"] == 21 for e in found)


def test_a_given_path_below_a_folder_that_cannot_be_listed_is_backed_up(fogvault, tmp_path):
    """src/a/b can be searched but not listed (mode 111); src/a and src/a/b/c are given. The
    listing of b fails with a warning, and c was then left out although its path was listed in
    the snapshot."""
    (tmp_path / "src" / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "src" / "a" / "b" / "c" / "f").write_bytes(b"below")
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    (tmp_path / "src" / "a" / "b").chmod(0o111)
    try:
        done = fogvault("backup", "-r", "repo", "src/a", "src/a/b/c", wrap=AS_USER)
    finally:
        (tmp_path / "src" / "a" / "b").chmod(0o755)
    assert done.returncode == 3, done.stderr
    assert b"src/a/b: cannot list folder: Permission denied" in done.stderr
    shown = fogvault("dump", "-r", "repo", "latest", str(tmp_path / "src/a/b/c/f"))
    assert shown.stdout == b"below", shown.stderr


def test_a_listed_path_with_a_nul_byte_is_a_usage_error(fogvault, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "list").write_bytes(b"src\nsrc/x\0y\n")
    assert fogvault("init", "-r", "repo", "--kdf", "interactive").returncode == 0
    done = fogvault("backup", "-r", "repo", "--files-from-verbatim", "list")
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode().splitlines() == [
        "error: a path holds a NUL byte: 'src/x\\x00y'"]
