"""fogvault.heap.release_free_memory: free memory inside the C heap goes back to the system."""

from __future__ import annotations

import os
import platform

import pytest

from fogvault.heap import release_free_memory


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
