"""Passwords and key files: wrong passwords, several keys, passwd, removal rules."""

from __future__ import annotations

import pytest
from conftest import FAST_KDF, PASSWORD

from fogvault.crypto import MasterKey, password_key, random_salt, seal
from fogvault.errors import (
    FogVaultError,
    IntegrityError,
    LockError,
    RepositoryExists,
    RepositoryNotFound,
    TargetsUnavailable,
    UsageError,
    WrongPassword,
)
from fogvault.repo.format import ObjectKind, aad
from fogvault.repo.keys import KeyFile
from fogvault.repo.repository import Repository
from fogvault.storage import open_storage
from fogvault.storage.faulty import Fault, FaultyStorage


def test_wrong_password_is_refused(make_repo):
    repo = make_repo()
    with pytest.raises(WrongPassword):
        Repository.open(repo.targets.urls, b"not it", use_cache=False)


def test_init_refuses_an_existing_repository(make_repo):
    repo = make_repo()
    with pytest.raises(RepositoryExists):
        Repository.init(repo.targets.urls, PASSWORD, kdf=FAST_KDF, use_cache=False)


def test_open_of_an_empty_folder_says_no_repository(tmp_path):
    with pytest.raises(RepositoryNotFound):
        Repository.open([str(tmp_path / "nothing")], PASSWORD, use_cache=False)


def test_added_key_opens_the_same_repository(make_repo):
    repo = make_repo()
    repo.add_key(b"second", FAST_KDF)
    other = Repository.open(repo.targets.urls, b"second", use_cache=False)
    assert other.config.repo_id == repo.config.repo_id
    assert other.master.to_bytes() == repo.master.to_bytes()
    assert len(other.key_files()) == 2


def test_passwd_replaces_the_old_password(make_repo):
    repo = make_repo()
    old_key = repo.key_id
    repo.change_password(b"new password", FAST_KDF)
    assert repo.key_id != old_key
    assert [k.key_id for k in repo.key_files()] == [repo.key_id]
    Repository.open(repo.targets.urls, b"new password", use_cache=False)
    with pytest.raises(WrongPassword):
        Repository.open(repo.targets.urls, PASSWORD, use_cache=False)


def test_last_key_and_key_in_use_cannot_be_removed(make_repo):
    repo = make_repo()
    with pytest.raises(UsageError, match="in use"):
        repo.remove_key(repo.key_id)
    second = repo.add_key(b"second", FAST_KDF)
    other = Repository.open(repo.targets.urls, b"second", use_cache=False)
    other.remove_key(repo.key_id)
    assert [k.key_id for k in other.key_files()] == [second.key_id]
    with pytest.raises(UsageError):
        other.remove_key(second.key_id)
    with pytest.raises(UsageError, match="no key"):
        other.remove_key("0123456789abcdef")


def test_a_key_is_removed_by_a_unique_prefix_of_its_id(make_repo, tmp_path):
    """As snapshot uids: a prefix that names one key file will do; one that names several is
    a usage error, and removes nothing."""
    repo = make_repo()
    for key_id in ("ab00000000000000", "ab11111111111111"):
        (tmp_path / "repo" / "keys" / key_id).write_text("garbage\n")
    with pytest.raises(UsageError, match="'ab' matches 2 keys"):
        repo.remove_key("ab")
    assert repo.remove_key("AB1") == "ab11111111111111"
    assert sorted(p.name for p in (tmp_path / "repo" / "keys").iterdir()) == sorted(
        [repo.key_id, "ab00000000000000"])


def test_the_loser_of_two_inits_at_once_takes_its_key_file_back(tmp_path):
    """Both inits find the folder empty; B writes its key and config first. A's config write
    then finds B's: A fails and leaves no key file (wrapping its own master key) behind."""
    url = str(tmp_path / "repo")
    faulty = FaultyStorage(open_storage(url))

    def b_inits(method: str, name: str) -> None:
        Repository.init([url], PASSWORD, kdf=FAST_KDF, use_cache=False).close()

    faulty.inject("write", Fault(hook=b_inits, prefix="keys/"))
    with pytest.raises(RepositoryExists, match="at the same time"):
        Repository.init([faulty], PASSWORD, kdf=FAST_KDF, use_cache=False)
    assert len(list((tmp_path / "repo" / "keys").iterdir())) == 1
    Repository.open([url], PASSWORD, use_cache=False).close()


def test_the_loser_of_an_init_race_keeps_its_key_where_its_config_may_be(tmp_path):
    """Another init wins target two; ours wrote its config to target one, whose config then
    cannot be read back (a timeout). Our key file stays there: without it target one held a
    config and no key, and neither open nor init could use it."""
    from fogvault.storage.faulty import transient

    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    faulty_one, faulty_two = FaultyStorage(open_storage(one)), FaultyStorage(open_storage(two))

    def other_inits_two(method: str, name: str) -> None:
        Repository.init([two], b"other", kdf=FAST_KDF, use_cache=False).close()

    faulty_two.inject("write", Fault(hook=other_inits_two, prefix="keys/"))
    faulty_one.inject("read", Fault(error=transient("timed out"), prefix="config", times=5))
    with pytest.raises(RepositoryExists, match="at the same time"):
        Repository.init([faulty_one, faulty_two], PASSWORD, kdf=FAST_KDF, use_cache=False)
    Repository.open([one], PASSWORD, use_cache=False).close()


def _foreign_key_file(key_id: str, password: bytes) -> bytes:
    """A key file that opens with ``password`` and wraps a master key of its own."""
    salt = random_salt()
    sealed = seal(password_key(password, salt, FAST_KDF), MasterKey.generate().to_bytes(),
                  aad(ObjectKind.KEY, key_id.encode()))
    return KeyFile(key_id, FAST_KDF, salt, sealed, "", "", "").encode()


def test_a_key_file_of_another_master_key_does_not_stop_opening(make_repo, tmp_path, caplog):
    """Tried first (sorted by name), it opens with the password but not the config: the next
    key file that opens is tried, and the stray one is named so it can be removed."""
    repo = make_repo()
    (tmp_path / "repo" / "keys" / "0000000000000000").write_bytes(
        _foreign_key_file("0000000000000000", PASSWORD))
    opened = Repository.open(repo.targets.urls, PASSWORD, use_cache=False)
    assert opened.key_id == repo.key_id
    assert "key file 0000000000000000 opens with this password" in caplog.text
    opened.remove_key("0000000000000000")
    assert [k.key_id for k in opened.key_files()] == [repo.key_id]


def test_a_password_that_opens_only_a_stray_key_is_told_so(make_repo, tmp_path):
    """Not "the config fails verification": the key file it opens is named, and the likely
    cause (this password belongs to that stray key, not to the repository)."""
    from fogvault.errors import IntegrityError

    repo = make_repo()
    (tmp_path / "repo" / "keys" / "0000000000000000").write_bytes(
        _foreign_key_file("0000000000000000", b"stray"))
    with pytest.raises(IntegrityError, match=r"opens only key file.s. 0000000000000000.*wrong "
                                             r"password"):
        Repository.open(repo.targets.urls, b"stray", use_cache=False)


def test_two_key_removals_at_once_leave_a_key(make_repo):
    """A removes B's key while B removes A's: each checked "not the last" before the other
    deleted. Under the exclusive lock the second removal is refused, and a key is left."""
    repo = make_repo()
    second = repo.add_key(b"second", FAST_KDF)
    url = repo.targets.urls[0]
    faulty = FaultyStorage(open_storage(url))
    a = Repository.open([faulty], PASSWORD, use_cache=False, load_index=False)
    b = Repository.open([url], b"second", use_cache=False, load_index=False)
    refused = []

    def b_removes_a(method: str, name: str) -> None:
        with pytest.raises(LockError) as error:
            b.remove_key(a.key_id)
        refused.append(error.value)

    # B runs between A's checks and A's deletion.
    faulty.inject("delete", Fault(hook=b_removes_a, prefix="keys/"))
    a.remove_key(second.key_id)
    assert refused
    assert [k.key_id for k in a.key_files()] == [a.key_id]
    Repository.open([url], PASSWORD, use_cache=False, load_index=False)


def test_passwd_is_exclusive_with_a_key_removal(make_repo):
    """``key passwd`` deletes the key in use: it takes the exclusive lock too."""
    repo = make_repo()
    second = repo.add_key(b"second", FAST_KDF)
    url = repo.targets.urls[0]
    faulty = FaultyStorage(open_storage(url))
    a = Repository.open([faulty], b"second", use_cache=False, load_index=False)
    b = Repository.open([url], PASSWORD, use_cache=False, load_index=False)

    def b_removes_second(method: str, name: str) -> None:
        with pytest.raises(LockError):
            b.remove_key(second.key_id)

    faulty.inject("delete", Fault(hook=b_removes_second, prefix="keys/"))
    new = a.change_password(b"third", FAST_KDF)
    assert {k.key_id for k in a.key_files()} == {repo.key_id, new.key_id}


def test_a_key_is_removed_only_while_every_target_holds_the_key_in_use(make_repo):
    """The key in use is never removed, so if every target holds it, each keeps a key that
    opens it. Here the second password's key reached target one only: removing the first key
    with it would have left target two with no key file at all."""
    repo = make_repo("one", "two")
    one, two = repo.targets.urls
    only_on_one = Repository.open([one], PASSWORD, use_cache=False, load_index=False)
    only_on_one.add_key(b"second", FAST_KDF)
    both = Repository.open([one, two], b"second", use_cache=False, load_index=False)
    with pytest.raises(FogVaultError, match=f"{two} does not hold the key in use") as refused:
        both.remove_key(repo.key_id)
    assert refused.value.exit_code == 1  # not a usage error: the command line was right
    Repository.open([two], PASSWORD, use_cache=False, load_index=False)


def test_removals_one_after_the_other_leave_a_key_that_opens(make_repo, tmp_path):
    """A and B open; A removes B's key; then B, whose own key is gone, removes A's. A stray
    key file (another master key) counted as "a key left": nothing opened afterwards."""
    repo = make_repo()
    (tmp_path / "repo" / "keys" / "ffffffffffffffff").write_bytes(
        _foreign_key_file("ffffffffffffffff", b"stray"))
    second = repo.add_key(b"second", FAST_KDF)
    url = repo.targets.urls[0]
    a = Repository.open([url], PASSWORD, use_cache=False, load_index=False)
    b = Repository.open([url], b"second", use_cache=False, load_index=False)
    a.remove_key(second.key_id)
    with pytest.raises(FogVaultError, match="does not hold the key in use"):
        b.remove_key(a.key_id)
    Repository.open([url], PASSWORD, use_cache=False, load_index=False)


def test_passwd_keeps_the_old_key_when_the_new_one_misses_a_target(make_repo):
    """Target two refuses the new key: deleting the old key would leave target one opening
    only with the new password and target two only with the old one."""
    from fogvault.errors import TargetsBehind
    from fogvault.storage.errors import PermanentStorageError

    repo = make_repo("one", "two")
    one, two = repo.targets.urls
    faulty_two = FaultyStorage(open_storage(two))
    faulty_two.inject("write", Fault(error=PermanentStorageError("disk full"), prefix="keys/"))
    opened = Repository.open([one, faulty_two], PASSWORD, use_cache=False, load_index=False)
    with pytest.raises(TargetsBehind, match=f"did not reach {two}: the old key is kept"):
        opened.change_password(b"new", FAST_KDF)
    for url in (one, two):
        Repository.open([url], PASSWORD, use_cache=False, load_index=False)
    Repository.open([one], b"new", use_cache=False, load_index=False)


def test_an_unreadable_key_file_can_be_removed(make_repo, tmp_path):
    repo = make_repo()
    (tmp_path / "repo" / "keys" / "0000000000000000").write_text("garbage\n")
    repo.remove_key("0000000000000000")
    assert sorted(p.name for p in (tmp_path / "repo" / "keys").iterdir()) == [repo.key_id]


def test_hostile_key_files_are_skipped_and_the_others_still_open(make_repo, tmp_path):
    """A key file demanding absurd Argon2 parameters, or one that is not JSON, must neither
    allocate without bound nor stop the good key file from opening the repository."""
    import json

    repo = make_repo()
    [key_path] = (tmp_path / "repo" / "keys").iterdir()
    doc = json.loads(key_path.read_text())
    doc["kdf"]["memlimit"] = 2**60
    (tmp_path / "repo" / "keys" / "00000000000000aa").write_text(json.dumps(doc))
    (tmp_path / "repo" / "keys" / "00000000000000bb").write_text("{not json")
    (tmp_path / "repo" / "keys" / "not-a-key-id").write_text("x")
    opened = Repository.open(repo.targets.urls, PASSWORD, use_cache=False)
    assert opened.key_id == key_path.name
    key_path.unlink()  # only the hostile ones left: named as unreadable, not a wrong password
    with pytest.raises(IntegrityError, match="no key file can be read: 00000000000000aa, "
                                             "00000000000000bb are damaged"):
        Repository.open(repo.targets.urls, PASSWORD, use_cache=False)


def test_a_key_is_not_removed_while_a_target_is_away_and_that_is_said(make_repo, tmp_path):
    repo = make_repo("one", "two")
    second = repo.add_key(b"second", FAST_KDF)
    (tmp_path / "two").rename(tmp_path / "two.away")
    (tmp_path / "two").mkdir()  # an unmounted disk's mount point: no repository there
    both = Repository.open(repo.targets.urls, PASSWORD, use_cache=False, load_index=False,
                           drop_empty_targets=True)
    with pytest.raises(TargetsUnavailable, match="cannot be reached, and a key is changed only "
                                                 "when every target can be"):
        both.remove_key(second.key_id)
    assert second.key_id in {k.key_id for k in both.key_files()}
