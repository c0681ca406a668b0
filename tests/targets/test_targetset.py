"""TargetSet on its own: fan-out writes with bounded concurrency, dropping failing targets,
retries, fastest-first verified reads with failover, missed changes, k-of-N quorum.

Real local folders and memory:// targets; faults come from FaultyStorage.
"""

from __future__ import annotations

import logging
import threading
import uuid

import pytest

from fogvault.errors import IntegrityError, NotEnoughTargets, TargetsUnavailable, UsageError
from fogvault.storage import Fault, FaultyStorage, ObjectNotFound, open_storage
from fogvault.storage.faulty import no_space, permanent, transient
from fogvault.storage.metered import MeteredStorage
from fogvault.targets import TargetPolicy, TargetSet


@pytest.fixture
def storages(tmp_path):
    made = [FaultyStorage(open_storage(str(tmp_path / n)), seed=i) for i, n in enumerate("abc")]
    for s in made:
        s.create()
    return made


def _set(storages, **policy) -> TargetSet:
    return TargetSet(storages, TargetPolicy(**{**{"retry_attempts": 3, "retry_base_delay": 0.001,
                                                  "retry_max_delay": 0.002}, **policy}))


def test_a_write_reaches_every_target(storages) -> None:
    targets = _set(storages)
    written = targets.write("snapshots/0123456789abcdef", b"x")
    assert {t.url for t in written} == {s.url for s in storages}
    assert all(s.inner.read("snapshots/0123456789abcdef") == b"x" for s in storages)
    assert targets.missed_changes() == {}


def test_a_target_whose_write_fails_is_dropped_and_misses_later_changes(storages, caplog) -> None:
    targets = _set(storages)
    storages[1].inject("write", Fault(error=no_space(), times=None))
    with caplog.at_level(logging.WARNING, "fogvault"):
        written = targets.write_to_each("data/aa/1", b"pack", exist_ok=True)
    assert [t.url for t in written] == [storages[0].url, storages[2].url]
    assert targets.targets[1].dropped and "no space" in targets.targets[1].dropped
    assert "not using this target" in caplog.text
    calls = storages[1].calls["write"]
    targets.write_to_each("data/aa/2", b"pack", exist_ok=True)
    assert storages[1].calls["write"] == calls  # a dropped target gets no more requests
    assert list(targets.missed_changes()) == [storages[1].url]


def test_a_write_that_fails_everywhere_raises_and_drops_nobody(storages) -> None:
    targets = _set(storages)
    for s in storages:
        s.inject("write", Fault(error=permanent(), times=1))
    with pytest.raises(Exception, match="injected permanent"):
        targets.write("keys/0123456789abcdef", b"k")
    assert all(t.active for t in targets.targets)


def test_transient_errors_are_retried_before_a_target_is_dropped(storages) -> None:
    targets = _set(storages, retry_attempts=4)
    storages[0].inject("write", Fault(error=transient(), times=3))
    targets.write("snapshots/0123456789abcdef", b"x")
    assert targets.targets[0].active  # 3 failures, then the 4th attempt worked
    assert targets.usage()[storages[0].url]["requests"]["write"] == 4


def test_no_usable_target_left_is_an_error(storages) -> None:
    targets = _set(storages)
    for t in targets.targets:
        targets.drop(t, "gone")
    with pytest.raises(TargetsUnavailable, match="no target is usable"):
        targets.write("snapshots/0123456789abcdef", b"x")
    with pytest.raises(TargetsUnavailable):
        targets.read("snapshots/0123456789abcdef")


def test_concurrency_per_target_is_bounded(storages) -> None:
    targets = _set(storages, concurrency=2)
    writes = 8
    in_flight, peak, entered, changed = [0], [0], [0], threading.Condition()

    def slow(method: str, name: str) -> None:
        with changed:
            in_flight[0] += 1
            entered[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            changed.notify_all()
            # Stay until a second write is in here too (the bound must let two through at once)
            # or no other write is left to come; a third would raise the peak.
            changed.wait_for(lambda: in_flight[0] >= 2 or entered[0] == writes, timeout=10)
            in_flight[0] -= 1

    storages[0].inject("write", Fault(hook=slow, times=None))
    threads = [threading.Thread(target=targets.write_to_each, args=(f"data/aa/{i}", b"p"),
                                kwargs={"exist_ok": True}) for i in range(writes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 2


def test_a_damaged_copy_falls_through_to_the_next_target_and_is_remembered(storages,
                                                                           caplog) -> None:
    targets = _set(storages)
    targets.write("index/x", b"good")
    first = targets.read_order("index/x")[0]
    first.raw.inject("read", Fault(flip=True))

    def verify(data: bytes) -> bytes:
        if data != b"good":
            raise IntegrityError("does not match its name")
        return data

    with caplog.at_level(logging.WARNING, "fogvault"):
        assert targets.read_decoded("index/x", verify) == b"good"
    assert (first.url, "index/x") in targets.damaged
    assert f"{first.url} index/x: does not match its name; trying another" in caplog.text
    assert first.active  # a bad copy is the object's problem, not the target's


def test_a_copy_that_could_not_be_read_is_not_remembered_as_damaged(storages) -> None:
    targets = _set(storages, retry_attempts=1)
    targets.write("index/x", b"good")
    first = targets.read_order("index/x")[0]
    first.raw.inject("read", Fault(error=permanent()))  # e.g. permission denied: no bytes seen
    assert targets.read("index/x") == b"good"
    assert first.raw.calls["read"] == 1  # the read did fail there, and fell through
    assert targets.damaged == set()


def test_a_target_whose_reads_fail_is_tried_last(storages) -> None:
    targets = _set(storages, retry_attempts=1)
    targets.write("snapshots/0123456789abcdef", b"x")
    first = targets.read_order()[0]
    first.raw.inject("read", Fault(error=transient(), times=None))
    assert targets.read("snapshots/0123456789abcdef") == b"x"
    assert targets.read_order()[-1] is first and first.active  # demoted, still in use


def test_a_target_whose_reads_keep_failing_is_dropped(storages) -> None:
    targets = _set(storages, read_failures_to_drop=1, retry_attempts=2)
    targets.write("snapshots/0123456789abcdef", b"x")
    first = targets.read_order()[0]
    first.raw.inject("read", Fault(error=transient(), times=None))
    assert targets.read("snapshots/0123456789abcdef") == b"x"
    assert first.raw.calls["read"] == 2  # retried, then given up
    assert not first.active and "reads keep failing" in first.dropped
    assert first not in targets.read_order()


def test_reads_go_to_the_fastest_target_first(tmp_path) -> None:
    remote = FaultyStorage(open_storage(f"memory://fogvault-test/{uuid.uuid4().hex}"))
    slow_local = FaultyStorage(open_storage(str(tmp_path / "slow")))
    fast_local = FaultyStorage(open_storage(str(tmp_path / "fast")))
    targets = _set([remote, slow_local, fast_local])
    for t in targets.targets:
        t.storage.create()
    # before anything is measured: local folders first, in the order given
    assert [t.raw for t in targets.read_order()] == [slow_local, fast_local, remote]
    targets.write("config", b"c")
    slow_local.inject("read", Fault(delay=0.05, times=None))
    for _ in range(3):  # every target answers a few small reads: latency is measured
        for target in targets.targets:
            target.storage.read("config")
    order = targets.read_order()
    assert order[-1].raw is slow_local  # measured: slower than the remote target
    assert order[0].meter.latency < order[-1].meter.latency


def test_a_target_known_to_lack_an_object_is_tried_last_and_quietly(storages, caplog) -> None:
    targets = _set(storages)
    storages[2].inner.write("snapshots/0123456789abcdef", b"only here")
    targets.list("snapshots/")
    with caplog.at_level(logging.WARNING, "fogvault"):
        assert targets.read("snapshots/0123456789abcdef") == b"only here"
    assert storages[0].calls["read"] == 0 and storages[1].calls["read"] == 0
    assert "missing" not in caplog.text and targets.damaged == set()


def test_deletes_a_dropped_target_missed_are_recorded_but_not_lock_changes(storages) -> None:
    targets = _set(storages)
    targets.write("snapshots/0123456789abcdef", b"s")
    targets.drop(targets.targets[2], "unreachable")
    targets.write("locks/0123456789abcdef", b"l")
    targets.delete("locks/0123456789abcdef")
    assert targets.missed_changes() == {}  # locks come and go: nothing to repair
    targets.delete("snapshots/0123456789abcdef")
    assert targets.missed_deletes == {(storages[2].url, "snapshots/0123456789abcdef")}
    assert storages[2].inner.exists("snapshots/0123456789abcdef")  # left as it was


def test_quorum_counts_targets_in_use_and_not_behind(storages) -> None:
    targets = _set(storages, min_targets=2)
    assert len(targets.require_quorum("commit")) == 3
    targets.mark_behind(targets.targets[0], "lacks 1 of 2 index files")
    assert len(targets.require_quorum("commit")) == 2
    targets.drop(targets.targets[1], "write failed (no space left on device)")
    with pytest.raises(NotEnoughTargets, match=r"only 1 of 3 .* --min-targets is 2; behind: "
                       r".*/a \(lacks 1 of 2 index files\); .*/b \(write failed"):
        targets.require_quorum("snapshot not saved")


def test_a_snapshot_goes_only_to_the_committable_targets(storages) -> None:
    targets = _set(storages, min_targets=2)
    targets.mark_behind(targets.targets[0], "lacks index files")
    written = targets.write("snapshots/0123456789abcdef", b"s", only=targets.committable())
    assert len(written) == 2 and not storages[0].inner.exists("snapshots/0123456789abcdef")
    assert "lacks index files" in targets.missed_changes()[storages[0].url]


def test_policy_from_the_environment_and_its_checks() -> None:
    env = {"FOGVAULT_RETRY_ATTEMPTS": "7", "FOGVAULT_RETRY_DELAY": "0.5",
           "FOGVAULT_TARGET_CONCURRENCY": "2"}
    policy = TargetPolicy.from_env(env, min_targets=2)
    assert (policy.retry_attempts, policy.retry_base_delay, policy.concurrency,
            policy.min_targets) == (7, 0.5, 2, 2)
    assert policy.quorum(3) == 2 and TargetPolicy().quorum(3) == 3
    with pytest.raises(UsageError, match="only 3 targets"):
        TargetPolicy(min_targets=4).quorum(3)
    with pytest.raises(UsageError):
        TargetPolicy(min_targets=0)
    with pytest.raises(UsageError, match="not a number"):
        TargetPolicy.from_env({"FOGVAULT_RETRY_ATTEMPTS": "many"})


def test_metered_storage_counts_requests_bytes_and_small_latency(tmp_path) -> None:
    meter = MeteredStorage(open_storage(str(tmp_path / "m")))
    meter.create()
    meter.write("a", b"12345")
    assert meter.read("a") == b"12345"
    with pytest.raises(ObjectNotFound):
        meter.read("missing")
    counts = meter.snapshot()
    assert counts["requests"] == {"create": 1, "write": 1, "read": 2}
    assert (counts["bytes_written"], counts["bytes_read"], counts["failures"]) == (5, 5, 0)
    assert meter.latency is not None and meter.latency >= 0


def test_reads_are_local_while_a_local_folder_is_read_first(tmp_path) -> None:
    remote = FaultyStorage(open_storage(f"memory://fogvault-test/{uuid.uuid4().hex}"))
    local = FaultyStorage(open_storage(str(tmp_path / "local")))
    assert _set([remote, local]).reads_local  # local folders are read first
    assert not _set([remote]).reads_local
    targets = _set([remote, local])
    targets.drop(targets.target(local.url), "test")
    assert not targets.reads_local  # what is left is remote


def test_an_interrupt_reaches_every_open_target_set(storages) -> None:
    """What the CLI's signal handler calls: the targets retry nothing from then on, so a write
    that fails once drops its target instead of being retried."""
    from fogvault.interrupts import notify

    targets = _set(storages)
    notify()
    storages[0].inject("write", Fault(error=transient(), times=1))
    written = targets.write("snapshots/0123456789abcdef", b"x")
    assert {t.url for t in written} == {s.url for s in storages[1:]}


def test_a_target_set_nobody_closed_is_collected(storages) -> None:
    """Registered for interrupts, weakly: one left unclosed by an exception does not keep its
    threads and connections for the rest of the process."""
    import gc
    import weakref

    targets = _set(storages)
    targets.write("snapshots/0123456789abcdef", b"x")  # its pool has threads now
    collected = weakref.ref(targets)
    del targets
    gc.collect()
    assert collected() is None
