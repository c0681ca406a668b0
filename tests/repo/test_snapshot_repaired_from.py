"""The snapshot field ``repaired_from`` (docs/format.md, section 14): a uid, written only when
set and read back through a repository; null reads as absent; any other value makes the
snapshot malformed, naming the field, exactly as ``original``."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PASSWORD

from fogvault.errors import MalformedObject
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, new_uid, now

sys.path.insert(0, str(Path(__file__).parents[1] / "format"))
import second_reader as sr  # docs/format.md's second implementation


def _plain(kind: type[Snapshot] = Snapshot) -> Snapshot:
    return kind(uid=new_uid(), time=now(), host="h", user="u", paths=["/p"],
                    tree=bytes(32))


def _saved(repo: Repository, **fields: object) -> str:
    """A snapshot whose JSON has ``fields`` set as given (none omitted); its uid."""

    class Raw(Snapshot):
        def encode(self) -> bytes:
            return json.dumps({**self.to_json(), **fields}).encode()

    snapshot = _plain(Raw)
    repo.save_snapshot(snapshot)
    return snapshot.uid


def test_written_only_when_set_and_read_back(make_repo: Callable[..., Repository]) -> None:
    repo = make_repo()
    plain = _plain()
    repaired = dataclasses.replace(plain, uid=new_uid(), repaired_from=plain.uid)
    assert "repaired_from" not in plain.to_json()
    assert repaired.to_json()["repaired_from"] == plain.uid
    for snapshot in (plain, repaired):
        repo.save_snapshot(snapshot)
    assert repo.load_snapshot(plain.uid).repaired_from is None
    loaded = repo.load_snapshot(repaired.uid)
    assert loaded.repaired_from == plain.uid and loaded.encode() == repaired.encode()
    reader = sr.Repository(repo.targets.urls[0], PASSWORD)
    assert reader.snapshot(repaired.uid)["repaired_from"] == plain.uid


def test_null_reads_as_absent(make_repo: Callable[..., Repository]) -> None:
    repo = make_repo()
    assert repo.load_snapshot(_saved(repo, repaired_from=None)).repaired_from is None


@pytest.mark.parametrize("field", ["repaired_from", "original"])
@pytest.mark.parametrize("value", ["x", "0" * 15, "0" * 17, "A" * 16, "g" * 16, " " + "0" * 15,
                                   16, True, [], {}])
def test_anything_else_is_malformed(make_repo: Callable[..., Repository], field: str,
                                    value: object) -> None:
    repo = make_repo()
    uid = _saved(repo, **{field: value})
    with pytest.raises(MalformedObject, match=f"^snapshot {uid} is malformed: malformed {field}$"):
        repo.load_snapshot(uid)
    assert uid not in {s.uid for s in repo.snapshots()}  # skipped when listing, as any other
    reader = sr.Repository(repo.targets.urls[0], PASSWORD)
    with pytest.raises(sr.FormatError, match=f"malformed {field}"):
        reader.snapshot(uid)
