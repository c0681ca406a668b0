#!/usr/bin/env python3
"""Measure the in-memory blob index: bytes per blob, insert and lookup rates.

    .venv/bin/python scripts/index_memory.py [--blobs 1000000] [--rounds 5] [--against FILE]

Prints the index's own accounting (records, pack ids, slot tables), the process RSS growth,
the bulk insert rate (packs of 16 blobs added as index-file listings, as ``load_index`` does)
and single-id lookup rates (``blob_id in index``, what backup's dedup asks per chunk) for
present and absent ids, each measured separately. Rates are per second of this process's CPU
time, the best of ``--rounds`` passes over 200,000 ids: the machine is shared, and wall time
would measure the other jobs. The figures are recorded in docs/design.md and
docs/performance.md.

``--against FILE`` (another version of ``fogvault/repo/index.py``, e.g. from ``git show``)
builds that version's index from the same listings in the same process and measures the two in
turns: on a shared machine, rates of separate runs differ by more than most changes.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fogvault.repo.format import BlobType
from fogvault.repo.index import COMPILED_SLOT_TABLE, BlobIndex, encode_listing
from fogvault.repo.pack import PackEntry

PACK_BLOBS = 16  # 16 MiB packs of 1 MiB chunks
SAMPLE = 200_000


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def listings(n: int) -> bytes:
    """``n`` random blobs, as one buffer of index-file entries (per-blob bytes objects would
    skew the RSS figure)."""
    return b"".join(
        encode_listing(PackEntry(BlobType.DATA, os.urandom(32), (i % PACK_BLOBS) * 1_100_000,
                                 1_100_000, 1_048_576) for i in range(first, first + 100_000))
        for first in range(0, n, 100_000)
    )[: n * 45]


def best_rate(ids: list[bytes], test: Callable[[list[bytes]], int], rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        fresh = [bytes(bytearray(b)) for b in ids]  # new objects: no cached hash
        started = time.process_time()
        found = test(fresh)
        best = max(best, len(ids) / (time.process_time() - started))
        assert found in (0, len(ids)), found
    return best


def count_present(index: BlobIndex) -> Callable[[list[bytes]], int]:
    def test(ids: list[bytes]) -> int:
        found = 0
        for blob_id in ids:
            if blob_id in index:
                found += 1
        return found

    return test


def build(index_class: type, entries: memoryview, packs: list[bytes]) -> tuple[object, float]:
    """An index of every listing, and the CPU seconds it took."""
    index = index_class()
    started = time.process_time()
    for number, pack_id in enumerate(packs):
        index.add_listing(pack_id, entries[number * PACK_BLOBS * 45 :][: PACK_BLOBS * 45])
    return index, time.process_time() - started


def other_index_class(path: Path) -> type:
    spec = importlib.util.spec_from_file_location("index_under_comparison", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.BlobIndex


def compare(other: type, index: BlobIndex, entries: memoryview, packs: list[bytes],
            present: list[bytes], absent: list[bytes], rounds: int) -> None:
    """Both indexes measured in turns, one pass each per round; the best of each."""
    theirs, _ = build(other, entries, packs)
    best = {name: [0.0, 0.0] for name in ("this", "other")}
    for _ in range(rounds):
        for name, candidate in (("other", theirs), ("this", index)):
            test = count_present(candidate)
            for slot, ids in enumerate((present, absent)):
                best[name][slot] = max(best[name][slot], best_rate(ids, test, 1))
    for name in ("this", "other"):
        print(f"{name + ':':22} {best[name][0]:,.0f} present, {best[name][1]:,.0f} absent "
              f"(in turns, best of {rounds})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another version of index.py to compare")
    args = parser.parse_args()
    n = args.blobs
    entries = memoryview(listings(n))
    packs = [os.urandom(32) for _ in range(-(-n // PACK_BLOBS))]
    before = rss_bytes()
    index, insert_s = build(BlobIndex, entries, packs)
    grown = rss_bytes() - before
    assert len(index) == index.distinct_blobs() == n

    step = max(1, n // SAMPLE)
    present = [entries[45 * i + 1 : 45 * i + 33].tobytes() for i in range(0, n, step)]
    absent = [os.urandom(32) for _ in present]
    test = count_present(index)
    hit_rate = best_rate(present, test, args.rounds)
    miss_rate = best_rate(absent, test, args.rounds)

    compiled = COMPILED_SLOT_TABLE
    print(f"blobs:                 {n:,} in {len(packs):,} packs")
    print(f"slot table:            {'compiled (fogvault/repo/_probe.c)' if compiled else 'Python'}")
    print(f"index bytes per blob:  {index.memory_bytes() / n:.1f} (records, pack ids, slot tables)")
    print(f"RSS growth per blob:   {grown / n:.1f}")
    # scripts/bench/measure.py parses these labels
    print(f"inserts per second:    {n / insert_s:,.0f} (bulk, CPU time, growing from empty)")
    print(f"lookups per second:    {hit_rate:,.0f} present, {miss_rate:,.0f} absent "
          f"(CPU time, best of {args.rounds} x {len(present):,})")
    print(f"peak RSS:              {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MiB")
    print(f"load average:          {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.against:
        compare(other_index_class(args.against), index, entries, packs, present, absent,
                args.rounds)


if __name__ == "__main__":
    main()
