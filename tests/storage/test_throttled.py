"""Bandwidth limits: the token bucket on a fake clock, and what ThrottledStorage takes from it
for real backends (per piece where the backend moves pieces, per call where it cannot)."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import pytest
from polling import wait_until

from fogvault.storage import open_storage
from fogvault.storage.base import Storage
from fogvault.storage.errors import ObjectExists, TransientStorageError
from fogvault.storage.throttled import (
    KIB,
    MAX_PACE_PIECE,
    PACE_PIECE,
    SMALL_REQUEST,
    ThrottledStorage,
    TokenBucket,
    pace_piece,
    process_bucket,
    throttled,
)


class FakeClock:
    """A clock that moves only when a taker sleeps (or never, ``frozen``); records sleeps."""

    def __init__(self, frozen: bool = False) -> None:
        self.now = 100.0
        self.frozen = frozen
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if not self.frozen:
                self.now += seconds


def bucket(rate: float, burst: float | None = None, clock: FakeClock | None = None
           ) -> tuple[TokenBucket, FakeClock]:
    clock = clock or FakeClock()
    return TokenBucket(rate, burst, clock=clock, sleep=clock.sleep), clock


def test_the_burst_goes_at_once_then_the_rate_holds():
    limiter, clock = bucket(rate=1000, burst=500)
    limiter.take(500)
    assert clock.sleeps == []  # a full bucket: no wait
    for _ in range(10):
        limiter.take(100)
    assert clock.now - 100.0 == pytest.approx(1.0)  # 1000 bytes at 1000/s


def test_idle_time_refills_only_up_to_the_burst():
    limiter, clock = bucket(rate=1000, burst=200)
    limiter.take(200)
    clock.now += 60.0  # a long idle spell saves 200, not 60000
    limiter.take(1200)
    assert clock.sleeps == [pytest.approx(1.0)]


def test_a_take_larger_than_the_bucket_waits_for_all_of_it():
    limiter, clock = bucket(rate=64 * KIB, burst=64 * KIB)
    limiter.take(10 * 64 * KIB)  # ten bucketfuls in one piece: no deadlock, no shortcut
    assert sum(clock.sleeps) == pytest.approx(9.0)
    limiter.take(64 * KIB)  # and the next taker finds the bucket empty
    assert sum(clock.sleeps) == pytest.approx(10.0)


def test_the_default_burst_is_a_second_or_256_kib():
    slow, slow_clock = bucket(rate=10 * KIB)
    slow.take(10 * KIB)
    slow.take(1)
    assert slow_clock.sleeps  # 10 KiB saved up, not 256
    fast, fast_clock = bucket(rate=100 * 1024 * KIB)
    fast.take(256 * KIB)
    assert fast_clock.sleeps == []
    fast.take(100 * KIB)
    assert fast_clock.sleeps == [pytest.approx(100 / (100 * 1024))]


def test_threads_sharing_a_bucket_get_the_rate_together():
    # The clock stands still: every take reserves its piece and is told how long to wait.
    # Lost updates between threads would show as waits too short or as duplicates.
    clock = FakeClock(frozen=True)
    limiter, _ = bucket(rate=1000, burst=100, clock=clock)
    threads = [threading.Thread(target=lambda: [limiter.take(10) for _ in range(50)])
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    waits = sorted(clock.sleeps)
    # 4000 bytes: the first 100 from the bucket, each later 10 bytes 0.01 s after the last
    assert len(waits) == 400 - 10
    assert waits == [pytest.approx((i + 1) * 0.01) for i in range(390)]


def test_a_new_rate_applies_from_now():
    limiter, clock = bucket(rate=1000, burst=100)
    limiter.take(100)
    limiter.set_rate(100)
    limiter.take(100)
    assert clock.sleeps == [pytest.approx(1.0)]
    with pytest.raises(ValueError):
        limiter.set_rate(0)


def test_a_pace_piece_is_an_eighth_of_a_second_within_bounds():
    assert pace_piece(1) == pace_piece(512 * KIB) == PACE_PIECE == 64 * KIB
    assert pace_piece(1024 * KIB) == 128 * KIB
    assert pace_piece(1100 * KIB) == 128 * KIB  # whole 64 KiB steps, rounded down
    assert pace_piece(100 * 1024 * KIB) == pace_piece(2**40) == MAX_PACE_PIECE == 1024 * KIB
    # a local direct write needs whole 4 KiB blocks
    assert all(pace_piece(rate) % 4096 == 0 for rate in range(1, 20 * 1024 * KIB, 77777))


def test_the_process_has_one_bucket_per_direction():
    upload = process_bucket("upload", 100)
    assert process_bucket("upload", 100) is upload
    assert process_bucket("download", 100) is not upload
    assert process_bucket("upload", 200) is upload and upload.rate == 200 * KIB
    a, b = (throttled(open_storage(f"memory://fogvault-test/throttle-{i}"), 300, None)
            for i in range(2))
    assert isinstance(a, ThrottledStorage) and isinstance(b, ThrottledStorage)
    assert a.upload is b.upload is upload and a.download is None  # every target shares it
    plain = open_storage("memory://fogvault-test/throttle-none")
    assert throttled(plain, None, 0) is plain  # no limit: no wrapper


# ---- what ThrottledStorage takes, backend by backend --------------------------------------


class Recorder:
    """The waits ThrottledStorage is told to sleep, from a bucket on a frozen clock (so each
    wait says how much was taken so far, and the test does not sleep)."""

    def __init__(self, rate: float = 1024 * KIB) -> None:
        self.clock = FakeClock(frozen=True)
        self.bucket = TokenBucket(rate, 1, clock=self.clock, sleep=self.clock.sleep)
        self.waits: list[float] = []

    def wrap(self, inner: Storage, direction: str = "upload") -> ThrottledStorage:
        buckets = {"upload": None, "download": None, direction: self.bucket}
        return ThrottledStorage(inner, buckets["upload"], buckets["download"],
                                wait=self.waits.append)

    def takes(self) -> list[int]:
        """The bytes of each take, from the growing waits."""
        rate = self.bucket.rate
        marks = [0.0, *self.waits]
        return [round((b - a) * rate) for a, b in itertools.pairwise(marks)]


def test_a_local_write_is_paced_per_piece(tmp_path: Path):
    recorder = Recorder()
    store = recorder.wrap(open_storage(str(tmp_path / "t")))
    data = bytes(range(256)) * (4 * 1024 + 3)  # 1 MiB and a bit: direct I/O, then the rest
    store.write("data/pack", data)
    takes = recorder.takes()
    takes[0] += 1  # the bucket's one byte of burst
    assert sum(takes) == len(data)
    piece = pace_piece(recorder.bucket.rate)  # 128 KiB at 1 MiB/s
    assert max(takes) == piece and len(takes) >= len(data) // piece
    assert store.read("data/pack") == data


def test_a_whole_object_backend_pays_after_the_call():
    recorder = Recorder()
    store = recorder.wrap(open_storage("memory://fogvault-test/throttle-whole"))
    store.write("a", b"x" * 300 * KIB)
    assert recorder.takes() == [300 * KIB - 1]
    with pytest.raises(ObjectExists):  # refused before anything was sent: nothing to pay
        store.write("a", b"y" * 300 * KIB)
    assert len(recorder.waits) == 1


def test_reads_are_paid_for_what_came_back(tmp_path: Path):
    recorder = Recorder()
    inner = open_storage(str(tmp_path / "t"))
    inner.create()
    inner.write("a", b"z" * 100 * KIB)
    store = recorder.wrap(inner, "download")
    assert store.read("a", 10, 50 * KIB) == b"z" * 50 * KIB
    assert store.read("a", 90 * KIB, 50 * KIB) == b"z" * 10 * KIB  # a short read at the end
    store.write("b", b"not limited")
    assert len(recorder.waits) == 1  # 10 KiB is a small request: charged, no wait
    assert store.read("a", 0, 50 * KIB) == b"z" * 50 * KIB
    assert recorder.takes() == [50 * KIB - 1, 10 * KIB + 50 * KIB]


def test_a_small_request_is_charged_but_does_not_wait_behind_what_is_owed():
    """A lock written while packs are owed went after all of them (minutes at a low rate):
    requests of at most SMALL_REQUEST bytes never wait; the next one pays for them."""
    recorder = Recorder()
    store = recorder.wrap(open_storage("memory://fogvault-test/throttle-small"))
    store.write("data/pack", b"p" * 1024 * KIB)  # 1 s owed
    store.write("locks/lock", b"l" * 300)
    store.write("snapshots/s", b"s" * SMALL_REQUEST)
    assert len(recorder.waits) == 1  # the pack's
    store.write("data/next", b"n" * 100 * KIB)
    assert recorder.takes() == [1024 * KIB - 1, 300 + SMALL_REQUEST + 100 * KIB]


def test_an_s3_multipart_upload_is_paced_per_part(s3_url: str):
    recorder = Recorder()
    store = recorder.wrap(open_storage(s3_url, multipart_threshold="5M", part_size="5M"))
    store.create()
    data = b"p" * (11 * 1024 * KIB)
    store.write("data/big", data)
    takes = recorder.takes()
    takes[0] += 1
    assert takes == [5 * 1024 * KIB, 5 * 1024 * KIB, 1024 * KIB]


def test_interrupt_ends_the_wait(tmp_path: Path):
    limiter = TokenBucket(1 * KIB, 1)  # the real clock: a 1 MiB write would take 17 minutes
    store = ThrottledStorage(open_storage("memory://fogvault-test/throttle-stop"), limiter, None)
    done = threading.Event()
    writer = threading.Thread(target=lambda: (store.write("a", b"q" * 1024 * KIB), done.set()))
    writer.start()
    store.interrupt()
    writer.join(timeout=10)
    assert done.is_set()


def test_an_sftp_write_is_paced_per_request(sftp_url: str, sftp_env: dict[str, str]):
    """Each WRITE request waits for its tokens in the event loop, so the object grows on the
    server at the limit's pace: seen part-written many times over its second and a half. (Paid
    after the call, as before, it was written at link speed in a few milliseconds.)"""
    limiter = TokenBucket(512 * KIB, 1)
    store = ThrottledStorage(open_storage(sftp_url), limiter, None)
    store.create()
    folder = Path(sftp_env["SFTP_ROOT"], sftp_url.rsplit("/", 1)[1], "data")
    data = os.urandom(768 * KIB)
    writer = threading.Thread(target=store.write, args=("data/pack", data))
    started = time.monotonic()
    writer.start()
    sizes = set()
    while writer.is_alive():  # watching the server's folder, not a guessed delay
        sizes |= {size for size in map(_size, folder.glob(".tmp-*")) if 0 < size < len(data)}
        time.sleep(0.01)
    writer.join()
    assert time.monotonic() - started >= 1.3  # 768 KiB at 512 KiB/s, but the 1st piece: 1.375 s
    assert len(sizes) >= 6, sorted(sizes)  # 12 pieces of 64 KiB
    assert max(sizes) <= len(data) - PACE_PIECE
    assert store.read("data/pack") == data


class RecordingBucket(TokenBucket):
    """A real bucket that records the size of each reservation."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate, 1)
        self.reserved: list[int] = []

    def reserve(self, count: int) -> float:
        self.reserved.append(count)
        return super().reserve(count)


def test_an_sftp_write_goes_in_requests_as_large_as_the_limit_allows(sftp_url: str):
    """Under a limit far above the link, WRITE requests keep their full size (OpenSSH's 255
    KiB); 64 KiB requests there ran at two thirds of the speed. A slow limit still paces every
    64 KiB."""
    data = os.urandom(1024 * KIB + 5)
    requests = {}
    for kib_per_second in (512, 64 * 1024):
        limiter = RecordingBucket(kib_per_second * KIB)
        store = ThrottledStorage(open_storage(sftp_url), limiter, None)
        store.create()
        store.write(f"data/pack-{kib_per_second}", data)
        assert sum(limiter.reserved) == len(data)
        assert store.read(f"data/pack-{kib_per_second}") == data
        *whole, last = limiter.reserved
        assert len(set(whole)) == 1 and 0 < last <= whole[0]
        requests[kib_per_second] = whole[0]
    assert requests[512] == PACE_PIECE
    assert requests[64 * 1024] >= 240 * KIB


def test_an_interrupt_gives_up_an_sftp_write_waiting_for_its_tokens(
        sftp_url: str, sftp_env: dict[str, str]):
    """Interrupted part-way, a paced SFTP write stops within a wait's step and fails (the rest
    would have gone at link speed), naming the target; it leaves no temporary file."""
    store = ThrottledStorage(open_storage(sftp_url), TokenBucket(64 * KIB, 1), None)
    store.create()
    folder = Path(sftp_env["SFTP_ROOT"], sftp_url.rsplit("/", 1)[1])
    failures: list[Exception] = []

    def write() -> None:
        try:
            store.write("data/pack", b"q" * 1024 * KIB)  # 16 s at 64 KiB/s
        except TransientStorageError as exc:
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    wait_until(lambda: any(map(_size, folder.glob("data/.tmp-*"))), "the write under way")
    store.interrupt()
    writer.join(timeout=5)
    assert not writer.is_alive()
    [failure] = failures
    assert str(failure) == (f"{store.url} data/pack: given up: the command is being "
                            "interrupted")
    assert not list(folder.glob("data/*"))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # renamed into place meanwhile
        return 0
