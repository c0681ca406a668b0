"""fogvault.heap: free memory inside the C heap goes back to the system; pooled maps are handed
out again only once nothing refers to them."""

from __future__ import annotations

import os
import platform

import pytest

from fogvault.heap import MapPool, release_free_memory


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_memory_below_a_live_block_is_given_back() -> None:
    # 64 KiB blocks come from the heap (below glibc's mmap threshold); a live block allocated
    # after them pins the heap's top, so freeing them alone leaves the pages in the process.
    blocks = [bytes([n % 255 + 1]) * (64 * 1024) for n in range(3000)]  # ~190 MiB, touched
    pin = bytes([7]) * (64 * 1024)
    before = _rss_bytes()
    del blocks
    freed = _rss_bytes()
    release_free_memory()
    after = _rss_bytes()
    assert pin[0] == 7
    assert freed - after > 100 * 1024 * 1024, (before, freed, after)


def test_a_pooled_map_is_handed_out_again_only_once_nothing_refers_to_it() -> None:
    pool = MapPool(64 * 1024, keep=2)
    held = memoryview(pool.take(1000))[:1000]  # a user keeps only a view, as chunks do
    held[:] = b"\x01" * 1000
    second = pool.take(1000)
    assert held.obj is not second
    fresh = pool.take(1000)  # both kept maps are in use: a fresh one, not kept
    assert fresh is not held.obj and fresh is not second
    second_id = id(second)
    del second, fresh
    assert id(pool.take(1000)) == second_id  # free again
    assert bytes(held) == b"\x01" * 1000  # the map still in use was left alone
    first_id = id(held.obj)
    held.release()
    taken = {id(pool.take(1000)), id(pool.take(1000))}  # each dropped at once: the first free
    assert first_id in taken


def test_a_pooled_map_hands_back_what_an_earlier_user_wrote_beyond_the_size_asked() -> None:
    """Pages past the size asked for are given back to the system (and read as zeros again):
    a map once filled to its capacity does not hold that memory for every later small use."""
    pool = MapPool(1024 * 1024, keep=1)
    window = pool.take(1024 * 1024)
    window[:] = b"\xff" * len(window)
    del window
    window = pool.take(8192)
    assert window[:8192] == b"\xff" * 8192  # what the caller will overwrite is kept
    assert window[8192:] == bytes(len(window) - 8192)
