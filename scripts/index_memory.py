#!/usr/bin/env python3
"""Measure the in-memory blob index: bytes per blob, insert and lookup rates.

    .venv/bin/python scripts/index_memory.py [--blobs 1000000]

Prints the index's own accounting (records + slot table), the process RSS growth, and lookup
rates for present and absent ids. The figure is recorded in docs/design.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from fogvault.repo.format import BlobType
from fogvault.repo.index import BlobIndex
from fogvault.repo.pack import PackEntry


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.blobs
    ids = os.urandom(32 * n)  # one buffer: per-id bytes objects would skew the RSS figure
    packs = [os.urandom(32) for _ in range((n + 15) // 16)]
    before = rss_bytes()
    index = BlobIndex()
    started = time.perf_counter()
    for first in range(0, n, 16):  # packs of 16 blobs, added as whole listings
        index.add_pack(packs[first // 16 % len(packs)], [
            PackEntry(BlobType.DATA, ids[32 * i : 32 * i + 32], (i % 16) * 1_100_000,
                      1_100_000, 1_048_576)
            for i in range(first, min(first + 16, n))
        ])
    insert_s = time.perf_counter() - started
    grown = rss_bytes() - before

    sample = [ids[32 * i : 32 * i + 32] for i in range(0, n, max(1, n // 200_000))]
    started = time.perf_counter()
    hits = sum(1 for blob_id in sample if blob_id in index)
    hit_rate = len(sample) / (time.perf_counter() - started)
    absent = [os.urandom(32) for _ in range(len(sample))]
    started = time.perf_counter()
    misses = sum(1 for blob_id in absent if blob_id not in index)
    miss_rate = len(absent) / (time.perf_counter() - started)
    assert hits == len(sample) and misses == len(absent)

    print(f"blobs:                 {n:,}")
    print(f"index bytes per blob:  {index.memory_bytes() / n:.1f} (records + slot table)")
    print(f"RSS growth per blob:   {grown / n:.1f}")
    print(f"inserts per second:    {n / insert_s:,.0f}")
    print(f"lookups per second:    {hit_rate:,.0f} present, {miss_rate:,.0f} absent")
    print(f"peak RSS:              {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MiB")


if __name__ == "__main__":
    main()
