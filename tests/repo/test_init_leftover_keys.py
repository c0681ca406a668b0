"""Init on targets that hold key files and nothing else: what an init interrupted between its
key file and its config leaves (the CLI side, with a real killed process, is in
tests/cli/test_init_after_interrupted_init.py). Such a target is taken; the key files found
are left alone until the new config is written (they may be an init's that is running now),
then deleted where the config read back is the new one, and named; the config's create-only
write still decides a race between two inits."""

from __future__ import annotations

import logging
import threading

import pytest
from conftest import FAST_KDF, PASSWORD

from fogvault.crypto import MasterKey, password_key, random_salt, seal
from fogvault.errors import FogVaultError, RepositoryExists
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


def keys_on(folder) -> list[str]:
    return sorted(p.name for p in (folder / "keys").iterdir())


def removal_note(where: str, key_id: str) -> str:
    return (f"{where}: removed key file {key_id}, left by an init that did not finish "
            "(it opens nothing here)")


def test_init_takes_a_target_an_init_left_with_only_its_key(tmp_path, caplog):
    url = str(tmp_path / "repo")
    stray = failed_init(url)
    caplog.set_level(logging.WARNING, "fogvault")
    repo = Repository.init([url], b"new password", kdf=FAST_KDF, use_cache=False)
    assert (repo.stray_keys, repo.removed_keys) == ([], [stray])
    assert [r.getMessage() for r in caplog.records if stray in r.getMessage()] == [
        removal_note(url, stray)]
    assert keys_on(tmp_path / "repo") == [repo.key_id]
    repo.close()
    opened = Repository.open([url], b"new password", use_cache=False, load_index=False)
    assert opened.key_id == repo.key_id and opened.stray_keys == []
    opened.close()


def test_init_of_two_targets_one_left_with_a_key_one_empty(tmp_path):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    stray = failed_init(one)
    repo = Repository.init([one, two], PASSWORD, kdf=FAST_KDF, use_cache=False)
    assert (repo.stray_keys, repo.removed_keys) == ([], [stray])
    repo.close()
    for url in (one, two):
        Repository.open([url], PASSWORD, use_cache=False, load_index=False).close()
    assert keys_on(tmp_path / "one") == keys_on(tmp_path / "two") == [repo.key_id]


@pytest.mark.parametrize("key_id", ["0000000000000000", "ffffffffffffffff"],
                         ids=["stray-sorts-first", "stray-sorts-last"])
def test_check_passes_after_init_removed_a_stray_key_of_another_password(tmp_path, caplog,
                                                                        key_id):
    """The key of an init of another password reached target one only: once the new config
    is written, init deletes it there, so check finds the same key files everywhere. (Kept,
    it was reported missing on target two, unless the same password opened it and it sorted
    first.)"""
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    stray_key(one, key_id, b"another password")
    caplog.set_level(logging.WARNING, "fogvault")
    repo = Repository.init([one, two], PASSWORD, kdf=FAST_KDF, use_cache=False)
    assert (repo.stray_keys, repo.removed_keys) == ([], [key_id])
    assert caplog.messages == [removal_note(one, key_id)]
    repo.close()
    assert keys_on(tmp_path / "one") == keys_on(tmp_path / "two") == [repo.key_id]
    caplog.clear()
    opened = Repository.open([one, two], PASSWORD, use_cache=False, load_index=False)
    result = check(opened)
    assert result.ok, result
    assert result.stray_keys == [] and caplog.messages == []
    opened.close()


@pytest.mark.parametrize("where", ["before", "after"])
def test_check_on_a_stray_key_init_could_not_delete(tmp_path, caplog, where):
    """A deletion that fails is no error: init keeps the key file and names it with the
    command that removes it. Opening tries key files by name. A stray key of the same password
    tried before the repository's own is known to wrap another master key: check leaves it out
    (open named it). One after it is never tried, and cannot be told from another password's
    key that missed a target: check reports it missing there, with both ways out, and never as
    corrupt."""
    key_id = "0000000000000000" if where == "before" else "ffffffffffffffff"
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    stray_key(one, key_id)
    faulty_one = FaultyStorage(open_storage(one))
    faulty_one.inject("delete", Fault(error=permanent(), prefix="keys/", times=None))
    caplog.set_level(logging.WARNING, "fogvault")
    repo = Repository.init([faulty_one, two], PASSWORD, kdf=FAST_KDF, use_cache=False)
    assert (repo.stray_keys, repo.removed_keys) == ([key_id], [])
    assert faulty_one.calls["delete"] >= 1
    [note] = caplog.messages
    assert note.startswith(f"{one}: key file {key_id} was there before this init")
    assert f"'fogvault key remove {key_id}' removes it" in note
    repo.close()
    assert keys_on(tmp_path / "one") == sorted([key_id, repo.key_id])
    caplog.clear()
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


def test_init_keeps_the_keys_where_its_config_write_failed(tmp_path, caplog):
    """Both targets hold an interrupted init's key; the config write fails on target two.
    The repository is made on target one, whose stray key is deleted; target two's is kept."""
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    stray = failed_init(one, two)
    faulty_two = FaultyStorage(open_storage(two))
    faulty_two.inject("write", Fault(error=permanent(), prefix="config", times=None))
    caplog.set_level(logging.WARNING, "fogvault")
    with pytest.raises(FogVaultError, match=f"init failed on {two}"):
        Repository.init([one, faulty_two], PASSWORD, kdf=FAST_KDF, use_cache=False)
    assert faulty_two.calls["delete"] == 0
    assert removal_note(one, stray) in caplog.messages
    assert any(m.startswith(f"{two}: key file {stray} was there") for m in caplog.messages)
    [ours] = keys_on(tmp_path / "one")
    assert keys_on(tmp_path / "two") == sorted([stray, ours])
    Repository.open([one], PASSWORD, use_cache=False, load_index=False).close()


@pytest.mark.parametrize("how", ["replaced", "unreadable"])
def test_init_keeps_the_keys_where_the_config_read_back_is_not_its_own(tmp_path, caplog, how):
    """The config write succeeds, but reading it back gives another config (a server that
    does not enforce create-only writes let another init replace it) or fails: the key files
    found there are kept; on the other target, whose config reads back as written, the stray
    key is deleted."""
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    stray = failed_init(one, two)
    other = Repository.init([str(tmp_path / "other")], b"other", kdf=FAST_KDF, use_cache=False)
    other.close()
    other_config = (tmp_path / "other" / "config").read_bytes()
    faulty_one = FaultyStorage(open_storage(one))

    def another_init_overwrites(method: str, name: str) -> None:
        faulty_one.inner.write("config", other_config, overwrite=True)

    if how == "replaced":
        fault = Fault(hook=another_init_overwrites, prefix="config")
    else:
        fault = Fault(error=permanent(), prefix="config")
    faulty_one.inject("read", fault)
    caplog.set_level(logging.WARNING, "fogvault")
    repo = Repository.init([faulty_one, two], PASSWORD, kdf=FAST_KDF, use_cache=False)
    repo.close()
    assert (repo.stray_keys, repo.removed_keys) == ([stray], [])  # still on target one
    assert fault.times == 0 and faulty_one.calls["delete"] == 0  # read back, nothing deleted
    assert keys_on(tmp_path / "one") == sorted([stray, repo.key_id])
    assert keys_on(tmp_path / "two") == [repo.key_id]
    assert removal_note(two, stray) in caplog.messages
    assert any(m.startswith(f"{one}: key file {stray} was there") for m in caplog.messages)
    replaced = [m for m in caplog.messages if "not the one this init wrote" in m]
    assert len(replaced) == (how == "replaced")
    if how == "replaced":
        assert (tmp_path / "one" / "config").read_bytes() == other_config


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
    writes its config. B's config is stored: B deletes A's key (it wraps another master key).
    A's config write then finds B's config: A's take-back finds its key gone, and A fails
    as before. Left: B's repository, B's key only."""
    url = str(tmp_path / "repo")
    a_storage = FaultyStorage(open_storage(url))
    made: list[Repository] = []

    def b_inits(method: str, name: str) -> None:
        made.append(Repository.init([url], b"b", kdf=FAST_KDF, use_cache=False))

    a_storage.inject("write", Fault(hook=b_inits, prefix="config"))
    with pytest.raises(RepositoryExists, match="at the same time"):
        Repository.init([a_storage], b"a", kdf=FAST_KDF, use_cache=False)
    [b] = made
    assert b.stray_keys == [] and len(b.removed_keys) == 1  # A's, found, deleted by B
    assert b.removed_keys != [b.key_id]
    assert a_storage.calls["delete"] == 1  # A's take-back: ObjectNotFound, tolerated
    assert keys_on(tmp_path / "repo") == [b.key_id]
    b.close()
    Repository.open([url], b"b", use_cache=False, load_index=False).close()


def test_an_init_that_finds_a_running_inits_key_never_deletes_it(tmp_path):
    """A has written its key file; B finds it and writes its own; A writes its config first.
    B's config write fails: B takes back its own key, deletes nothing it found (A's key opens
    the config there), and A's repository opens."""
    url = str(tmp_path / "repo")
    a_storage, b_storage = FaultyStorage(open_storage(url)), FaultyStorage(open_storage(url))
    b_at_config, a_done = threading.Event(), threading.Event()
    b_failed: list[BaseException] = []
    b_deleted: list[str] = []

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
    b_storage.inject("delete", Fault(hook=lambda m, name: b_deleted.append(name), times=None))
    a_storage.inject("write", Fault(hook=a_lets_b_in, prefix="config"))
    a = Repository.init([a_storage], b"a", kdf=FAST_KDF, use_cache=False)
    a_done.set()
    thread.join(60)
    assert (a.stray_keys, a.removed_keys) == ([], [])
    [error] = b_failed
    assert isinstance(error, RepositoryExists) and "at the same time" in str(error)
    [b_key] = b_deleted  # its own key, taken back
    assert b_key != key_name(a.key_id)
    assert keys_on(tmp_path / "repo") == [a.key_id]
    a.close()
    Repository.open([url], b"a", use_cache=False, load_index=False).close()


def test_two_targets_an_init_running_now_loses_both(tmp_path):
    """As above on two targets: A's key is on both when B creates the repository on both,
    and B deletes it from both."""
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
    assert b.stray_keys == [] and len(b.removed_keys) == 1
    for folder in ("one", "two"):
        assert keys_on(tmp_path / folder) == [b.key_id]
    b.close()
    Repository.open([one, two], b"b", use_cache=False, load_index=False).close()


@pytest.mark.parametrize("kind", ["s3", "sftp"])
def test_remote_target_left_with_a_key(request, kind):
    """The same on S3 and SFTP (the stray key is deleted once the config is written); and a
    remote target with anything else is still refused, and left alone."""
    url = request.getfixturevalue(f"{kind}_url")
    stray = failed_init(url)
    extra = "index/" + "cd" * 32
    with open_storage(url) as storage:
        storage.write(extra, b"not an index file")
    with pytest.raises(RepositoryExists, match="a repository already exists there"):
        Repository.init([url], PASSWORD, kdf=FAST_KDF, use_cache=False)
    with open_storage(url) as storage:
        storage.delete(extra)
    with open_storage(url) as storage:
        assert {i.name for i in storage.list()} == {key_name(stray)}  # the refusal kept it
    repo = Repository.init([url], PASSWORD, kdf=FAST_KDF, use_cache=False)
    assert (repo.stray_keys, repo.removed_keys) == ([], [stray])
    repo.close()
    opened = Repository.open([url], PASSWORD, use_cache=False, load_index=False)
    assert [k.key_id for k in opened.key_files()] == [repo.key_id]
    opened.close()
