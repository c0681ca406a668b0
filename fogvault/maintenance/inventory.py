"""What each target holds, and what it should hold: the common ground of check, repair,
``targets`` and ``target remove``.

:func:`take_inventory` lists every reachable target once (everything but ``locks/``) and works
out the *live* objects, the ones every target should hold:

* ``config``;
* every key file and every snapshot found on any target, except those whose deletion a target
  missed (``TargetSet.missed_deletes``) and that no other target still holds;
* every live index file (loaded, and superseded by none: needs ``repo.load_index()`` first);
* every pack the index names, with the exact size its entries imply.

Objects a target holds beyond these (packs no index lists, superseded index files) are
*extra*: left by interrupted runs or by a prune that skipped the target; ``prune`` removes them.

Packs are most of the objects, so they are not kept by name: the live packs are the index's
own pack numbers (:class:`LivePacks`, 8 bytes a pack for the size each should have), and a
target's listing (:class:`Listing`) holds one byte per live pack. Names of packs are made when
they are asked for. A name per pack per target, in dicts and sets, cost about 780 bytes a pack
at two targets, about as much as the index itself (docs/performance-log.md, "Session 17").
"""

from __future__ import annotations

import weakref
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Self

from fogvault.errors import FogVaultError
from fogvault.repo.format import (
    CONFIG_NAME,
    DATA_DIR,
    KEYS_DIR,
    LOCKS_DIR,
    SNAPSHOTS_DIR,
    id_from_name,
    pack_id_from_name,
    pack_name,
)
from fogvault.repo.index import BlobIndex
from fogvault.repo.repository import Repository
from fogvault.storage import ObjectInfo

# A target's hold on a live pack, one byte per pack number.
_ABSENT, _HELD, _ODD_SIZE = 0, 1, 2


class LivePacks:
    """The packs the index lists, by the index's pack numbers, with the exact size each should
    have (0 for a number with no blobs: not live).

    Packs the index gains later (a backup running meanwhile) are not live here: their numbers
    are past :attr:`capacity`. The index is held weakly: ``TargetSet`` keeps a copy of each
    listing to order reads for as long as the repository is open, and must not keep an index
    that ``load_index`` has replaced alive with it; once that index is gone, every name is
    looked up as a name."""

    def __init__(self, index: BlobIndex) -> None:
        self._index = weakref.ref(index)
        self.sizes = array("Q", bytes(8 * index.pack_count()))
        self._count = 0
        for number, size in index.pack_sizes():
            self.sizes[number] = size
            self._count += 1

    def __len__(self) -> int:
        return self._count

    @property
    def capacity(self) -> int:
        """One more than the highest pack number."""
        return len(self.sizes)

    def number(self, name: object) -> int:
        """The number of the live pack called ``name`` (exactly as :func:`pack_name` spells
        it), or -1 for any other name."""
        pack_id = pack_id_from_name(name)  # not another folder, upper case, spaces
        if pack_id is None:
            return -1
        index = self._index()
        number = -1 if index is None else index.pack_number(pack_id)
        return number if 0 <= number < len(self.sizes) and self.sizes[number] else -1

    def numbers(self) -> Iterator[int]:
        return (number for number, size in enumerate(self.sizes) if size)

    def pack_id(self, number: int) -> bytes:
        index = self._index()
        if index is None:
            raise RuntimeError("the index these pack numbers belong to was replaced")
        return index.pack_id_at(number)

    def name(self, number: int) -> str:
        return pack_name(self.pack_id(number))


class Listing(Mapping[str, int]):
    """name -> size of what one target holds: live packs as a byte per pack number (and the
    size only where it is not the one expected), every other object by name. ``TargetSet``
    keeps a copy to order reads, which its writes and deletes keep current; the caller's copy
    changes only as the caller changes it."""

    def __init__(self, packs: LivePacks) -> None:
        self._packs = packs
        self._holds = bytearray(packs.capacity)
        self._held = 0  # live packs held
        self._odd_sizes: dict[int, int] = {}  # pack number -> size, where not the expected one
        self._other: dict[str, int] = {}  # every name that is not a live pack

    @classmethod
    def of(cls, packs: LivePacks, infos: Iterable[ObjectInfo]) -> Self:
        listing = cls(packs)
        for info in infos:
            listing.add(info.name, info.size)
        return listing

    def add(self, name: str, size: int | None = None, /) -> None:
        """Record ``name`` as held. Added without a size (just written), a pack has the size
        expected, another object the size it was listed with, or 0."""
        number = self._packs.number(name)
        if number < 0:
            if size is None:
                self._other.setdefault(name, 0)
            else:
                self._other[name] = size
            return
        if not self._holds[number]:
            self._held += 1
        if size is None or size == self._packs.sizes[number]:
            self._holds[number] = _HELD
            self._odd_sizes.pop(number, None)
        else:
            self._holds[number] = _ODD_SIZE
            self._odd_sizes[number] = size

    def discard(self, name: str, /) -> None:
        number = self._packs.number(name)
        if number < 0:
            self._other.pop(name, None)
        elif self._holds[number]:
            self._holds[number] = _ABSENT
            self._odd_sizes.pop(number, None)
            self._held -= 1

    def copy(self) -> Listing:
        twin = Listing(self._packs)  # the numbers stay those of the same index
        twin._holds[:] = self._holds
        twin._held = self._held
        twin._odd_sizes, twin._other = dict(self._odd_sizes), dict(self._other)
        return twin

    def __contains__(self, name: object, /) -> bool:
        number = self._packs.number(name)
        return bool(self._holds[number]) if number >= 0 else name in self._other

    def __getitem__(self, name: str) -> int:
        number = self._packs.number(name)
        if number < 0:
            return self._other[name]
        if not self._holds[number]:
            raise KeyError(name)
        return self._odd_sizes.get(number, self._packs.sizes[number])

    def __iter__(self) -> Iterator[str]:
        for number in self.held_packs():
            yield self._packs.name(number)
        yield from self._other

    def __len__(self) -> int:
        return self._held + len(self._other)

    def total_bytes(self) -> int:
        packs = sum(self._odd_sizes.get(n, self._packs.sizes[n]) for n in self.held_packs())
        return packs + sum(self._other.values())

    def held_packs(self) -> Iterator[int]:
        return (n for n in self._packs.numbers() if self._holds[n])

    def packs_as_expected(self) -> Iterator[int]:
        """The live packs held at the size their index entries imply."""
        return (n for n in self._packs.numbers() if self._holds[n] == _HELD)

    def missing_packs(self) -> Iterator[int]:
        return (n for n in self._packs.numbers() if not self._holds[n])

    def odd_sized_packs(self) -> list[int]:
        return list(self._odd_sizes)

    def other_names(self) -> Iterator[str]:
        """Held names that are not live packs: metadata, and extra objects."""
        return iter(self._other)


class LiveObjects(Mapping[str, int | None]):
    """name -> size (packs) or None (everything else: its size is not known in advance) of
    every object each target should hold."""

    def __init__(self, packs: LivePacks) -> None:
        self.packs = packs
        self._metadata: dict[str, None] = {}

    def add_metadata(self, name: str) -> None:
        self._metadata[name] = None

    def metadata(self) -> list[str]:
        """The live objects that are not packs, sorted."""
        return sorted(self._metadata)

    def __contains__(self, name: object) -> bool:
        return name in self._metadata or self.packs.number(name) >= 0

    def __getitem__(self, name: str) -> int | None:
        if name in self._metadata:
            return None
        number = self.packs.number(name)
        if number < 0:
            raise KeyError(name)
        return self.packs.sizes[number]

    def __iter__(self) -> Iterator[str]:
        yield from self._metadata
        for number in self.packs.numbers():
            yield self.packs.name(number)

    def __len__(self) -> int:
        return len(self._metadata) + len(self.packs)


@dataclass(slots=True)
class Inventory:
    listings: dict[str, Listing]  # url -> what it holds, reachable targets only
    unreachable: dict[str, str]  # url -> why
    live: LiveObjects
    _nothing: Listing = field(init=False)

    def __post_init__(self) -> None:
        self._nothing = Listing(self.live.packs)

    def _listing(self, url: str) -> Listing:
        return self.listings.get(url, self._nothing)

    def missing(self, url: str) -> list[str]:
        listing = self._listing(url)
        names = [n for n in self.live.metadata() if n not in listing]
        names += (self.live.packs.name(n) for n in listing.missing_packs())
        return sorted(names)

    def wrong_size(self, url: str) -> list[str]:
        return sorted(self.live.packs.name(n) for n in self._listing(url).odd_sized_packs())

    def extra(self, url: str) -> list[str]:
        return sorted(n for n in self._listing(url).other_names() if n not in self.live)

    def holders(self, name: str) -> list[str]:
        return [url for url, names in self.listings.items() if name in names]


@dataclass(slots=True)
class UnlistedData:
    """What a target holds under ``data/`` beyond the live packs, sorted by what becomes of it.

    * ``packs``: name -> size of objects named as packs (a pack id last) that no index lists:
      left by interrupted backups or prunes, or in a folder other than their own; ``prune``
      deletes them (``repair --index`` lists them again, moving one outside its folder into
      it first).
    * ``misplaced``: copies of live packs outside their own folder (``data/zz/<id>``): prune
      leaves them, since the copy in place may be missing; moving one to its folder or deleting
      it is the user's call.
    * ``foreign``: names that are not a pack's (no id last): not FogVault's, never deleted.
    """

    packs: dict[str, int] = field(default_factory=dict)
    misplaced: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


def unlisted_data(listing: Listing, index: BlobIndex) -> UnlistedData:
    """Sort the names ``listing`` holds under ``data/`` that are not live packs (see
    :class:`UnlistedData`); ``index`` is the one whose packs are live."""
    found = UnlistedData()
    for name in listing.other_names():
        if not name.startswith(DATA_DIR):
            continue
        try:
            pack_id = id_from_name(name)
        except FogVaultError:
            found.foreign.append(name)
            continue
        if index.pack_number(pack_id) < 0:
            found.packs[name] = listing[name]
        elif name != pack_name(pack_id):
            found.misplaced.append(name)
        # else: a pack the index gained after the listing was made (a backup meanwhile)
    found.misplaced.sort()
    found.foreign.sort()
    return found


def take_inventory(repo: Repository) -> Inventory:
    targets = repo.targets
    packs = LivePacks(repo.index)

    def collect(infos: Iterable[ObjectInfo]) -> Listing:
        return Listing.of(packs, (i for i in infos if not i.name.startswith(LOCKS_DIR)))

    listings = {t.url: listing for t, listing in targets.list_each("", collect).items()}
    unreachable = {t.url: t.dropped or "" for t in targets.targets if not t.active}
    inventory = Inventory(listings, unreachable, LiveObjects(packs))
    pending: dict[str, set[str]] = {}  # name -> urls that missed its deletion
    for url, name in targets.missed_deletes:
        pending.setdefault(name, set()).add(url)
    live = inventory.live
    live.add_metadata(CONFIG_NAME)
    for listing in listings.values():
        for name in listing.other_names():
            if name.startswith((KEYS_DIR, SNAPSHOTS_DIR)) and (
                set(inventory.holders(name)) - pending.get(name, set())
            ):
                live.add_metadata(name)
    for name in repo.live_index_names():
        live.add_metadata(name)
    return inventory
