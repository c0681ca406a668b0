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
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from fogvault.repo.format import CONFIG_NAME, KEYS_DIR, LOCKS_DIR, SNAPSHOTS_DIR, pack_name
from fogvault.repo.pack import pack_overhead
from fogvault.repo.repository import Repository


@dataclass(slots=True)
class Inventory:
    listings: dict[str, dict[str, int]]  # url -> name -> size, reachable targets only
    unreachable: dict[str, str]  # url -> why
    live: dict[str, int | None] = field(default_factory=dict)  # name -> size (packs) or None

    def missing(self, url: str) -> list[str]:
        have = self.listings.get(url, {})
        return sorted(n for n in self.live if n not in have)

    def wrong_size(self, url: str) -> list[str]:
        have = self.listings.get(url, {})
        return sorted(n for n, size in self.live.items()
                      if size is not None and n in have and have[n] != size)

    def extra(self, url: str) -> list[str]:
        return sorted(n for n in self.listings.get(url, {}) if n not in self.live)

    def holders(self, name: str) -> list[str]:
        return [url for url, names in self.listings.items() if name in names]


def take_inventory(repo: Repository) -> Inventory:
    targets = repo.targets
    listings = {t.url: {n: s for n, s in names.items() if not n.startswith(LOCKS_DIR)}
                for t, names in targets.list_each("").items()}
    unreachable = {t.url: t.dropped or "" for t in targets.targets if not t.active}
    inventory = Inventory(listings, unreachable)
    pending: dict[str, set[str]] = defaultdict(set)  # name -> urls that missed its deletion
    for url, name in targets.missed_deletes:
        pending[name].add(url)
    live = inventory.live
    live[CONFIG_NAME] = None
    for names in listings.values():
        for name in names:
            if name.startswith((KEYS_DIR, SNAPSHOTS_DIR)) and (
                set(inventory.holders(name)) - pending.get(name, set())
            ):
                live[name] = None
    for name in repo.live_index_names():
        live[name] = None
    index = repo.index
    for pack_id, first, end in index.packs():  # every listing is whole (fogvault.repo.index)
        blobs_end = max(offset + length for offset, length in index.spans(first, end))
        live[pack_name(pack_id)] = blobs_end + pack_overhead(end - first)
    return inventory
