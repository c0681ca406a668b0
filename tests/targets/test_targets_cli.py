"""The multi-target commands through the real CLI, on local folders: --min-targets and exit
codes, snapshots marked, targets, check, repair, target add/remove, different repositories."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from fogvault.sizes import format_size


@pytest.fixture
def three(fogvault, tmp_path) -> list[str]:
    """-r a -r b -r c, initialised, with one snapshot of tmp_path/src."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(random.Random(i).randbytes(200_000))
    args = ["-r", "a", "-r", "b", "-r", "c"]
    assert fogvault(*args, "init", "--kdf", "interactive", "--pack-size", "1").returncode == 0
    assert fogvault(*args, "backup", "src").returncode == 0
    return args


def _unreachable(tmp_path: Path, name: str) -> None:
    """Make target ``name`` unusable (its folder is now a plain file); return it with _back."""
    (tmp_path / name).rename(tmp_path / f"{name}.away")
    (tmp_path / name).write_text("not a folder")


def _back(tmp_path: Path, name: str) -> None:
    (tmp_path / name).unlink()
    (tmp_path / f"{name}.away").rename(tmp_path / name)


def test_min_targets_decides_the_commit_and_the_exit_code(fogvault, three, tmp_path) -> None:
    (tmp_path / "src" / "new").write_bytes(b"new data")
    _unreachable(tmp_path, "c")
    failed = fogvault(*three, "backup", "src")
    assert failed.returncode == 1
    assert b"only 2 of 3 targets hold all data" in failed.stderr and b"/c (" in failed.stderr
    partial = fogvault(*three, "backup", "src", "--min-targets", "2", "--json")
    assert partial.returncode == 3, partial.stderr
    assert b"/c missed the write" in partial.stderr and b"fogvault repair" in partial.stderr
    uid = json.loads(partial.stdout.splitlines()[-1])["snapshot"]
    assert (tmp_path / "a" / "snapshots" / uid).exists()
    _back(tmp_path, "c")
    assert not (tmp_path / "c" / "snapshots" / uid).exists()
    listing = fogvault(*three, "snapshots")
    assert f"{uid}*".encode() in listing.stdout and b"2/3" in listing.stdout
    assert b"on fewer than all 3 targets" in listing.stdout
    as_json = json.loads(fogvault(*three, "snapshots", "--json").stdout)
    assert [len(s["targets"]) for s in as_json] == [3, 2]
    assert fogvault(*three, "--min-targets", "4", "backup", "src").returncode == 2


def test_targets_report_and_the_ledger_of_the_last_operation(fogvault, three, tmp_path) -> None:
    pack = next((tmp_path / "b" / "data").rglob("*/*"))
    pack.unlink()
    done = fogvault(*three, "targets", "--json")
    assert done.returncode == 3  # b is not a complete copy
    report = json.loads(done.stdout)
    assert [r["state"] for r in report] == ["ok", "ok", "ok"]
    assert [len(r["missing"]) for r in report] == [0, 1, 0]
    assert report[1]["missing"] == [f"data/{pack.parent.name}/{pack.name}"]
    last = report[0]["last_operation"]
    assert last["command"] == "backup" and last["requests"]["write"] > 0
    assert report[0]["objects"] == report[2]["objects"] > 0
    text = fogvault(*three, "targets").stdout.decode()
    assert "Missing" in text and "targets" in text  # the previous operation was 'targets'


@pytest.mark.parametrize("away", ["empty", "missing"])
def test_targets_shows_a_target_with_no_repository_as_a_row(fogvault, three, tmp_path, away):
    (tmp_path / "c").rename(tmp_path / "usb")  # the disk's contents, while it is unmounted
    if away == "empty":
        (tmp_path / "c").mkdir()  # the mount point
    shown = fogvault(*three, "targets")
    assert shown.returncode == 3, shown.stderr
    rows = {line.split()[0]: line.split()[1:] for line in shown.stdout.decode().splitlines()
            if line.startswith(str(tmp_path))}
    assert [rows[str(tmp_path / n)][0] for n in "ab"] == ["ok", "ok"]
    assert rows[str(tmp_path / "c")][:2] == ["no", "repository"]
    assert (f"{tmp_path / 'c'}: no repository there (not mounted? to make it a copy of this "
            "repository, use 'fogvault target add").encode() in shown.stdout
    report = json.loads(fogvault(*three, "targets", "--json").stdout)
    assert [(r["state"], r["reachable"]) for r in report] == [
        ("ok", True), ("ok", True), ("no repository", True)]
    # commands that only read go on from the others, with a warning (the disk died; restore)
    listed = fogvault(*three, "snapshots")
    assert listed.returncode == 0 and b"no repository there" in listed.stderr
    restored = fogvault(*three, "restore", "latest", "-t", "restored")
    assert restored.returncode == 0, restored.stderr
    checked = fogvault(*three, "check")
    assert checked.returncode == 1
    assert f"{tmp_path / 'c'}: UNREACHABLE (no repository there".encode() in checked.stdout
    # one that writes refuses it, and says how to go on without it
    refused = fogvault(*three, "backup", "src")
    assert refused.returncode == 10
    assert refused.stderr.decode().rstrip().endswith(
        "; to go on without it, leave it out or give --min-targets 2")
    assert fogvault("-r", "c", "targets").returncode == 10
    if away == "empty":
        assert list((tmp_path / "c").iterdir()) == []  # nothing written to the mount point
    else:
        assert not (tmp_path / "c").exists()
    shutil.rmtree(tmp_path / "c", ignore_errors=True)
    (tmp_path / "usb").rename(tmp_path / "c")  # mounted again
    assert fogvault(*three, "targets").returncode == 0


def test_targets_exits_3_with_a_target_unreachable(fogvault, three, tmp_path) -> None:
    _unreachable(tmp_path, "b")
    shown = fogvault(*three, "targets", "--json")
    assert shown.returncode == 3, shown.stderr
    assert [r["state"] for r in json.loads(shown.stdout)] == ["ok", "unreachable", "ok"]


def test_check_then_repair_restores_redundancy(fogvault, three, tmp_path) -> None:
    pack = next((tmp_path / "a" / "data").rglob("*/*"))
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 1
    pack.write_bytes(bytes(data))
    (tmp_path / "c" / "config").unlink()
    check = fogvault(*three, "check", "--read-data", "--json")
    assert check.returncode == 1
    targets = json.loads(check.stdout.splitlines()[-1])["targets"]
    name = f"data/{pack.parent.name}/{pack.name}"
    assert [(t["missing"], t["corrupt"]) for t in targets] == [([], [name]), ([], []),
                                                                (["config"], [])]
    dry = fogvault(*three, "repair", "--dry-run")
    assert dry.returncode == 0 and b"dry run: 2 changes planned" in dry.stdout
    pack_size, config_size = len(data), (tmp_path / "a" / "config").stat().st_size
    assert dry.stdout.decode().splitlines()[:3] == [
        f"{tmp_path / 'a'}: would replace 1 damaged copy ({format_size(pack_size)})",
        f"{tmp_path / 'b'}: nothing to copy",
        f"{tmp_path / 'c'}: would copy 1 object ({format_size(config_size)})"]
    assert not (tmp_path / "c" / "config").exists()
    done = fogvault("-v", *three, "repair")  # the damage check found is in the ledger
    assert done.returncode == 0, done.stderr
    assert f"replaced: {name}".encode() in done.stdout and b"copied: config" in done.stdout
    assert f"{tmp_path / 'a'}: replaced 1 damaged copy (".encode() in done.stdout
    assert fogvault(*three, "check", "--read-data").returncode == 0
    assert b"nothing to repair" in fogvault(*three, "repair").stdout


def test_prune_with_a_target_away_exits_3_naming_it(fogvault, three, tmp_path) -> None:
    (tmp_path / "src" / "f0").write_bytes(b"replaced")
    assert fogvault(*three, "backup", "src").returncode == 0
    first = json.loads(fogvault(*three, "snapshots", "--json").stdout)[0]["uid"]
    assert fogvault(*three, "forget", first).returncode == 0
    _unreachable(tmp_path, "b")
    pruned = fogvault(*three, "prune", "--max-unused", "0")
    assert pruned.returncode == 3, pruned.stderr
    assert b"/b missed the delete" in pruned.stderr or b"/b missed the write" in pruned.stderr
    _back(tmp_path, "b")
    assert fogvault(*three, "repair").returncode == 0  # applies the deletes b missed, too
    assert fogvault(*three, "check", "--read-data").returncode == 0
    names = [sorted(str(p.relative_to(tmp_path / n)) for p in (tmp_path / n).rglob("*")
                    if p.is_file() and "locks" not in p.parts) for n in "abc"]
    assert names[0] == names[1] == names[2]


def test_target_add_and_remove(fogvault, three, tmp_path) -> None:
    added = fogvault(*three, "target", "add", "d")
    assert added.returncode == 0, added.stderr
    assert b"holds the repository now" in added.stdout
    four = [*three, "-r", "d"]
    assert fogvault(*four, "check", "--read-data").returncode == 0
    again = fogvault(*three, "target", "add", "d")  # idempotent: a resumed add finishes
    assert again.returncode == 0 and b"nothing to repair" in again.stdout
    kept = fogvault(*four, "target", "remove", "d")
    assert kept.returncode == 0 and b"its copy is kept" in kept.stdout
    assert (tmp_path / "d" / "config").exists()
    gone = fogvault(*three, "target", "remove", "d", "--delete-data")
    assert gone.returncode == 0, gone.stderr
    assert not any(p.is_file() for p in (tmp_path / "d").rglob("*"))
    assert fogvault(*three, "check").returncode == 0


def test_target_add_dry_run_says_what_it_would_copy(fogvault, three, tmp_path) -> None:
    held = [p for p in (tmp_path / "a").rglob("*") if p.is_file() and "locks" not in p.parts]
    size = format_size(sum(p.stat().st_size for p in held))
    dry = fogvault(*three, "target", "add", "-n", "d")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.decode().splitlines() == [
        f"{tmp_path / 'd'}: would copy {len(held)} objects ({size})",
        f"dry run: {len(held)} changes planned, nothing was changed"]
    listed = fogvault("-v", *three, "target", "add", "-n", "d").stdout.decode().splitlines()
    assert sorted(line for line in listed if line.startswith("  ")) == sorted(
        f"  copied: {p.relative_to(tmp_path / 'a')}" for p in held)
    assert not any(p.is_file() for p in (tmp_path / "d").rglob("*"))


def test_different_repositories_are_refused(fogvault, three, tmp_path) -> None:
    assert fogvault("-r", "other", "init", "--kdf", "interactive").returncode == 0
    mixed = fogvault("-r", "a", "-r", "other", "snapshots")
    assert mixed.returncode == 2
    assert b"holds a different repository than" in mixed.stderr
    shutil.rmtree(tmp_path / "other")
    (tmp_path / "other").mkdir()
    empty = fogvault("-r", "a", "-r", "other", "tag", "--add", "t", "latest")  # a write
    assert empty.returncode == 10 and b"fogvault target add" in empty.stderr
