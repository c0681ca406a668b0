"""The folders above the snapshots: names by time made unique as restic makes them, ``latest``
links, host and tag folders with names that are file names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fogvault.mount.layout import FOLDER, Link, build_layout, folder_name
from fogvault.repo.snapshot import Snapshot

T0 = datetime(2026, 11, 24, 10, 15, 3, 250_000, tzinfo=UTC)


def _snapshot(uid: str, time: datetime = T0, host: str = "laptop",
              tags: list[str] | None = None) -> Snapshot:
    return Snapshot(uid=uid, time=time, host=host, user="me", paths=["/data"],
                    tree=bytes(32), tags=tags or [])


def _name(time: datetime) -> bytes:
    return time.astimezone().isoformat(timespec="seconds").encode()


def test_the_top_folders_exist_without_snapshots() -> None:
    layout = build_layout([])
    assert layout.folders[()] == {b"ids": FOLDER, b"snapshots": FOLDER, b"hosts": FOLDER,
                                  b"tags": FOLDER}
    assert all(layout.folders[(top,)] == {} for top in layout.folders[()])
    assert layout.snapshots == 0


def test_snapshots_within_one_second_are_told_apart_in_order_and_keep_their_names() -> None:
    a, b, c = (_snapshot(f"{n:016x}", T0 + timedelta(milliseconds=n)) for n in (1, 2, 3))
    later = _snapshot("f" * 16, T0 + timedelta(seconds=1))
    before = build_layout([a, b]).folders[(b"snapshots",)]
    after = build_layout([a, b, c, later]).folders[(b"snapshots",)]
    base = _name(T0)
    assert before == {base: a, base + b"-1": b, b"latest": Link(base + b"-1", b)}
    assert after == {base: a, base + b"-1": b, base + b"-2": c, _name(later.time): later,
                     b"latest": Link(_name(later.time), later)}


def test_ids_hosts_and_tags() -> None:
    old = _snapshot("a" * 16, tags=["daily", "keep"])
    new = _snapshot("b" * 16, T0 + timedelta(hours=1), host="server", tags=["daily"])
    layout = build_layout([old, new])
    folders = layout.folders
    assert folders[(b"ids",)] == {b"a" * 16: old, b"b" * 16: new}
    assert set(folders[(b"hosts",)]) == {b"laptop", b"server"}
    assert folders[(b"hosts", b"laptop")] == {_name(T0): old, b"latest": Link(_name(T0), old)}
    assert folders[(b"tags", b"daily")][b"latest"] == Link(_name(new.time), new)
    assert set(folders[(b"tags", b"daily")]) == {_name(T0), _name(new.time), b"latest"}
    assert set(folders[(b"tags", b"keep")]) == {_name(T0), b"latest"}
    assert layout.snapshots == 2


def test_hosts_and_tags_that_are_no_file_names() -> None:
    assert [folder_name(t) for t in ("", ".", "..", "a/b", "x\0y", "caf\udce9", "\ud800")] == [
        b"_", b"_", b"__", b"a_b", b"x_y", b"caf\xe9", b"?"]
    # two tags that become the same name, and a tag given twice: the snapshot is there once
    snapshot = _snapshot("c" * 16, tags=["a/b", "a_b", "a_b"])
    assert build_layout([snapshot]).folders[(b"tags", b"a_b")] == {
        _name(T0): snapshot, b"latest": Link(_name(T0), snapshot)}
