"""``snapshots`` with several targets: what the Targets column and its marks claim about the
targets that could not be listed, and about snapshots a target is yet to delete."""

from __future__ import annotations

import json
import random
from pathlib import Path

from fogvault.backup.archiver import Archiver, BackupOptions

#: nothing listens on port 1: the connection is refused at once
UNREACHABLE = "sftp://nobody@127.0.0.1:1/nowhere"


def _two_snapshots(make_repo, tmp_path: Path) -> tuple[object, str, str]:
    repo = make_repo("one", "two", pack_size=128 * 1024)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(random.Random(1).randbytes(50_000))
    first = Archiver(repo, BackupOptions()).run([str(src)]).snapshot.uid
    (src / "b").write_bytes(random.Random(2).randbytes(50_000))
    second = Archiver(repo, BackupOptions()).run([str(src)]).snapshot.uid
    return repo, first, second


def _row(stdout: bytes, uid: str) -> str:
    [row] = [line for line in stdout.decode().splitlines() if line.startswith(uid)]
    return row


def test_a_target_that_cannot_be_listed_is_unknown_not_lacking(make_repo, tmp_path, fogvault):
    """The drill's finding 6: with a target unreachable, a snapshot every reachable target
    holds is not claimed to be missing there ('*', 'repair copies them'): it is marked '?'
    with a footnote naming the target. One that a reachable target lacks keeps its '*'."""
    repo, first, second = _two_snapshots(make_repo, tmp_path)
    one, two = repo.targets.urls
    (Path(two) / "snapshots" / second).unlink()
    urls = ["-r", one, "-r", two, "-r", UNREACHABLE, "--min-targets", "1"]
    env = {"FOGVAULT_RETRY_ATTEMPTS": "1"}
    listed = fogvault(*urls, "snapshots", env=env)
    assert listed.returncode == 0, listed.stderr
    assert _row(listed.stdout, first).split()[0] == f"{first}?"
    assert _row(listed.stdout, first).endswith("2/3?")
    assert _row(listed.stdout, second).split()[0] == f"{second}*"
    assert _row(listed.stdout, second).endswith("1/3*")
    assert (b"* on fewer than all 2 reachable targets: 'fogvault repair' copies them"
            in listed.stdout)
    assert (f"? on every reachable target; not known for {UNREACHABLE}, which could not be "
            "listed").encode() in listed.stdout
    as_json = json.loads(fogvault(*urls, "--json", "snapshots", env=env).stdout)
    assert [s["targets_unknown"] for s in as_json] == [[UNREACHABLE], [UNREACHABLE]]
    assert [len(s["targets"]) for s in as_json] == [2, 1]
    every = fogvault("-r", one, "-r", two, "snapshots")  # all listed: no '?' at all
    assert b"?" not in every.stdout and _row(every.stdout, first).endswith("2/2")


def test_a_snapshot_a_target_missed_the_deletion_of_is_not_to_be_copied(make_repo, tmp_path,
                                                                         fogvault):
    """Forgotten while the second target was away (the ledger remembers it missed that): the
    snapshot is still there, but 'repair' deletes it, so it is not marked as one to copy."""
    repo, first, _ = _two_snapshots(make_repo, tmp_path)
    one, two = repo.targets.urls
    Path(two).rename(f"{two}.away")  # the disk is not mounted
    away = fogvault("-r", one, "-r", two, "--min-targets", "1", "forget", first)
    assert away.returncode == 3, away.stderr
    Path(f"{two}.away").rename(two)
    listed = fogvault("-r", one, "-r", two, "snapshots")
    assert _row(listed.stdout, first).split()[0] == f"{first}-"
    assert b"- forgotten while the targets that still hold it were away: 'fogvault repair' " \
        b"deletes it there" in listed.stdout
    assert b"copies them" not in listed.stdout
    assert fogvault("-r", one, "-r", two, "repair").returncode == 0
    assert first.encode() not in fogvault("-r", one, "-r", two, "snapshots").stdout


def test_a_target_that_holds_no_repository_is_left_out_not_unknown(make_repo, tmp_path,
                                                                     fogvault):
    """A disk not mounted (its mount point an empty folder) was listed: it holds no snapshot,
    so it is neither 'could not be listed' ('?') nor one that repair copies to ('*'), which
    repair refuses. It is left out of the counts and named in a footnote."""
    repo, first, second = _two_snapshots(make_repo, tmp_path)
    one, two = repo.targets.urls
    empty = tmp_path / "mount-point"
    empty.mkdir()
    listed = fogvault("-r", one, "-r", two, "-r", str(empty), "snapshots")
    assert listed.returncode == 0, listed.stderr
    assert _row(listed.stdout, first).split()[0] == first
    assert _row(listed.stdout, first).endswith(" 2/2") and _row(listed.stdout, second).endswith(
        " 2/2")
    assert b"could not be listed" not in listed.stdout and b"copies them" not in listed.stdout
    assert (f"left out: {empty}, which holds no repository (not mounted?)".encode()
            in listed.stdout)
    as_json = json.loads(fogvault("-r", one, "-r", two, "-r", str(empty), "--json",
                                  "snapshots").stdout)
    assert [s["targets_unknown"] for s in as_json] == [[], []]
    assert list(empty.iterdir()) == []  # nothing written into the mount point
