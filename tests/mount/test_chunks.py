"""The mount's chunk loader: one load for the requests that want a chunk at the same time,
loads ahead that fill the cache, and failed loads remembered for a while (those of loads ahead
reported by the read that needs the chunk), holding their exceptions' messages only. Real
threads; the loads are functions that count their calls, and the clock is the test's."""

from __future__ import annotations

import errno
import logging
import os
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from polling import wait_until

from fogvault.backup.archiver import Archiver, BackupOptions
from fogvault.errors import FogVaultError
from fogvault.mount.chunks import (
    FAILURE_KEPT_S,
    FAILURES_KEPT,
    READ_AHEAD_WORKERS,
    ChunkLoader,
)
from fogvault.mount.files import FileContent
from fogvault.mount.view import READ_AHEAD_MAX_OPEN, SnapshotView
from fogvault.repo.repository import Repository
from tests.mount.mounting import flip_a_byte, held_memory

DEADLINE_S = 30.0


class Loads:
    """A load that counts its calls per id, fails for ids in ``failing`` (once each if
    ``fail_once``), and can be held until released."""

    def __init__(self, failing: set[bytes] = frozenset(), fail_once: bool = False,
                 failure: Callable[[bytes], Exception] | None = None) -> None:
        self.calls: Counter[bytes] = Counter()
        self.failing = set(failing)
        self.fail_once = fail_once
        self.failure = failure or (lambda blob_id: FogVaultError(f"cannot load {blob_id!r}"))
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def __call__(self, blob_id: bytes) -> bytes:
        self.calls[blob_id] += 1
        self.entered.set()
        assert self.release.wait(DEADLINE_S)
        if blob_id in self.failing:
            if self.fail_once:
                self.failing.discard(blob_id)
            raise self.failure(blob_id)
        return blob_id * 100


class Clock:
    """A clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _loader(loads: Loads, clock: Clock | None = None) -> ChunkLoader:
    return ChunkLoader(loads, cache_bytes=10_000, clock=clock or Clock())


def _waiting_claims(loader: ChunkLoader, count: int) -> threading.Event:
    """Set once ``count`` callers found a load of theirs under way (and wait for it)."""
    others = threading.Event()
    claim = loader._claim
    found: list[bytes] = []

    def counted(blob_id: bytes) -> tuple:
        future, mine = claim(blob_id)
        if not mine:
            found.append(blob_id)
            if len(found) == count:
                others.set()
        return future, mine

    loader._claim = counted  # type: ignore[method-assign]
    return others


def _in_threads(count: int, call: Callable[[], object]) -> tuple[list[threading.Thread], list]:
    results: list = []

    def run() -> None:
        try:
            results.append(call())
        except Exception as exc:  # the test compares what each got
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def _gets_during_one_load(loads: Loads, blob_id: bytes, waiting: int, clock: Clock | None = None
                          ) -> tuple[ChunkLoader, list]:
    """What one ``get`` of ``blob_id`` and ``waiting`` more got, those made while the first
    one's load was held (each of them found it under way), and the loader."""
    loads.release.clear()
    loader = _loader(loads, clock)
    others = _waiting_claims(loader, waiting)
    first, results = _in_threads(1, lambda: loader.get(blob_id))
    assert loads.entered.wait(DEADLINE_S)
    rest, rest_results = _in_threads(waiting, lambda: loader.get(blob_id))
    assert others.wait(DEADLINE_S)  # the others found the first one's load under way
    loads.release.set()
    for thread in first + rest:
        thread.join(DEADLINE_S)
    return loader, results + rest_results


def test_requests_for_one_chunk_at_once_load_it_once() -> None:
    loads = Loads()
    loader, results = _gets_during_one_load(loads, b"a", 3)
    assert results == [b"a" * 100] * 4
    assert loads.calls == {b"a": 1}
    assert loader.get(b"a") == b"a" * 100 and loads.calls == {b"a": 1}  # cached


def test_a_failed_load_is_the_failure_of_each_request_for_the_chunk_for_a_while() -> None:
    """Of those waiting for it, and of those that come within FAILURE_KEPT_S (the kernel
    asks again after a failed read); then the chunk is loaded again (it may be repaired)."""
    loads = Loads(failing={b"bad"}, fail_once=True)
    clock = Clock()
    loader, results = _gets_during_one_load(loads, b"bad", 2, clock)
    assert [str(result) for result in results] == ["cannot load b'bad'"] * 3
    assert loads.calls == {b"bad": 1}
    clock.now += FAILURE_KEPT_S - 0.01
    for _ in range(3):
        with pytest.raises(FogVaultError, match=r"^cannot load b'bad'$") as again:
            loader.get(b"bad")
        # one of its own, without the load's history: not the first one raised again
        assert again.value not in results
        assert (again.value.__cause__, again.value.__context__) == (None, None)
    loader.read_ahead([b"bad"])  # nor is it loaded ahead
    assert loads.calls == {b"bad": 1}
    clock.now += 0.01
    assert loader.get(b"bad") == b"bad" * 100
    assert loads.calls == {b"bad": 2}


def test_only_the_failures_of_the_last_few_seconds_are_kept() -> None:
    clock = Clock()
    loader = _loader(Loads(failing={bytes([n]) for n in range(100)}), clock)
    for n in range(100):
        with pytest.raises(FogVaultError):
            loader.get(bytes([n]))
        clock.now += FAILURE_KEPT_S / 10
    assert len(loader._failed) == 10  # those of the last FAILURE_KEPT_S, the others dropped


def test_a_failure_kept_longer_is_forgotten_when_it_is_looked_for() -> None:
    clock = Clock()
    loads = Loads(failing={b"a", b"b"}, fail_once=True)
    loader = _loader(loads, clock)
    for blob_id in (b"a", b"b"):
        with pytest.raises(FogVaultError):
            loader.get(blob_id)
    clock.now += FAILURE_KEPT_S
    assert loader.get(b"a") == b"a" * 100
    loader.read_ahead([b"b"])
    wait_until(lambda: loads.calls[b"b"] == 2 and not loader._loading, "b loaded ahead")
    assert loader._failed == {}


def test_the_failures_kept_are_bounded_the_oldest_going_first() -> None:
    """As when a target that cannot be reached fails every load at once."""
    ids = [n.to_bytes(2, "big") for n in range(FAILURES_KEPT + 10)]
    loads = Loads(failing=set(ids))
    loader = _loader(loads)
    for blob_id in ids:
        with pytest.raises(FogVaultError):
            loader.get(blob_id)
    assert list(loader._failed) == ids[10:]
    with pytest.raises(FogVaultError):
        loader.get(ids[0])  # forgotten: loaded again
    assert loads.calls[ids[0]] == 2 and loads.calls[ids[-1]] == 1


class _Refused(Exception):
    def __init__(self, *, why: str) -> None:
        super().__init__(f"refused: {why}")


def test_a_failure_keeps_its_class_and_errno_and_message() -> None:
    """Its exception is made again from its class and arguments; a class those do not make
    again is kept as a FogVaultError with its message."""
    failures = {b"reset": ConnectionResetError(errno.ECONNRESET, "reset by peer"),
                b"odd": _Refused(why="no")}
    loader = _loader(Loads(failing=set(failures), failure=failures.__getitem__))
    for _ in range(2):  # the request that loaded, then one that meets the failure kept
        with pytest.raises(ConnectionResetError) as raised:
            loader.get(b"reset")
        assert (raised.value.errno, raised.value.strerror) == (errno.ECONNRESET, "reset by peer")
        with pytest.raises(FogVaultError, match=r"^refused: no$"):
            loader.get(b"odd")


def test_chunks_loaded_ahead_are_not_loaded_again() -> None:
    loads = Loads()
    loader = _loader(loads)
    assert loader.get(b"a") == b"a" * 100
    loader.read_ahead([b"a", b"b", b"c"])  # a is cached: only b and c are loaded
    wait_until(lambda: loads.calls == {b"a": 1, b"b": 1, b"c": 1}, "b and c loaded ahead")
    assert [loader.get(blob_id) for blob_id in (b"b", b"c")] == [b"b" * 100, b"c" * 100]
    assert loads.calls == {b"a": 1, b"b": 1, b"c": 1}


def test_a_read_never_waits_for_loads_ahead_queued_before_it() -> None:
    """Loads ahead claim their chunk when a worker starts them: with both workers held, a read
    of a chunk still queued loads it itself at once (it used to wait for the queue)."""
    loads = Loads()
    loads.release.clear()
    loader = _loader(loads)
    loader.read_ahead([b"a", b"b", b"c"])
    wait_until(lambda: loads.calls == {b"a": 1, b"b": 1}, "both workers loading")
    threads, results = _in_threads(1, lambda: loader.get(b"c"))
    wait_until(lambda: loads.calls[b"c"] == 1, "the read loading c itself")
    loads.release.set()
    threads[0].join(DEADLINE_S)
    assert results == [b"c" * 100]
    loader.close()


def test_the_queue_of_loads_ahead_is_bounded_and_dropped_at_close() -> None:
    loads = Loads()
    loads.release.clear()
    loader = _loader(loads)
    ids = [bytes([n]) for n in range(20)]
    loader.read_ahead(ids)  # 2 start, READ_AHEAD_QUEUE wait, the rest are dropped
    wait_until(lambda: len(loads.calls) == READ_AHEAD_WORKERS, "both workers loading")
    loader.close()  # returns at once: the queued loads are dropped
    loads.release.set()
    loader.read_ahead(ids)  # closed: nothing more starts
    assert set(loads.calls) == set(ids[:READ_AHEAD_WORKERS])
    assert loader.get(ids[10]) == ids[10] * 100  # reads still load what they need


def test_a_read_waiting_for_a_failed_load_ahead_gets_its_failure() -> None:
    loads = Loads(failing={b"b"}, fail_once=True)  # e.g. a target away for a moment
    loads.release.clear()
    clock = Clock()
    loader = _loader(loads, clock)
    others = _waiting_claims(loader, 1)
    loader.read_ahead([b"b"])
    assert loads.entered.wait(DEADLINE_S)
    threads, results = _in_threads(1, lambda: loader.get(b"b"))
    assert others.wait(DEADLINE_S)  # the read waits for the load ahead
    loads.release.set()
    threads[0].join(DEADLINE_S)
    assert [str(result) for result in results] == ["cannot load b'b'"]
    clock.now += FAILURE_KEPT_S
    assert loader.get(b"b") == b"b" * 100
    assert loads.calls == {b"b": 2}


def test_a_load_ahead_that_fails_reports_nothing_until_a_read_needs_the_chunk() -> None:
    loads = Loads(failing={b"b"})
    loader = _loader(loads)
    loader.read_ahead([b"b"])
    wait_until(lambda: loads.calls == {b"b": 1} and not loader._loading, "the load ahead")
    with pytest.raises(FogVaultError, match="cannot load"):  # its failure, not loaded again
        loader.get(b"b")
    assert loads.calls == {b"b": 1}


@dataclass
class Viewed:
    """A file of random bytes backed up and seen through a view, with its chunk loads counted
    (``ahead``: those made by the read-ahead threads)."""

    data: bytes
    view: SnapshotView
    path: bytes
    chunks: list[bytes]  # its chunks' ids (looked up before counting: tree loads not counted)
    loaded: Counter[bytes] = field(default_factory=Counter)
    ahead: list[bytes] = field(default_factory=list)

    def read_in_order(self, handle: int) -> bytes:
        """As the kernel sends a file's reads: 128 KiB at a time, from start to end."""
        return b"".join(self.view.read(handle, offset, 131_072)
                        for offset in range(0, len(self.data), 131_072))


def _viewed(repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            size: int) -> Viewed:
    src = tmp_path / "src"
    src.mkdir()
    data = random.Random(size).randbytes(size)
    (src / "file").write_bytes(data)
    Archiver(repo, BackupOptions()).run([str(src)])
    view = SnapshotView(repo)
    [uid] = [name for name, _ in view.listdir(b"/ids")]
    path = b"/ids/" + uid + os.fsencode(src) + b"/file"
    viewed = Viewed(data, view, path, view.lookup(path).node.content)
    load_blob = repo.load_blob

    def counted(blob_id: bytes, *args: object, **kwargs: object) -> bytes:
        viewed.loaded[blob_id] += 1
        if threading.current_thread().name.startswith("fogvault-read-ahead"):
            viewed.ahead.append(blob_id)
        return load_blob(blob_id, *args, **kwargs)

    monkeypatch.setattr(repo, "load_blob", counted)
    return viewed


def test_a_file_read_in_order_through_the_view_loads_each_chunk_once(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunks after each read are loaded ahead, and every chunk is loaded once. The reader
    waits for a first load ahead (as a reader slower than the loads would): under load it
    could otherwise read every chunk itself first, and this test failed."""
    viewed = _viewed(make_repo(), tmp_path, monkeypatch, 3_000_000)
    view = viewed.view
    chunks = viewed.chunks
    assert len(chunks) > 4
    first = view.open(viewed.path)
    assert view.read(first, 0, 4096) == viewed.data[:4096]  # a first read loads nothing ahead
    view.release(first)
    assert viewed.loaded == Counter({chunks[0]: 1})
    handle = view.open(viewed.path)
    head = view.read(handle, 0, 131_072) + view.read(handle, 131_072, 131_072)
    wait_until(lambda: viewed.ahead, "a chunk loaded ahead after a second read in order")
    read = head + b"".join(view.read(handle, offset, 131_072)
                           for offset in range(262_144, len(viewed.data), 131_072))
    view.close()
    assert read == viewed.data
    assert viewed.loaded == Counter(set(chunks))


def test_no_chunk_is_loaded_ahead_while_many_files_are_open(
        make_repo: Callable[..., Repository], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    viewed = _viewed(make_repo(), tmp_path, monkeypatch, 1_000_000)
    view = viewed.view
    others = [view.open(viewed.path) for _ in range(READ_AHEAD_MAX_OPEN)]
    assert viewed.read_in_order(view.open(viewed.path)) == viewed.data
    assert viewed.ahead == []
    for other in others:
        view.release(other)
    view.close()


def test_failed_loads_hold_their_messages_not_the_chunks_they_read(
        make_repo: Callable[..., Repository], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Each chunk of a file damaged on its only target, read through the view: what stays
    held once the reads have failed is about the same per failure whatever the chunks' size
    (the failures kept and the warnings given), with the garbage collector off (the error of a
    failed read holds itself through its traceback, a cycle). The failures kept used to keep
    the chunks' sealed and decrypted bytes, 3 times a chunk each."""
    viewed = _viewed(make_repo(), tmp_path, monkeypatch, 3_000_000)
    repo = viewed.view.repo
    for blob_id in viewed.chunks:
        flip_a_byte(tmp_path / "repo", repo.index.get(blob_id))
    starts = [0, *FileContent(repo.index, viewed.view.lookup(viewed.path).node).ends[:-1]]
    handle = viewed.view.open(viewed.path)
    caplog.set_level(logging.CRITICAL, logger="fogvault")  # no log records to count
    with held_memory() as held:
        for start in starts:
            with pytest.raises(OSError):
                viewed.view.read(handle, start, 4096)
    assert len(viewed.loaded) == len(starts) > 30
    chunk_bytes = len(viewed.data) // len(starts)  # about 64 KiB
    # The regression held 3 chunks per failure; under a loaded machine's timing a read ahead
    # may still hold a little at the block's end (2 KiB per failure was once exceeded).
    assert chunk_bytes > 32 * 1024
    assert held.bytes / len(starts) < chunk_bytes / 8, held
