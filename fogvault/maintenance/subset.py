"""Which packs ``check --read-data-subset`` reads, as restic chooses them:

* ``n/m``: group n of m, a pack's group coming from its id (the first 4 bytes as a number,
  modulo m), so that the m groups cover every pack once and each is the same every time;
* ``x%``: x percent of the packs, rounded, at least one, chosen at random each run;
* a size (``500M``, ``2G``): packs chosen at random while their sizes add up to no more than
  it, at least one.

No I/O and no repository here: a job's config checks its ``check_read_data_subset`` with
:func:`chooser` too.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable

from fogvault.errors import UsageError
from fogvault.sizes import parse_size

#: (pack number, pack id, size) of every pack -> the numbers of those to read
Chooser = Callable[[list[tuple[int, bytes, int]]], Iterable[int]]

HINT = "use a group such as 1/10, a percentage such as 5% or a size such as 500M"


def chooser(spec: str) -> Chooser:
    """The packs ``spec`` chooses; a UsageError if it is none of the three forms."""
    spec = spec.strip()
    if match := re.fullmatch(r"(\d+(?:\.\d+)?)%", spec):
        share = float(match.group(1)) / 100
        if not 0 < share <= 1:
            raise UsageError(f"--read-data-subset {spec}: a percentage must be above 0 and at "
                             "most 100")
        return lambda packs: _at_random(packs, max(1, round(len(packs) * share)))
    if match := re.fullmatch(r"(\d+)/(\d+)", spec):
        n, m = int(match.group(1)), int(match.group(2))
        if not 1 <= n <= m:
            raise UsageError(f"--read-data-subset {spec}: a group n/m needs 1 <= n <= m")
        return lambda packs: (number for number, pack_id, _ in packs
                              if int.from_bytes(pack_id[:4], "big") % m == n - 1)
    try:
        limit = parse_size(spec)
    except UsageError:
        raise UsageError(f"--read-data-subset {spec!r} is not a subset: {HINT}") from None
    if limit <= 0:
        raise UsageError(f"--read-data-subset {spec}: a size must be above 0")
    return lambda packs: _up_to(packs, limit)


def _at_random(packs: list[tuple[int, bytes, int]], count: int) -> list[int]:
    return [number for number, _, _ in random.sample(packs, min(count, len(packs)))]


def _up_to(packs: list[tuple[int, bytes, int]], limit: int) -> list[int]:
    chosen, total = [], 0
    for number, _, size in random.sample(packs, len(packs)):
        if chosen and total + size > limit:
            continue
        chosen.append(number)
        total += size
    return chosen
