"""Init on targets that hold key files and nothing else: what an init interrupted between its
key file and its config leaves (the CLI side, with a real killed process, is in
tests/cli/test_init_after_interrupted_init.py). Such a target is taken; the key files found
are kept (they may be an init's that is running now) and named; the config's create-only
write still decides a race between two inits."""

from __future__ import annotations

import logging
import threading

import pytest
from conftest import FAST_KDF, PASSWORD

from fogvault.crypto import MasterKey, password_key, random_salt, seal
from fogvault.errors import RepositoryExists
from fogvault.maintenance.check import check
from fogvault.repo.format import ObjectKind, aad, key_name
from fogvault.repo.keys import KeyFile
from fogvault.repo.repository import Repository
from fogvault.storage import open_storage
from fogvault.storage.faulty import Fault, FaultyStorage, permanent


def failed_init(*urls: str, password: bytes = PASSWORD) -> str:
    """An init whose config write fails on every target (a full disk, a network gone): it
    fails after writing its key file, as a killed one does. Returns the key id it left."""
    faulty = [FaultyStorage(open_storage(url)) for url in urls]
    for f in faulty:
        f.inject("write", Fault(error=permanent(), prefix="config", times=None))
    with pytest.raises(Exception):  # noqa: B017 - how it fails does not matter here
        Repository.init(faulty, password, kdf=FAST_KDF, use_cache=False)
    ids = set()
    for url in urls:
        with open_storage(url) as storage:
            names = {i.name for i in storage.list()}
        assert len(names) == 1 and next(iter(names)).startswith("keys/"), names
        ids |= {n.removeprefix("keys/") for n in names}
    assert len(ids) == 1
    return ids.pop()


def stray_key(url: str, key_id: str, password: bytes = PASSWORD) -> None:
    """Write a key file of a master key of its own under a chosen id, as init writes one."""
    salt = random_salt()
    sealed = seal(password_key(password, salt, FAST_KDF), MasterKey.generate().to_bytes(),
                  aad(ObjectKind.KEY, key_id.encode()))
    with open_storage(url) as storage:
        storage.create()
        storage.write(key_name(key_id), KeyFile(key_id, FAST_KDF, salt, sealed, "", "",
                                                "").encode())


def test_init_takes_a_target_an_init_left_with_only_its_key(tmp_path, caplog):
    url = str(tmp_path / "repo")
    stray = failed_init(url)
    caplog.set_level(logging.WARNING, "fogvault")
    repo = Repository.init([url], b"new password", kdf=FAST_KDF, use_cache=False)
    assert repo.stray_keys == [stray]
    [note] = [r.getMessage() for r in caplog.records if stray in r.getMessage()]
    assert f"'fogvault key remove {stray}' removes it" in note
    repo.close()
    opened = Repository.open([url], b"new password", use_cache=False, load_index=False)
    assert opened.key_id == repo.key_id
    assert sorted(k.key_id for k in opened.key_files()) == sorted([stray, repo.key_id])
    opened.remove_key(stray)
    assert [k.key_id for k in opened.key_files()] == [repo.key_id]
    opened.close()


def test_init_of_two_targets_one_left_with_a_key_one_empty(tmp_path):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    stray = failed_init(one)
    repo = Repository.init([one, two], PASSWORD, kdf=FAST_KDF, use_cache=False)
    assert repo.stray_keys == [stray]
    repo.close()
    for url in (one, two):
        Repository.open([url], PASSWORD, use_cache=False, load_index=False).close()


@pytest.mark.parametrize("where", ["before", "after"])
def test_check_on_a_stray_key_held_by_one_target_of_two(make_repo, tmp_path, caplog, where):
    """Opening tries key files by name. A stray key of the same password tried before the
    repository's own is known to wrap another master key: check leaves it out (open named it).
    One after it is never tried, and cannot be told from another password's key that missed a
    target: check reports it missing there, with both ways out, and never as corrupt."""
    key_id = "0000000000000000" if where == "before" else "ffffffffffffffff"
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    stray_key(one, key_id)
    repo = make_repo("one", "two")
    assert repo.stray_keys == [key_id]
    caplog.set_level(logging.WARNING, "fogvault")
    opened = Repository.open([one, two], PASSWORD, use_cache=False, load_index=False)
    result = check(opened)
    assert not any(t.corrupt for t in result.targets)
    if where == "before":
        assert opened.stray_keys == [key_id]
        assert result.ok, result
        assert result.stray_keys == [key_id]
    else:
        assert opened.stray_keys == []
        assert not result.ok
        assert [t.missing for t in result.targets] == [[], [key_name(key_id)]]
        assert f"'fogvault key remove {key_id}' removes it" in caplog.text
    opened.remove_key(key_id)
    assert check(opened).ok
    opened.close()


def test_a_key_of_another_password_missing_on_a_target_is_still_reported(make_repo, caplog):
    repo = make_repo("one", "two")
    one = repo.targets.urls[0]
    only_one = Repository.open([one], PASSWORD, use_cache=False, load_index=False)
    added = only_one.add_key(b"second", FAST_KDF)
    only_one.close()
    caplog.set_level(logging.WARNING, "fogvault")
    result = check(repo)
    assert [t.missing for t in result.targets] == [[], [key_name(added.key_id)]]
    assert "'fogvault repair' copies it" in caplog.text


def test_an_init_running_now_loses_to_one_that_finds_its_key(tmp_path):
    """A has written its key file; B starts, finds it, and creates the repository before A
    writes its config. B keeps A's key (A is running); A's config write then finds B's config:
    A takes its key back and fails. Left: B's repository, B's key only."""
    url = str(tmp_path / "repo")
    a_storage = FaultyStorage(open_storage(url))
    made: list[Repository] = []

    def b_inits(method: str, name: str) -> None:
        made.append(Repository.init([url], b"b", kdf=FAST_KDF, use_cache=False))

    a_storage.inject("write", Fault(hook=b_inits, prefix="config"))
    with pytest.raises(RepositoryExists, match="at the same time"):
        Repository.init([a_storage], b"a", kdf=FAST_KDF, use_cache=False)
    [b] = made
    assert len(b.stray_keys) == 1 and b.stray_keys != [b.key_id]  # A's, found and kept
    assert [p.name for p in (tmp_path / "repo" / "keys").iterdir()] == [b.key_id]
    b.close()
    Repository.open([url], b"b", use_cache=False, load_index=False).close()


def test_an_init_that_finds_a_running_inits_key_never_deletes_it(tmp_path):
    """A has written its key file; B finds it and writes its own; A writes its config first.
    B's config write fails: B takes back its own key, not A's, and A's repository opens."""
    url = str(tmp_path / "repo")
    a_storage, b_storage = FaultyStorage(open_storage(url)), FaultyStorage(open_storage(url))
    b_at_config, a_done = threading.Event(), threading.Event()
    b_failed: list[BaseException] = []

    def b_init() -> None:
        try:
            Repository.init([b_storage], b"b", kdf=FAST_KDF, use_cache=False)
        except BaseException as exc:
            b_failed.append(exc)

    def b_waits_for_a(method: str, name: str) -> None:
        b_at_config.set()
        assert a_done.wait(60)

    def a_lets_b_in(method: str, name: str) -> None:
        thread.start()
        assert b_at_config.wait(60)  # B has listed A's key and written its own

    thread = threading.Thread(target=b_init)
    b_storage.inject("write", Fault(hook=b_waits_for_a, prefix="config"))
    a_storage.inject("write", Fault(hook=a_lets_b_in, prefix="config"))
    a = Repository.init([a_storage], b"a", kdf=FAST_KDF, use_cache=False)
    a_done.set()
    thread.join(60)
    assert a.stray_keys == []
    [error] = b_failed
    assert isinstance(error, RepositoryExists) and "at the same time" in str(error)
    assert [p.name for p in (tmp_path / "repo" / "keys").iterdir()] == [a.key_id]
    a.close()
    Repository.open([url], b"a", use_cache=False, load_index=False).close()


def test_two_targets_an_init_running_now_loses_both(tmp_path):
    """As above on two targets: A's key is on both when B creates the repository on both."""
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    a_one, a_two = FaultyStorage(open_storage(one)), FaultyStorage(open_storage(two))
    lock, made = threading.Lock(), []

    def b_inits(method: str, name: str) -> None:
        with lock:  # A's two config writes run at once: the second waits for B
            if not made:
                made.append(Repository.init([one, two], b"b", kdf=FAST_KDF, use_cache=False))

    for storage in (a_one, a_two):
        storage.inject("write", Fault(hook=b_inits, prefix="config"))
    with pytest.raises(RepositoryExists, match="at the same time"):
        Repository.init([a_one, a_two], b"a", kdf=FAST_KDF, use_cache=False)
    [b] = made
    for folder in ("one", "two"):
        assert [p.name for p in (tmp_path / folder / "keys").iterdir()] == [b.key_id]
    b.close()
    Repository.open([one, two], b"b", use_cache=False, load_index=False).close()


@pytest.mark.parametrize("kind", ["s3", "sftp"])
def test_remote_target_left_with_a_key(request, kind):
    """The same on S3 and SFTP; and a remote target with anything else is still refused."""
    url = request.getfixturevalue(f"{kind}_url")
    stray = failed_init(url)
    extra = "index/" + "cd" * 32
    with open_storage(url) as storage:
        storage.write(extra, b"not an index file")
    with pytest.raises(RepositoryExists, match="a repository already exists there"):
        Repository.init([url], PASSWORD, kdf=FAST_KDF, use_cache=False)
    with open_storage(url) as storage:
        storage.delete(extra)
    repo = Repository.init([url], PASSWORD, kdf=FAST_KDF, use_cache=False)
    assert repo.stray_keys == [stray]
    repo.close()
    opened = Repository.open([url], PASSWORD, use_cache=False, load_index=False)
    opened.remove_key(stray)
    assert [k.key_id for k in opened.key_files()] == [repo.key_id]
    opened.close()
