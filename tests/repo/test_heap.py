"""fogvault.heap: free memory inside the C heap goes back to the system; pooled maps are handed
out again only once nothing refers to them."""

from __future__ import annotations

import os
import platform
import sys

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


def test_a_pooled_map_is_handed_out_again_only_once_no_view_of_it_is_left() -> None:
    pool = MapPool(64 * 1024, keep=2)
    held = memoryview(pool.take(1000))[:1000]  # users hold views, as chunks do
    held[:] = b"\x01" * 1000
    second_view = memoryview(pool.take(1000))[10:20]
    assert second_view.obj is not held.obj
    fresh = pool.take(1000)  # both kept maps are in use: a fresh one, not kept
    assert fresh is not held.obj and fresh is not second_view.obj
    second = second_view.obj
    second_view.release()
    assert pool.take(1000) is second  # free again
    assert bytes(held) == b"\x01" * 1000  # the map still in use was left alone
    first = held.obj
    held.release()
    assert pool.take(1000) is first


@pytest.mark.skipif(sys.platform != "linux", reason="MADV_DONTNEED zeroes pages on Linux")
def test_a_pooled_map_hands_back_pages_it_does_not_need() -> None:
    """Pages past the size asked for, and all pages of a map left unused for a while, go back
    to the system (and read as zeros again): a map once filled to its capacity does not hold
    that memory for every later small use, or for the rest of the run."""
    pool = MapPool(1024 * 1024, keep=2)
    first, second = memoryview(pool.take(1024 * 1024)), memoryview(pool.take(1024 * 1024))
    first[:] = second[:] = b"\xff" * (1024 * 1024)
    first_map, second_map = first.obj, second.obj
    first.release()
    second.release()
    window = memoryview(pool.take(8192))
    assert window.obj is first_map
    assert window[:8192] == b"\xff" * 8192  # what the caller will overwrite is kept
    assert window[8192:] == bytes(len(window) - 8192)
    assert second_map[:] == b"\xff" * (1024 * 1024)  # idle, but used lately
    window.release()
    for _ in range(2 * pool.keep + 1):  # the first map serves every call
        assert pool.take(100) is first_map
    assert second_map[:] == bytes(1024 * 1024)
