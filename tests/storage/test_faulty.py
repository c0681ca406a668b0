"""FaultyStorage injects exactly the faults declared, and nothing else."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from fogvault.storage import (
    Fault,
    FaultyStorage,
    ObjectNotFound,
    PermanentStorageError,
    TransientStorageError,
    open_storage,
)
from fogvault.storage.faulty import no_space, permanent, transient


@pytest.fixture
def faulty(tmp_path) -> FaultyStorage:
    storage = FaultyStorage(open_storage(str(tmp_path / "t")), seed=3)
    storage.create()
    return storage


def test_without_faults_it_passes_everything_through_and_counts(faulty: FaultyStorage) -> None:
    faulty.write("a", b"1")
    assert faulty.read("a") == b"1"
    assert faulty.exists("a")
    assert [info.name for info in faulty.list()] == ["a"]
    faulty.delete("a")
    assert faulty.calls == {"create": 1, "write": 1, "read": 1, "stat": 1, "list": 1, "delete": 1}
    assert faulty.url == faulty.inner.url


def test_an_error_before_the_call_hits_the_next_calls_only(faulty: FaultyStorage) -> None:
    faulty.inject("write", Fault(error=transient(), times=2))
    for _ in range(2):
        with pytest.raises(TransientStorageError, match="injected"):
            faulty.write("a", b"1")
    assert not faulty.inner.exists("a")  # the failed calls did not reach the target
    faulty.write("a", b"1")
    assert faulty.inner.read("a") == b"1"


def test_an_error_after_the_call_loses_only_the_answer(faulty: FaultyStorage) -> None:
    faulty.inject("write", Fault(error=transient(), when="after"))
    with pytest.raises(TransientStorageError):
        faulty.write("a", b"stored anyway")
    assert faulty.inner.read("a") == b"stored anyway"


def test_skip_picks_one_call(faulty: FaultyStorage) -> None:
    faulty.write("a", b"1")
    faulty.inject("read", Fault(error=permanent(), skip=2))
    assert faulty.read("a") == b"1"
    assert faulty.read("a") == b"1"
    with pytest.raises(PermanentStorageError):
        faulty.read("a")
    assert faulty.read("a") == b"1"


def test_prefix_limits_a_fault_to_some_names(faulty: FaultyStorage) -> None:
    faulty.inject("write", Fault(error=no_space(), prefix="data/", times=None))
    faulty.write("index/0", b"fits")
    with pytest.raises(PermanentStorageError, match="no space left on device"):
        faulty.write("data/0", b"does not")
    with pytest.raises(PermanentStorageError):
        faulty.write("data/1", b"nor this")


def test_random_faults_are_seeded(tmp_path) -> None:
    def failures(seed: int) -> list[int]:
        storage = FaultyStorage(open_storage(str(tmp_path / "r")), seed=seed)
        storage.inject("stat", Fault(error=transient(), fraction=0.3, times=None))
        failed = []
        for i in range(400):
            try:
                storage.exists("x")
            except TransientStorageError:
                failed.append(i)
        return failed

    first = failures(seed=1)
    assert first == failures(seed=1)
    assert first != failures(seed=2)
    assert 80 < len(first) < 160  # about 30 % of 400


def test_flip_corrupts_what_a_read_returns_not_what_is_stored(faulty: FaultyStorage) -> None:
    data = bytes(range(100))
    faulty.write("a", data)
    faulty.inject("read", Fault(flip=True))
    corrupt = faulty.read("a")
    assert len(corrupt) == len(data)
    assert sum(bin(x ^ y).count("1") for x, y in zip(corrupt, data, strict=True)) == 1
    assert faulty.read("a") == data


def test_a_target_disappears_after_n_operations(faulty: FaultyStorage) -> None:
    faulty.disappear_after(3)
    faulty.write("a", b"1")
    faulty.read("a")
    faulty.stat("a")
    for call in (lambda: faulty.read("a"), lambda: faulty.write("b", b"2"), faulty.create):
        with pytest.raises(PermanentStorageError, match="disappeared"):
            call()
    faulty.clear()
    assert faulty.read("a") == b"1"


def test_delay_slows_a_call_down(faulty: FaultyStorage) -> None:
    faulty.inject("*", Fault(delay=0.05))
    started = time.monotonic()
    faulty.write("a", b"1")
    assert time.monotonic() - started >= 0.05
    started = time.monotonic()
    faulty.read("a")
    assert time.monotonic() - started < 0.05  # times=1: only the first call


def test_a_hook_runs_before_the_call(faulty: FaultyStorage) -> None:
    faulty.write("a", b"1")
    seen = []

    def someone_else_deletes(method: str, name: str) -> None:
        seen.append((method, name))
        faulty.inner.delete(name)

    faulty.inject("read", Fault(hook=someone_else_deletes))
    with pytest.raises(ObjectNotFound):
        faulty.read("a")
    assert seen == [("read", "a")]


def test_list_faults_fire_when_the_listing_starts(faulty: FaultyStorage) -> None:
    faulty.write("a", b"1")
    faulty.inject("list", Fault(error=transient()))
    listing = faulty.list()
    assert faulty.calls["list"] == 0  # a generator: nothing happens before iteration
    with pytest.raises(TransientStorageError):
        next(listing)
    assert [info.name for info in faulty.list()] == ["a"]


def test_counts_and_times_are_exact_with_threads(faulty: FaultyStorage) -> None:
    faulty.write("a", b"1")
    faulty.inject("stat", Fault(error=transient(), times=25))

    def stat(_: int) -> bool:
        try:
            faulty.stat("a")
        except TransientStorageError:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(stat, range(400)))
    assert results.count(False) == 25
    assert faulty.calls["stat"] == 400


def test_unknown_methods_are_refused(faulty: FaultyStorage) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        faulty.inject("raed", Fault(error=transient()))


def test_flip_on_write_stores_damaged_bytes(faulty: FaultyStorage) -> None:
    faulty.inject("write", Fault(flip=True, prefix="data/"))
    faulty.write("data/a", b"\x00\x00\x00")
    faulty.write("index/b", b"\x00\x00\x00")
    assert faulty.inner.read("data/a") == b"\x00\x01\x00"  # bit rot at rest: every read sees it
    assert faulty.read("data/a") == b"\x00\x01\x00"
    assert faulty.inner.read("index/b") == b"\x00\x00\x00"  # outside the prefix: untouched
