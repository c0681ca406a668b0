"""RetryingStorage retries transient failures only, with capped exponential backoff and jitter,
and claims success after a lost answer only when it is proven. Faults come from FaultyStorage;
the sleeps are recorded, never slept."""

from __future__ import annotations

import pytest

from fogvault.storage import (
    Fault,
    FaultyStorage,
    InvalidName,
    ObjectExists,
    ObjectNotFound,
    PermanentStorageError,
    RetryingStorage,
    TransientStorageError,
    open_storage,
)
from fogvault.storage.faulty import no_space, permanent, transient
from fogvault.storage.metered import MeteredStorage


class Sleeps(list[float]):
    """A stand-in for time.sleep that records each delay."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def faulty(tmp_path) -> FaultyStorage:
    storage = FaultyStorage(open_storage(str(tmp_path / "t")))
    storage.create()
    return storage


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def retrying(faulty: FaultyStorage, sleeps: Sleeps) -> RetryingStorage:
    return RetryingStorage(faulty, attempts=5, base_delay=0.1, max_delay=1.0, sleep=sleeps, seed=1)


def test_transient_failures_are_retried_until_success(faulty, retrying, sleeps) -> None:
    faulty.inject("write", Fault(error=transient(), times=3))
    retrying.write("a", b"1")
    assert faulty.calls["write"] == 4
    assert len(sleeps) == 3
    assert retrying.read("a") == b"1"


@pytest.mark.parametrize("method", ["read", "stat", "list", "delete", "create"])
def test_every_method_is_retried(faulty, retrying, method: str) -> None:
    faulty.inner.write("a", b"1")
    faulty.inject(method, Fault(error=transient(), times=2))
    before = faulty.calls[method]
    calls = {
        "read": lambda: retrying.read("a"),
        "stat": lambda: retrying.stat("a"),
        "list": lambda: list(retrying.list()),
        "delete": lambda: retrying.delete("a"),
        "create": retrying.create,
    }
    calls[method]()
    assert faulty.calls[method] - before == 3


def test_it_gives_up_after_the_last_attempt(faulty, retrying, sleeps) -> None:
    faulty.inject("read", Fault(error=transient("still down"), times=None))
    with pytest.raises(TransientStorageError, match="still down"):
        retrying.read("a")
    assert faulty.calls["read"] == 5
    assert len(sleeps) == 4  # no sleep after the last attempt


@pytest.mark.parametrize("error", [permanent(), no_space()], ids=["permanent", "no-space"])
def test_permanent_errors_are_not_retried(faulty, retrying, sleeps, error) -> None:
    faulty.inject("write", Fault(error=error, times=None))
    with pytest.raises(PermanentStorageError):
        retrying.write("a", b"1")
    assert faulty.calls["write"] == 1
    assert sleeps == []


def test_not_found_exists_and_invalid_names_are_not_retried(faulty, retrying, sleeps) -> None:
    with pytest.raises(ObjectNotFound):
        retrying.read("missing")
    retrying.write("a", b"1")
    with pytest.raises(ObjectExists):
        retrying.write("a", b"2")
    with pytest.raises(InvalidName):
        retrying.stat("../etc")
    assert faulty.calls == {"create": 1, "read": 1, "write": 2, "stat": 1}
    assert sleeps == []


def test_backoff_grows_exponentially_with_jitter_and_a_cap(faulty, sleeps) -> None:
    # seeded: unseeded, the three last waits (each uniform in [0, 1]) all fell below 0.2 in
    # 0.8 % of runs and failed the last assertion
    retrying = RetryingStorage(faulty, attempts=8, base_delay=0.1, max_delay=1.0, sleep=sleeps,
                               seed=7)
    faulty.inject("stat", Fault(error=transient(), times=None))
    with pytest.raises(TransientStorageError):
        retrying.stat("a")
    caps = [min(1.0, 0.1 * 2**i) for i in range(7)]
    assert len(sleeps) == 7
    assert all(0 <= s <= cap for s, cap in zip(sleeps, caps, strict=True))
    assert len(set(sleeps)) == 7  # jittered, not a fixed schedule
    assert max(sleeps[4:]) > 0.2  # the later waits can exceed the early caps


def test_a_create_only_write_whose_answer_was_lost_succeeds(faulty, retrying) -> None:
    faulty.inject("write", Fault(error=transient(), when="after"))  # stored, then reported lost
    retrying.write("snapshots/s1", b"our bytes")
    assert faulty.calls["write"] == 2  # the retry met ObjectExists...
    assert faulty.calls["read"] == 1  # ...and read the object back: our bytes, so success
    assert retrying.read("snapshots/s1") == b"our bytes"


def test_a_create_only_retry_that_finds_other_bytes_raises_exists(faulty, retrying) -> None:
    def another_writer(method: str, name: str) -> None:
        faulty.inner.write(name, b"their bytes")

    faulty.inject("write", Fault(error=transient(), hook=another_writer))
    with pytest.raises(ObjectExists):
        retrying.write("locks/l1", b"our bytes")
    assert faulty.inner.read("locks/l1") == b"their bytes"


def test_a_create_only_retry_that_cannot_read_back_raises_exists(faulty, retrying) -> None:
    faulty.inject("write", Fault(error=transient(), when="after"))
    faulty.inject("read", Fault(error=permanent()))
    with pytest.raises(ObjectExists):
        retrying.write("a", b"1")


def test_an_existing_name_on_the_first_attempt_is_not_read_back(faulty, retrying) -> None:
    retrying.write("a", b"same")
    with pytest.raises(ObjectExists):
        retrying.write("a", b"same")
    assert faulty.calls["read"] == 0


def test_an_overwrite_whose_answer_was_lost_is_simply_repeated(faulty, retrying) -> None:
    faulty.inject("write", Fault(error=transient(), when="after"))
    retrying.write("index/0", b"v1", overwrite=True)
    assert faulty.calls["write"] == 2
    assert retrying.read("index/0") == b"v1"


def test_a_delete_whose_answer_was_lost_reports_not_found(faulty, retrying) -> None:
    retrying.write("a", b"1")
    faulty.inject("delete", Fault(error=transient(), when="after"))
    with pytest.raises(ObjectNotFound):  # documented: the truth, it is gone
        retrying.delete("a")
    assert not faulty.inner.exists("a")


def test_a_listing_that_fails_midway_starts_again(faulty, retrying) -> None:
    for name in ["a", "b", "c"]:
        retrying.write(name, b"1")
    faulty.inject("list", Fault(error=transient(), times=2))  # before any entry
    assert sorted(info.name for info in retrying.list()) == ["a", "b", "c"]
    assert faulty.calls["list"] == 3
    faulty.inject("list", Fault(error=transient(), when="after"))  # after every entry was seen
    seen = [info.name for info in retrying.list()]
    assert sorted(seen) == ["a", "a", "b", "b", "c", "c"]  # documented: callers collect names
    assert faulty.calls["list"] == 5


def test_a_listing_that_keeps_failing_raises_after_the_last_attempt(faulty, retrying) -> None:
    retrying.write("a", b"1")
    faulty.inject("list", Fault(error=transient(), when="after", times=None))
    with pytest.raises(TransientStorageError):
        list(retrying.list())
    assert faulty.calls["list"] == retrying.attempts


def test_a_listing_is_one_metered_request_however_it_ends(faulty) -> None:
    metered = MeteredStorage(faulty)
    for name in ["a", "b"]:
        metered.write(name, b"1")
    assert any(True for _ in metered.list())  # stopped after its first entry
    faulty.inject("list", Fault(error=transient(), when="after"))
    with pytest.raises(TransientStorageError):
        list(metered.list())
    assert metered.requests["list"] == 2 and metered.failures == 1


def test_a_listing_is_streamed_through_both_wrappers(faulty) -> None:
    """A folder not yet walked when the first entry comes out is walked after it: an object
    written there in between is listed, which a listing collected first would have missed.
    The wrappers are stacked as a target stacks them (targets/health.py)."""
    metered = MeteredStorage(faulty)
    storage = RetryingStorage(metered)
    for folder in ("x", "y"):
        storage.write(f"{folder}/old", b"1")
    listing = storage.list()
    first = next(listing).name
    later = "y" if first.startswith("x/") else "x"
    storage.write(f"{later}/new", b"2")
    assert sorted([first] + [info.name for info in listing]) == sorted(
        ["x/old", "y/old", f"{later}/new"])
    assert metered.requests["list"] == 1 and metered.failures == 0


def test_attempts_must_be_positive(faulty) -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryingStorage(faulty, attempts=0)


def test_an_interrupted_command_retries_nothing(faulty, retrying, sleeps) -> None:
    """After interrupt() (Ctrl-C), a transient failure is final: the command stops soon."""
    faulty.write("x", b"1")
    faulty.inject("read", Fault(error=transient("timed out"), times=None))
    retrying.interrupt()
    with pytest.raises(TransientStorageError):
        retrying.read("x")
    assert sleeps == [] and faulty.calls["read"] == 1
