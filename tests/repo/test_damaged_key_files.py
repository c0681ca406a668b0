"""A key file damaged on every target is named, not taken for a wrong password."""

from __future__ import annotations

import pytest
from conftest import FAST_KDF, PASSWORD

from fogvault.errors import IntegrityError, WrongPassword
from fogvault.repo.repository import Repository


def _truncate_key(folder, key_id: str) -> None:
    with open(folder / "keys" / key_id, "r+b") as f:
        f.truncate(20)


def test_the_only_key_file_damaged_is_an_integrity_error(make_repo, tmp_path):
    key_id = make_repo("repo").key_id
    _truncate_key(tmp_path / "repo", key_id)
    with pytest.raises(IntegrityError, match=f"^no key file can be read: {key_id} is damaged "
                                             "on every target that holds it$"):
        Repository.open([str(tmp_path / "repo")], PASSWORD, use_cache=False)


def test_a_damaged_key_file_is_named_when_no_other_opens(make_repo, tmp_path):
    repo = make_repo("repo")
    other = repo.add_key(b"another password", FAST_KDF).key_id
    _truncate_key(tmp_path / "repo", repo.key_id)
    with pytest.raises(WrongPassword, match=f"key file\\(s\\) {repo.key_id} could not be read"):
        Repository.open([str(tmp_path / "repo")], PASSWORD, use_cache=False)
    with Repository.open([str(tmp_path / "repo")], b"another password", use_cache=False) as ok:
        assert ok.key_id == other
