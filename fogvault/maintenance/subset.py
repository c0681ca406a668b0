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
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from fogvault.errors import UsageError
from fogvault.sizes import parse_size


class Packs(Protocol):
    """The packs to choose from (``inventory.LivePacks``): numbers, ids, sizes by number."""

    sizes: Sequence[int]

    def numbers(self) -> Iterator[int]: ...

    def pack_id(self, number: int) -> bytes: ...


#: the packs -> the numbers of those to read
Chooser = Callable[[Packs], Iterable[int]]

HINT = "use a group such as 1/10, a percentage such as 5% or a size such as 500M"


def chooser(spec: str) -> Chooser:
    """The packs ``spec`` chooses; a UsageError if it is none of the three forms."""
    spec = spec.strip()
    if match := re.fullmatch(r"(\d+(?:\.\d+)?)%", spec):
        share = float(match.group(1)) / 100
        if not 0 < share <= 1:
            raise UsageError(f"--read-data-subset {spec}: a percentage must be above 0 and at "
                             "most 100")
        return lambda packs: _at_random(packs, share)
    if match := re.fullmatch(r"(\d+)/(\d+)", spec):
        n, m = int(match.group(1)), int(match.group(2))
        if not 1 <= n <= m:
            raise UsageError(f"--read-data-subset {spec}: a group n/m needs 1 <= n <= m")
        return lambda packs: (number for number in packs.numbers()
                              if int.from_bytes(packs.pack_id(number)[:4], "big") % m == n - 1)
    try:
        limit = parse_size(spec)
    except UsageError:
        raise UsageError(f"--read-data-subset {spec!r} is not a subset: {HINT}") from None
    if limit <= 0:
        raise UsageError(f"--read-data-subset {spec}: a size must be above 0")
    return lambda packs: _up_to(packs, limit)


def _shuffled(packs: Packs) -> array[int]:
    """The pack numbers in a random order: 8 bytes a pack, not an object each."""
    numbers = array("Q", packs.numbers())
    random.shuffle(numbers)
    return numbers


def _at_random(packs: Packs, share: float) -> Iterable[int]:
    numbers = _shuffled(packs)
    return numbers[:max(1, round(len(numbers) * share))]


def _up_to(packs: Packs, limit: int) -> list[int]:
    chosen, total = [], 0
    for number in _shuffled(packs):
        size = packs.sizes[number]
        if chosen and total + size > limit:
            continue
        chosen.append(number)
        total += size
    return chosen
