"""The snapshot field ``flags_read`` (docs/format.md, section 14): absent, ``true`` or
``false`` are read alike by FogVault and the second reader; any other value makes the
snapshot malformed in both, and FogVault's error names the field."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import PASSWORD

from fogvault.errors import MalformedObject
from fogvault.repo.repository import Repository
from fogvault.repo.snapshot import Snapshot, new_uid, now

sys.path.insert(0, str(Path(__file__).parent))
import second_reader as sr  # docs/format.md's second implementation


def _saved(repo: Repository, **fields: object) -> str:
    """A snapshot whose JSON has ``fields`` set as given (none omitted); its uid."""

    class Raw(Snapshot):
        def encode(self) -> bytes:
            return json.dumps({**self.to_json(), **fields}).encode()

    snapshot = Raw(uid=new_uid(), time=now(), host="h", user="u", paths=["/p"],
                   tree=bytes(32))
    repo.save_snapshot(snapshot)
    return snapshot.uid


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_read(make_repo: Callable[..., Repository], value: bool) -> None:
    repo = make_repo()
    uid = _saved(repo, flags_read=value)
    assert repo.load_snapshot(uid).flags_read is value
    reader = sr.Repository(repo.targets.urls[0], PASSWORD)
    assert reader.snapshot(uid)["flags_read"] is value


@pytest.mark.parametrize("value", [1, 0, "true", None, [], {}])
def test_anything_else_is_malformed_in_both_readers(
        make_repo: Callable[..., Repository], value: object) -> None:
    repo = make_repo()
    uid = _saved(repo, flags_read=value)
    with pytest.raises(MalformedObject, match=f"snapshot {uid} is malformed: flags_read is "
                                              "not a boolean"):
        repo.load_snapshot(uid)
    reader = sr.Repository(repo.targets.urls[0], PASSWORD)
    with pytest.raises(sr.FormatError, match="flags_read"):
        reader.snapshot(uid)
