"""What this machine remembers about a repository's targets between runs: the repair debt.

One JSON file per repository, ``<state dir>/targets/<repository id>.json`` (the state dir is
platformdirs' ``user_state_dir("fogvault")``, on Linux ``$XDG_STATE_HOME/fogvault``, usually
``~/.local/state/fogvault``). Per target URL it keeps:

* ``damaged``: copies found missing or failing verification (by reads, ``check`` or ``repair``)
  and not repaired yet;
* ``missed_deletes``: objects deleted on the other targets while this one was dropped or
  skipped (``forget``, ``prune``, ``key remove``), so that ``repair`` deletes them there
  instead of copying them back;
* ``last_operation``: the command, time, request counts, bytes and latency of the last run that
  used the repository (``fogvault targets`` shows it).

The file is a cache of knowledge, not part of the repository: deleting it loses only what it
remembers (``check --read-data`` finds damage again; see docs/targets.md for what a lost
``missed_deletes`` means). Writes are atomic (temporary file, then rename); two processes that
finish at once may lose one's notes, never corrupt the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import platformdirs

from fogvault.targets.replicated import TargetSet

LEDGER_VERSION = 1


def default_state_dir() -> Path:
    return Path(platformdirs.user_state_dir("fogvault"))


class Ledger:
    def __init__(self, repo_id: str, state_dir: Path | None = None) -> None:
        self.path = (state_dir or default_state_dir()) / "targets" / f"{repo_id}.json"

    def load(self) -> dict[str, dict[str, Any]]:
        """url -> {"damaged": [...], "missed_deletes": [...], "last_operation": {...}}."""
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        targets = doc.get("targets") if isinstance(doc, dict) else None
        return targets if isinstance(targets, dict) else {}

    def seed(self, targets: TargetSet) -> None:
        """Give ``targets`` what earlier runs learnt about its members."""
        known = self.load()
        for url in targets.urls:
            entry = known.get(url) or {}
            for name in entry.get("damaged") or []:
                targets.remember_damage(url, str(name))
            targets.missed_deletes.update((url, str(n)) for n in entry.get("missed_deletes") or [])

    def save(self, targets: TargetSet, command: str) -> None:
        """Record ``targets``' damage, missed deletions and this run's requests. Targets not in
        this run keep their entries. Best effort: a state dir that cannot be written is ignored."""
        known = self.load()
        now = datetime.now().astimezone().isoformat(timespec="seconds")
        usage = targets.usage()
        for target in targets.targets:
            url = target.url
            known[url] = {
                "damaged": sorted(n for u, n in targets.damaged if u == url),
                "missed_deletes": sorted(n for u, n in targets.missed_deletes if u == url),
                "last_operation": {"command": command, "time": now, "state": target.state,
                                   "reason": target.dropped or target.behind, **usage[url]},
            }
        self._write({"version": LEDGER_VERSION, "targets": known})

    def _write(self, doc: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".tmp-{os.urandom(6).hex()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):  # a folder that cannot be written, or not one
                tmp.unlink(missing_ok=True)
