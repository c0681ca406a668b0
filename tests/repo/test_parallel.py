"""ordered_map: results in order, a bounded window of work in flight, errors where they belong."""

from __future__ import annotations

import threading

import pytest

from fogvault.parallel import ordered_map


def test_results_come_in_order_with_a_bounded_window():
    started = []
    lock = threading.Lock()

    def work(n: int) -> int:
        with lock:
            started.append(n)
        return n * n

    consumed = 0
    for result in ordered_map(work, range(200), workers=3, ahead=5):
        assert result == consumed * consumed
        consumed += 1
        # The item awaited and at most 5 more were submitted: the input is not run ahead.
        assert len(started) <= consumed + 5
    assert consumed == 200 and sorted(started) == list(range(200))


def test_items_are_consumed_only_as_far_as_the_window():
    pulled = []

    def items():
        for n in range(1000):
            pulled.append(n)
            yield n

    results = ordered_map(lambda n: n, items(), workers=2)
    assert next(results) == 0
    assert len(pulled) == 2 * 2 + 1  # the default window is 2 * workers beyond the first
    results.close()


def test_an_error_is_raised_at_its_place_and_later_results_are_not_lost_before_it():
    def work(n: int) -> int:
        if n == 7:
            raise ValueError("seven")
        return n

    seen = []
    with pytest.raises(ValueError, match="seven"):
        for result in ordered_map(work, range(20), workers=4):
            seen.append(result)
    assert seen == list(range(7))
